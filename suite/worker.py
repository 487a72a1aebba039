"""One benchmark job in its own process: model -> artifact -> session -> LoadGen test -> result.

The runner starts `python -m mnv4suite.worker JOB.json` once per job, because LoadGen allows one
test per process and because a crash in one framework must not take the other results with it.
The worker leaves either `result.json` (schema-valid, complete) or `error.json` in the job folder.
"""

from __future__ import annotations

import errno
import json
import sys
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mnv4suite import harness, results
from mnv4suite.api import CalibrationSet, DeviceProfile
from mnv4suite.errors import JobFailed, UnavailableError, UserError
from mnv4suite.fileio import atomic_write_json, sha256_file
from mnv4suite.roofline import estimate_text
from mnv4suite.run_rules import Seeds, get_preset

ERROR_FILE = "error.json"
#: Every unusable sample with its reason, beside the result; the result lists the first SKIPPED_IN_RESULT
#: (a damaged copy of ImageNet can have tens of thousands, which would make the result unreadable).
SKIPPED_FILE = "skipped-files.json"
SKIPPED_IN_RESULT = 100
LOG_DIR = "loadgen"


@dataclass
class Job:
    """Everything one worker needs, serialisable to JSON."""

    task: str
    model: str
    backend: str
    scenario: str = "SingleStream"
    mode: str = "performance"
    preset: str = "rapid"
    data: str | None = None
    count: int | None = None
    on_error: str = "stop"
    weights: str | None = None
    out_dir: str = "."
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    cache_dir: str | None = None
    seeds: dict[str, int] = field(default_factory=lambda: Seeds().as_dict())
    progress: bool = True
    #: the lab node that runs the job (set there); None for a local run
    node: dict[str, Any] | None = None
    #: seconds to pause before a timed test, for thermally limited devices (MLPerf Mobile's cooldown)
    cooldown_s: float = 0.0
    #: CPU threads for the session (MLPerf Mobile's num_threads); None: the backend's default
    threads: int | None = None
    #: samples per inference (Offline batches; 1 everywhere else)
    batch: int = 1
    #: the LoadGen compliance test this job is (mnv4suite.compliance), None for an ordinary job
    audit: str | None = None
    #: post-process answers in a performance run too, inside the timed latency (TEST01 logs them; an
    #: audit of a `both` run times what that run timed)
    encode_in_performance: bool = False

    @property
    def name(self) -> str:
        return f"{self.task}__{self.model}__{self.backend}__{self.scenario}" + (f"__{self.audit}" if self.audit else "")

    def save(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> "Job":
        return cls(**json.loads(Path(path).read_text()))


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


CALIBRATION_SAMPLES = 128
#: Without data the calibration inputs are noise, and int8 accuracy means nothing whatever their number:
#: a few set the converter's ranges as well as many, and a cold run does not wait minutes for them.
SYNTHETIC_CALIBRATION_SAMPLES = 4
#: Who makes each built-in framework's runtime, for `backend.vendor` (a plugin's BackendSpec.vendor wins).
FRAMEWORK_VENDORS = {"torch": "PyTorch Foundation", "onnxruntime": "Microsoft", "ai-edge-litert": "Google",
                     "coremltools": "Apple"}


def calibration_set(task, model_spec, data: Path | None, task_id: str, cache_dir: Path | None = None) -> CalibrationSet:
    """Evenly spaced samples of the task's data; a few synthetic inputs only when no data was given."""
    count = CALIBRATION_SAMPLES if data is not None else SYNTHETIC_CALIBRATION_SAMPLES
    dataset = task.dataset(model_spec, data, count, "skip", cache_dir)
    indices = list(range(len(dataset)))
    dataset.load(indices)
    samples = [np.array(dataset.get(i), dtype=np.float32, copy=True) for i in indices]
    dataset.unload(indices)
    if data is None:
        source = f"{task_id} synthetic inputs ({len(samples)}): no --data given, so int8 accuracy means nothing"
    else:
        source = f"{task_id} at {data}: {len(samples)} evenly spaced samples"
    return CalibrationSet(source=source, synthetic=data is None, samples=samples)


def roofline_estimate(model, precision: str, profile: DeviceProfile) -> dict[str, Any]:
    """The device latency this machine cannot measure, from the paper's roofline model."""
    from mnv4suite.reference_models.counting import profile as layer_costs
    from mnv4suite.roofline import (BYTES_PER_ELEMENT, Terms, cost_model_text, estimate, laid_out, rates,
                                    unsupported_ops)

    bytes_per_element = BYTES_PER_ELEMENT[precision]
    layers = laid_out(layer_costs(model.module, model.spec.resolution, bytes_per_element).layers, bytes_per_element,
                      profile.runtime)
    missing = unsupported_ops(layers, profile)
    if missing:
        raise ValueError(f"{profile.name} does not run {', '.join(missing)}, which {model.spec.id} uses: "
                         "the paper's Table 6 lists such models as Failed there, and no latency is given")
    peak, bandwidth = rates(profile)
    found = estimate(layers, profile)
    return {
        "kind": "estimated",
        "method": "roofline: per layer max(MACs / peak, bytes / bandwidth) at its op class's peak, summed, plus the "
                  "profile's per-layer and per-inference times where it has them",
        "device": profile.id,
        "device_name": profile.name,
        "ms": found.total_ms,
        "bytes_per_element": bytes_per_element,
        "peak_macs_per_s": peak,
        "bandwidth_bytes_per_s": bandwidth,
        "profile_source": profile.source,
        "typical_error_pct": profile.typical_error_pct,
        "overhead_ms": profile.overhead_s * 1e3,
        "dispatch_ms_per_layer": profile.dispatch_s * 1e3,
        "class_peaks": dict(profile.class_peaks),
        "cost_model": cost_model_text(Terms(overhead=profile.overhead_s > 0, dispatch=profile.dispatch_s > 0,
                                            classes=tuple(c for c, _ in profile.class_peaks), runtime=profile.runtime)),
        # the layers the device's delegate leaves to the CPU: their time is the CPU's, not the accelerator's
        "cpu_fallback_layers": list(found.cpu_layers),
    }


def execute(job: Job) -> dict[str, Any]:
    """Run the job and return the (already written) result."""
    from mnv4suite.cache import ArtifactCache
    from mnv4suite.registry import get_registry

    started = datetime.now(timezone.utc)
    registry = get_registry()
    task_spec = registry.tasks.get(job.task)
    model_spec = registry.models.get(job.model)
    backend_spec = registry.backends.get(job.backend)
    out_dir = Path(job.out_dir)
    data = Path(job.data) if job.data else None

    backend = _backend(backend_spec, job.threads, job.batch)
    device = backend.probe()

    cache = ArtifactCache(Path(job.cache_dir) if job.cache_dir else None)
    task = task_spec.create()
    dataset = task.dataset(model_spec, data, job.count, job.on_error, cache.root)
    if dataset.skipped:
        atomic_write_json(out_dir / SKIPPED_FILE, [list(item) for item in dataset.skipped])
        say(f"{len(dataset.skipped)} unusable sample(s) skipped (all in {SKIPPED_FILE}), first: "
            f"{dataset.skipped[0][0]}: {dataset.skipped[0][1]}")
    model, calibration, artifact = _prepare(job, task, model_spec, backend, cache)

    estimate = None
    if device:
        session, mode = backend.load(artifact, model), job.mode
    else:
        say(f"{backend_spec.id}: its device is not here (the run's notes say why; the result keeps the reasons)")
        session = backend.stand_in(artifact, model)
        # A stand-in answers for accuracy only: its speed is not the device's.
        mode = "accuracy" if session is not None and job.mode != "performance" else None
        try:
            profile = registry.devices.get(backend_spec.hardware)
            estimate = roofline_estimate(model, backend_spec.precision, profile)
            on_cpu = estimate["cpu_fallback_layers"]
            fallback = (f"; {len(on_cpu)} layer(s) timed on the CPU: the delegate rejects "
                        f"{', '.join(profile.runtime.delegate_rejects)} and takes one piece of the graph") if on_cpu else ""
            say(f"latency estimated, not measured: {estimate_text(estimate)} on {profile.name} (roofline{fallback})")
        except (ValueError, UserError) as exc:  # unknown profile, or one without peak and bandwidth
            say(f"no latency estimate: {exc}")

    report = None
    log_dir = out_dir / LOG_DIR
    preset = get_preset(job.preset)
    if mode is not None:
        if job.cooldown_s and mode != "accuracy":
            say(f"cooling down for {job.cooldown_s:g} s before the timed test")
            time.sleep(job.cooldown_s)
        say(f"LoadGen {job.scenario} {mode}, preset {preset.name} ({preset.summary})"
            + ("" if device else f" on the stand-in: {session.accelerator}"))
        if job.audit:
            from mnv4suite.compliance import AUDIT_FILE, audit_config

            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / AUDIT_FILE).write_text(audit_config(job.audit), encoding="utf-8")
            say(f"compliance test {job.audit}: LoadGen reads {log_dir / AUDIT_FILE}")
        report = harness.run_test(
            session, dataset, lambda outputs, index: task.encode(outputs, index, dataset),
            harness.HarnessSettings(scenario=job.scenario, mode=mode, preset=preset, seeds=Seeds(**job.seeds),
                                    log_dir=log_dir, progress=job.progress, batch=job.batch,
                                    encode_in_performance=job.encode_in_performance),
        )
    if report is not None and report.machine_load is not None and report.machine_load["quiet"] is False:
        say("warning: the machine was busy while LoadGen timed it (" + "; ".join(report.machine_load["reasons"])
            + "): the latency figures are not the hardware's; stop other work and run again")
    if report is not None and report.nonfinite_samples:
        raise JobFailed(
            f"{report.nonfinite_samples} of {len(dataset)} samples got NaN or infinite outputs from {backend_spec.id}: "
            "its numerics are broken (weights, conversion, quantization or the delegate), so no accuracy or result "
            f"is reported. The logs are in {log_dir}")
    accuracy = None
    if report is not None and mode != "performance":
        metrics = task.metric(report.payloads, dataset)
        accuracy = {"kind": "measured", "samples": int(metrics.pop("samples")), "metrics": metrics,
                    "executor": session.accelerator if device else f"stand-in: {session.accelerator}"}
        command = task.mlcommons_files(dataset, log_dir)
        if command:
            accuracy["mlcommons_command"] = command
    result = _result(job, registry, task_spec, model_spec, backend_spec, backend, dataset, model, artifact,
                     session, device, mode, report, accuracy, estimate, calibration, preset, log_dir)
    finished = datetime.now(timezone.utc)
    result["timing"] = {"started": started.isoformat(timespec="microseconds"),
                        "finished": finished.isoformat(timespec="microseconds"),
                        "duration_s": round((finished - started).total_seconds(), 3)}
    results.write(result, out_dir / results.RESULT_FILE)
    return result


def _backend(backend_spec, threads: int | None = None, batch: int = 1):
    requirements = backend_spec.requirements()
    if not requirements:
        raise UnavailableError(f"backend '{backend_spec.id}' cannot even prepare its model here: {requirements.explain()}")
    backend = backend_spec.create()
    backend.threads, backend.batch = threads, batch
    return backend


def _prepare(job: Job, task, model_spec, backend, cache):
    """Weights, int8 calibration and the backend's artifact: everything before a session exists."""
    from mnv4suite.models import prepare_model

    data = Path(job.data) if job.data else None
    say(f"building {model_spec.id} ({model_spec.resolution}px)")
    model = prepare_model(model_spec, job.weights)
    calibration = None
    if backend.spec.precision == "int8":
        calibration = calibration_set(task, model_spec, data, task.spec.id, cache.root)
        say(f"int8 calibration: {calibration.source}")
    say(f"preparing for {backend.spec.id}")
    artifact = backend.prepare(model, cache, calibration)
    if artifact.path is not None:
        say(f"artifact {'reused from cache' if artifact.cached else 'built'}: {artifact.path}")
    return model, calibration, artifact


def prepare_only(job: Job) -> list[dict[str, Any]]:
    """Build the job's artifacts and nothing else; returns the cache entries, for a lab to ship them."""
    from mnv4suite.cache import ArtifactCache
    from mnv4suite.registry import get_registry

    registry = get_registry()
    backend = _backend(registry.backends.get(job.backend), job.threads, job.batch)
    cache = ArtifactCache(Path(job.cache_dir) if job.cache_dir else None)
    _prepare(job, registry.tasks.get(job.task).create(), registry.models.get(job.model), backend, cache)
    return [{"key": key, "suffix": suffix, "path": str(path), "sha256": digest}
            for key, suffix, path, digest in cache.used]


def _result(job, registry, task_spec, model_spec, backend_spec, backend, dataset, model, artifact, session, device,
            mode, report, accuracy, estimate, calibration, preset, log_dir) -> dict[str, Any]:
    """The result record; every figure in it comes from LoadGen's logs or the roofline estimate."""
    from mnv4suite.sysinfo import node_info, suite_info, system_info

    latency = None
    if report is not None and report.latency is not None:
        latency = {"kind": "measured", **report.latency, "warmup_ms": report.warmup_latency_ms}
    versions = backend.versions()
    provider = registry.backends.providers[backend_spec.id]
    system = system_info()
    return {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": job.run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # Skipped samples make the accuracy one over fewer samples than asked for: never "complete".
        "status": "partial" if dataset.skipped else "complete",
        "task": {
            "id": task_spec.id,
            "dataset": {
                "synthetic": dataset.synthetic,
                "path": job.data,
                "samples": len(dataset),
                "requested": len(dataset) + len(dataset.skipped),
                "skipped": len(dataset.skipped),
                "skipped_files": [list(item) for item in dataset.skipped[:SKIPPED_IN_RESULT]],
                "details": _json_safe(dataset.info()),
            },
        },
        "model": {
            "id": model_spec.id,
            "resolution": model_spec.resolution,
            "params": model_spec.params,
            "macs": model_spec.macs,
            "precision": backend_spec.precision,
            "weights": model.weights,
            "checksum": model.checksum,
            "provider": registry.models.providers[model_spec.id],
            "calibration": calibration.describe() if calibration else None,
        },
        "backend": {
            "id": backend_spec.id,
            "framework": backend_spec.framework,
            "framework_version": versions.get(backend_spec.framework, "unknown"),
            "delegate": backend_spec.delegate,
            "available": bool(device),
            "unavailable_because": list(device.reasons),
            "accelerator": session.accelerator if (device and session) else "none: the device is not here",
            "cpu_fallback_ops": list(session.cpu_fallback_ops) if (device and session) else [],
            "threads": session.threads if (device and session) else None,
            "threads_requested": job.threads,
            "hardware": backend_spec.hardware,
            "vendor": backend_spec.vendor or FRAMEWORK_VENDORS.get(backend_spec.framework, "unknown"),
            "provider": registry.plugin_versions.get(provider, provider),
            "artifact": {
                "kind": artifact.kind,
                "path": str(artifact.path) if artifact.path else None,
                "sha256": artifact.sha256,
                "cached": artifact.cached,
                "details": artifact.details,
            },
        },
        "scenario": job.scenario,
        "batch": job.batch,
        "mode": mode or "none",
        "preset": {"name": preset.name, "min_query_count": preset.min_query_count, "min_duration_ms": preset.min_duration_ms},
        "seeds": dict(job.seeds),
        "latency": latency,
        "estimate": estimate,
        "accuracy": accuracy,
        "validity": report.validity if report is not None else {"result": "NOT-MEASURED"},
        "loadgen": {
            "version": report.loadgen_version if report else None,
            "log_dir": LOG_DIR,
            # LoadGen's logs and the files for MLCommons' scripts (some in sub-folders), each hashed
            "logs": {p.relative_to(log_dir).as_posix(): sha256_file(p) for p in sorted(log_dir.rglob("*"))
                     if p.is_file()} if report else {},
            "audit": job.audit,
            **({"test": {"started": report.test_started, "duration_s": report.test_duration_s}} if report else {}),
            **({"overridden_by_audit_config": report.overridden_by_audit_config,
                "timed_postprocessing": report.timed_postprocessing} if report and report.latency else {}),
            **({"postprocess_ms_per_sample": report.postprocess_ms} if report and report.postprocess_ms is not None
               else {}),
        },
        "system": {**system, "frameworks": {**system["frameworks"], **versions}},
        "node": job.node or node_info(),
        "machine_load": ({**report.machine_load, "cooldown_s": job.cooldown_s}
                         if report is not None and report.machine_load is not None else None),
        "suite": {**suite_info(), "plugins": dict(registry.plugin_versions)},
    }


def _json_safe(value: Any) -> Any:
    """A plugin's provenance dict as plain JSON (paths and numpy scalars become strings and numbers)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


PREPARE_ONLY = "--prepare-only"


def main(argv: list[str] | None = None) -> int:
    """`python -m mnv4suite.worker JOB.json`, or `... --prepare-only ENTRIES.json JOB.json` for a lab's
    artifact build, which writes the cache entries it used to ENTRIES.json."""
    argv = sys.argv[1:] if argv is None else argv
    entries_file = None
    if argv[0] == PREPARE_ONLY:
        entries_file, argv = Path(argv[1]), argv[2:]
    job_file = Path(argv[0])
    job = Job.load(job_file)
    out_dir = Path(job.out_dir)
    try:
        if entries_file is not None:
            atomic_write_json(entries_file, prepare_only(job))
        else:
            execute(job)
        return 0
    except UserError as exc:
        _record_error(out_dir, {"kind": type(exc).__name__, "user_error": True, "message": str(exc)})
        return exc.exit_code
    except JobFailed as exc:
        _record_error(out_dir, {"kind": "JobFailed", "user_error": False, "message": str(exc)})
        return 1
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            _unexpected(out_dir, exc)
            return 1
        # The next jobs would hit the same disk: a user error, which stops the run with its results kept.
        where = f" writing {exc.filename}" if exc.filename else ""
        message = (f"{exc.strerror or exc}{where}: {DISK_ERRNOS[exc.errno]}; finished results are kept, and "
                   "`mnv4suite run --resume RUN_DIR` runs the rest")
        _record_error(out_dir, {"kind": "DiskError", "user_error": True, "message": message})
        return 2
    except BaseException as exc:  # noqa: BLE001 - recorded for the runner, then re-raised as exit code
        _unexpected(out_dir, exc)
        return 1


#: errno -> what to do about it, for the disk problems a job cannot get past
DISK_ERRNOS = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some space within your disk quota",
               errno.EROFS: "the file system is read-only: give --out a writable folder",
               errno.EACCES: "no permission: give --out (or --cache-dir) a folder you can write"}


def _record_error(out_dir: Path, error: dict[str, Any]) -> None:
    """The error for the runner; on a full disk, at least the message on stderr."""
    try:
        atomic_write_json(out_dir / ERROR_FILE, error)
    except OSError:
        print(f"  error: {error['message']}", file=sys.stderr, flush=True)


def _unexpected(out_dir: Path, exc: BaseException) -> None:
    _record_error(out_dir, {"kind": type(exc).__name__, "user_error": False, "message": str(exc) or repr(exc),
                            "traceback": traceback.format_exc()})
    traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
