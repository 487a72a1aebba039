"""One benchmark job in its own process: model -> artifact -> session -> LoadGen test -> result.

The runner starts `python -m mnv4suite.worker JOB.json` once per job, because LoadGen allows one
test per process and because a crash in one framework must not take the other results with it.
The worker leaves either `result.json` (schema-valid, complete) or `error.json` in the job folder.
"""

from __future__ import annotations

import json
import sys
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnv4suite import harness, results
from mnv4suite.errors import UnavailableError, UserError
from mnv4suite.fileio import atomic_write_json, sha256_file
from mnv4suite.run_rules import Seeds, get_preset

ERROR_FILE = "error.json"
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

    @property
    def name(self) -> str:
        return f"{self.task}__{self.model}__{self.backend}__{self.scenario}"

    def save(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> "Job":
        return cls(**json.loads(Path(path).read_text()))


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def execute(job: Job) -> dict[str, Any]:
    """Run the job and return the (already written) result."""
    from mnv4suite.cache import ArtifactCache
    from mnv4suite.models import prepare_model
    from mnv4suite.registry import get_registry
    from mnv4suite.sysinfo import suite_info, system_info

    registry = get_registry()
    task_spec = registry.tasks.get(job.task)
    model_spec = registry.models.get(job.model)
    backend_spec = registry.backends.get(job.backend)
    out_dir = Path(job.out_dir)

    backend = backend_spec.create()
    availability = backend.probe()
    if not availability:
        raise UnavailableError(f"backend '{backend_spec.id}' cannot run here: {availability.explain()}")

    task = task_spec.create()
    dataset = task.dataset(model_spec, Path(job.data) if job.data else None, job.count, job.on_error)

    say(f"building {model_spec.id} ({model_spec.resolution}px)")
    model = prepare_model(model_spec, job.weights)
    say(f"preparing for {backend_spec.id}")
    artifact = backend.prepare(model, ArtifactCache(Path(job.cache_dir) if job.cache_dir else None))
    if artifact.path is not None:
        say(f"artifact {'reused from cache' if artifact.cached else 'built'}: {artifact.path}")
    session = backend.load(artifact, model)

    preset = get_preset(job.preset)
    log_dir = out_dir / LOG_DIR
    say(f"LoadGen {job.scenario} {job.mode}, preset {preset.name} ({preset.summary})")
    report = harness.run_test(
        session,
        dataset,
        task.encode,
        harness.HarnessSettings(
            scenario=job.scenario,
            mode=job.mode,
            preset=preset,
            seeds=Seeds(**job.seeds),
            log_dir=log_dir,
            progress=job.progress,
        ),
    )
    accuracy = None
    if job.mode != "performance":
        metrics = task.metric(report.payloads, dataset)
        accuracy = {"kind": "measured", "samples": int(metrics.pop("samples")), "metrics": metrics}

    latency = None
    if report.latency is not None:
        latency = {"kind": "measured", **report.latency, "warmup_ms": report.warmup_latency_ms}

    versions = backend.versions()
    result = {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": job.run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "complete",
        "task": {
            "id": task_spec.id,
            "dataset": {
                "synthetic": dataset.synthetic,
                "path": job.data,
                "samples": len(dataset),
                "skipped": len(dataset.skipped),
                "skipped_files": [list(item) for item in dataset.skipped],
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
        },
        "backend": {
            "id": backend_spec.id,
            "framework": backend_spec.framework,
            "framework_version": versions.get(backend_spec.framework, "unknown"),
            "delegate": backend_spec.delegate,
            "accelerator": session.accelerator,
            "cpu_fallback_ops": list(session.cpu_fallback_ops),
            "hardware": backend_spec.hardware,
            "provider": registry.plugin_versions.get(
                registry.backends.providers[backend_spec.id], registry.backends.providers[backend_spec.id]
            ),
            "artifact": {
                "kind": artifact.kind,
                "path": str(artifact.path) if artifact.path else None,
                "sha256": artifact.sha256,
                "cached": artifact.cached,
                "details": artifact.details,
            },
        },
        "scenario": job.scenario,
        "mode": job.mode,
        "preset": {"name": preset.name, "min_query_count": preset.min_query_count, "min_duration_ms": preset.min_duration_ms},
        "seeds": dict(job.seeds),
        "latency": latency,
        "accuracy": accuracy,
        "validity": report.validity,
        "loadgen": {
            "version": report.loadgen_version,
            "log_dir": LOG_DIR,
            "logs": {p.name: sha256_file(p) for p in sorted(log_dir.iterdir()) if p.is_file()},
        },
        "system": {**system_info(), "frameworks": {**system_info()["frameworks"], **versions}},
        "suite": {**suite_info(), "plugins": dict(registry.plugin_versions)},
    }
    results.write(result, out_dir / results.RESULT_FILE)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_file = Path(argv[0])
    job = Job.load(job_file)
    out_dir = Path(job.out_dir)
    try:
        execute(job)
        return 0
    except UserError as exc:
        atomic_write_json(out_dir / ERROR_FILE, {"kind": type(exc).__name__, "user_error": True, "message": str(exc)})
        return exc.exit_code
    except BaseException as exc:  # noqa: BLE001 - recorded for the runner, then re-raised as exit code
        atomic_write_json(
            out_dir / ERROR_FILE,
            {"kind": type(exc).__name__, "user_error": False, "message": str(exc) or repr(exc), "traceback": traceback.format_exc()},
        )
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
