"""Planning and running a benchmark: names -> jobs -> one worker process per job -> results.

Everything that can be checked before a model is built (names, data path, weights, availability)
is checked here, so a typo fails in milliseconds. Each job then runs in its own process; a
finished job's result is on disk before the next starts, so a later failure loses nothing.

Where jobs run is the executor's business: `LocalExecutor` runs them one after another on this
machine, `mnv4suite.lab.RayExecutor` on the nodes of a Ray cluster that hold their hardware. The
run folder keeps the configuration (`run.json`), so `--resume` re-plans it and runs only the jobs
without a valid result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from mnv4suite import compliance, precision, results
from mnv4suite.api import Availability, BackendSpec, ModelSpec, check_requirements, merge_installs
from mnv4suite.config import RunConfig
from mnv4suite.errors import UnavailableError, UserError
from mnv4suite.fileio import atomic_write_json
from mnv4suite.registry import Registry
from mnv4suite.safeparse import load_json, printable
from mnv4suite.worker import ERROR_FILE, Job

#: The run's configuration in its folder, so `mnv4suite run --resume RUN_DIR` can plan it again.
RUN_FILE = "run.json"


@dataclass
class Plan:
    run_dir: Path
    jobs: list[Job]  # still to run
    skipped_backends: dict[str, Availability] = field(default_factory=dict)  # not run at all
    skipped_pairs: dict[tuple[str, str], str] = field(default_factory=dict)  # (model, backend) -> why not
    estimated_backends: dict[str, Availability] = field(default_factory=dict)  # run without their device
    config: RunConfig | None = None
    done: list["Outcome"] = field(default_factory=list)  # jobs of a resumed run whose valid result is there
    notes: list[str] = field(default_factory=list)  # what the planner added or left out, and why

    @property
    def total(self) -> int:
        return len(self.jobs) + len(self.done)


class Hardware(Protocol):
    """Where the plan's backends would run: this host, or a lab of hosts (mnv4suite.lab)."""

    def requirements(self, backend: BackendSpec) -> Availability: ...

    def probe(self, backend: BackendSpec) -> Availability: ...


class ThisHost:
    def requirements(self, backend: BackendSpec) -> Availability:
        return backend.requirements()

    def probe(self, backend: BackendSpec) -> Availability:
        return backend.probe()


@dataclass
class Outcome:
    job: Job
    job_dir: Path
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _select_models(config: RunConfig, registry: Registry, kind: str, task_id: str) -> list[ModelSpec]:
    if not config.model:
        models = [m for m in registry.models if m.kind == kind and not m.baseline]
        if not models:
            raise UserError(f"no installed model can run task '{task_id}' (it needs a {kind} model)")
        return models
    models = [_for_task(registry.models.get(name), registry, kind, task_id) for name in config.model]
    for model in models:
        found = check_requirements(model.requires)
        if not found:
            raise UnavailableError(f"model '{model.id}' cannot be built here: {found.explain()}")
    return list({m.id: m for m in models}.values())


def _for_task(model: ModelSpec, registry: Registry, kind: str, task_id: str) -> ModelSpec:
    """The model itself, or for a backbone the task's model built on it (`--task coco --model mnv4-conv-m`
    runs the RetinaNet detector with the MNv4-Conv-M backbone, as the paper's Table 7 names them)."""
    if model.kind == kind:
        return model
    built_on = [m for m in registry.models if m.kind == kind and m.backbone == model.id]
    if len(built_on) == 1:
        return built_on[0]
    fitting = ", ".join(m.id for m in registry.models if m.kind == kind) or "none installed"
    raise UserError(f"model '{model.id}' is a {model.kind} model and task '{task_id}' needs a {kind} model; "
                    f"{kind} models: {fitting}")


def _select_backends(config: RunConfig, registry: Registry,
                     where: Hardware) -> tuple[list[BackendSpec], dict[str, Availability]]:
    """Backends to run, and the reasons each missing one was left out (or will only be estimated)."""
    if not config.backend:
        probed = {b.id: (b, where.probe(b)) for b in registry.backends if b.in_default_run}
        chosen = [b for b, found in probed.values() if found]
        skipped = {bid: found for bid, (_, found) in probed.items() if not found}
        if not chosen:
            reasons = "\n  ".join(f"{bid}: {found.explain()}" for bid, found in skipped.items())
            raise UnavailableError(f"no backend can run here:\n  {reasons}")
        return chosen, skipped
    chosen = list({b.id: b for b in map(registry.backends.get, config.backend)}.values())
    missing_device: dict[str, Availability] = {}
    for backend in chosen:
        needed = where.requirements(backend)
        if not needed:
            raise UnavailableError(f"backend '{backend.id}' cannot even prepare its model here: {needed.explain()}")
        found = where.probe(backend)
        if not found:
            # Asked for by name: still convert, stand in for accuracy where possible, estimate latency.
            missing_device[backend.id] = found
    return chosen, missing_device


def _check_installed(config: RunConfig, registry: Registry, task_spec, where: Hardware) -> None:
    """Everything the plan needs that is not installed, in one message with one install command:
    a user fixes it once, not once per missing extra."""
    missing = {f"task '{task_spec.id}'": task_spec.probe()}
    for backend in map(registry.backends.get, config.backend or ()):
        missing[f"backend '{backend.id}'"] = where.requirements(backend)
    missing = {what: found for what, found in missing.items() if not found}
    if not missing:
        return
    lines = [f"  {what}: {found.explain()}" for what, found in missing.items()]
    install = merge_installs(reason for found in missing.values() for reason in found.reasons)
    raise UnavailableError("this run needs what is not installed here:\n" + "\n".join(lines)
                           + (f"\ninstall it all with: {install[0]}" if install else ""))


def plan(config: RunConfig, registry: Registry, where: Hardware | None = None, resume: Path | None = None) -> Plan:
    """The jobs of a run. `where` answers which backends can run (default: this host); `resume` is an
    earlier run's folder, whose jobs with a valid result are not run again."""
    for option, folder in (("--out", config.out), ("--cache-dir", config.cache_dir)):
        check_folder(option, folder)
    task_spec = registry.tasks.get(config.task)
    where = where or ThisHost()
    _check_installed(config, registry, task_spec, where)
    models = _select_models(config, registry, task_spec.model_kind, task_spec.id)
    backends, unavailable = _select_backends(config, registry, where)

    data = None
    if config.data:
        data = Path(config.data).expanduser().resolve()
        if not data.exists():
            raise UserError(f"data path {config.data} does not exist: pass the folder that holds the {task_spec.id} dataset")
        # Build the dataset index once here so a wrong layout fails before any model is built.
        from mnv4suite.cache import ArtifactCache

        cache_root = ArtifactCache(Path(config.cache_dir) if config.cache_dir else None).root
        task_spec.create().dataset(models[0], data, config.count, config.on_error, cache_root)
    weights = config.weights
    if weights:
        if len(models) != 1:
            raise UserError(f"--weights applies to one model; {len(models)} were selected: pass --model too")
        # a hub name looks like "hf-hub:org/name"; "pretrained" is the model's default public checkpoint
        if weights != "pretrained" and (":" not in weights or Path(weights).exists()):
            if Path(weights).expanduser().is_dir():
                raise UserError(f"--weights {weights} is a folder: give the checkpoint file itself "
                                "(.safetensors, .pth or .bin)")
            if not Path(weights).expanduser().is_file():
                raise UserError(f"weights file {weights} does not exist")
            weights = str(Path(weights).expanduser().resolve())

    if resume is not None:
        run_dir = Path(resume).expanduser().resolve()
        run_id = run_dir.name
    else:
        run_id = new_run_id()
        run_dir = Path(config.out).expanduser().resolve() / run_id
    pairs = [(m, b) for m in models for b in backends]
    skipped_pairs = {(m.id, b.id): why for m, b in pairs if (why := b.unsupported(m))}
    if len(skipped_pairs) == len(pairs):
        raise UserError("no selected backend can run the selected models:\n  "
                        + "\n  ".join(f"{b} x {m}: {why}" for (m, b), why in skipped_pairs.items()))
    jobs = [
        Job(
            task=task_spec.id,
            model=model.id,
            backend=backend.id,
            scenario=scenario,
            mode=config.mode,
            preset=config.preset,
            data=str(data) if data else None,
            count=config.count,
            on_error=config.on_error,
            weights=weights,
            run_id=run_id,
            cache_dir=config.cache_dir,
            cooldown_s=config.cooldown,
            threads=config.threads,
            batch=batch_size(config, backend, scenario),
        )
        for model, backend in pairs
        if (model.id, backend.id) not in skipped_pairs
        for scenario in config.scenarios
    ]
    references, notes = precision.reference_jobs(jobs, registry.backends.items.get, where.probe)
    notes += _conversion_notes(jobs, registry)
    jobs += references
    jobs += compliance.audit_jobs(jobs, config.audit)  # last: after the jobs they audit
    for job in jobs:
        job.out_dir = str(run_dir / job.name)
    done = [o for o in map(finished_outcome, jobs) if o is not None] if resume is not None else []
    finished = {o.job.name for o in done}
    chosen = {b.id for b in backends}
    return Plan(run_dir=run_dir, jobs=[j for j in jobs if j.name not in finished], skipped_pairs=skipped_pairs,
                skipped_backends={k: v for k, v in unavailable.items() if k not in chosen},
                estimated_backends={k: v for k, v in unavailable.items() if k in chosen},
                config=config, done=done, notes=notes)


def _conversion_notes(jobs: list[Job], registry: Registry) -> list[str]:
    """Say up front when a plan holds several slow conversions, how long they may take, and how to narrow it."""
    slow = {(j.model, j.backend): registry.backends.get(j.backend).cold_prepare_s for j in jobs}
    slow = {pair: s for pair, s in slow.items() if s}
    if len(slow) < 2:
        return []
    low, high = sum(s[0] for s in slow.values()) / 60, sum(s[1] for s in slow.values()) / 60
    backends = sorted({b for _, b in slow})
    return [f"{len(slow)} model conversions for {', '.join(backends)}: on a cold cache about {low:.0f}-{high:.0f} min "
            "in all on a 2-core machine (each is cached for later runs); --model names fewer"]


def check_folder(option: str, folder: str | None) -> None:
    """A folder the run writes into: it may not exist yet, but it must not be a file (or lie under one)."""
    if not folder:
        return
    path = Path(folder).expanduser()
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise UserError(f"{option} {folder}: {candidate} is a file, not a folder; give a folder "
                                "(it is created if missing)")
            return


def batch_size(config: RunConfig, backend: BackendSpec, scenario: str) -> int:
    """Offline: --batch, else the backend's own default; SingleStream and backends that take batch 1: 1."""
    if scenario != "Offline" or backend.offline_batch <= 1:
        return 1
    return config.batch or backend.offline_batch


def resume_config(run_dir: Path) -> RunConfig:
    """The configuration an earlier run recorded in its folder."""
    path = Path(run_dir).expanduser() / RUN_FILE
    if not path.is_file():
        raise UserError(f"--resume {run_dir}: no {RUN_FILE} there, so it is not a run folder written by "
                        "`mnv4suite run` (give the folder named by the run id, under --out)")
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        return RunConfig(**recorded["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"--resume {run_dir}: {path} is damaged ({exc}); start a new run instead") from None


def finished_outcome(job: Job) -> Outcome | None:
    """The job's earlier outcome when its folder holds a valid result; None when it must run."""
    job_dir = Path(job.out_dir)
    result_file = job_dir / results.RESULT_FILE
    if not result_file.is_file():
        return None
    try:
        return Outcome(job=job, job_dir=job_dir, result=results.read(result_file))
    except UserError:
        return None  # damaged or invalid: run it again (start_job_dir keeps the old file aside)


def start_job_dir(job: Job) -> Path:
    """The job's folder with its job.json; a result or error left by an earlier try is put aside."""
    job_dir = Path(job.out_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    for stale in (results.RESULT_FILE, ERROR_FILE):
        if (job_dir / stale).exists():
            os.replace(job_dir / stale, job_dir / f"previous-{stale}")
    job.save(job_dir / "job.json")
    return job_dir


def worker_command(job_file: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "mnv4suite.worker", *options, str(job_file)]


def worker_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def read_outcome(job: Job, job_dir: Path, crash_hint: str = "see the output above") -> Outcome:
    outcome = Outcome(job=job, job_dir=job_dir)
    result_file = job_dir / results.RESULT_FILE
    if result_file.exists():
        try:
            outcome.result = results.read(result_file)
        except UserError as exc:  # this job's failure, not the run's: the file stays for a look, --resume redoes it
            outcome.error = {"kind": "UnreadableResult", "user_error": False, "message": str(exc)}
    elif (job_dir / ERROR_FILE).exists():
        outcome.error = _read_error(job_dir / ERROR_FILE)
    else:
        outcome.error = {"kind": "WorkerCrashed", "user_error": False,
                         "message": f"the worker process died without a result ({crash_hint})"}
    return outcome


#: Far above any error.json a worker writes (a message and a traceback).
MAX_ERROR_BYTES = 1 << 20


def _read_error(path: Path) -> dict[str, Any]:
    """A worker's error.json (in a lab, a file another machine sent): what it says, or why it says nothing."""
    try:
        with open(path, "rb") as fh:
            error = load_json(fh.read(MAX_ERROR_BYTES + 1), str(path), max_bytes=MAX_ERROR_BYTES)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return {**error, "kind": str(error.get("kind", "JobFailed")), "user_error": error.get("user_error") is True}
        problem = "not an object with a message"
    except (OSError, ValueError) as exc:
        problem = str(exc)
    return {"kind": "UnreadableError", "user_error": False, "message": f"the job failed, and its {ERROR_FILE} "
            f"cannot say why: {problem}"}


def run_job_in_subprocess(job: Job) -> Outcome:
    job_dir = start_job_dir(job)
    subprocess.run(worker_command(job_dir / "job.json"), env=worker_env(), check=False)
    return read_outcome(job, job_dir)


Started = Callable[[Job, str], None]  # (job, where it runs: "" on this host)
Finished = Callable[[Outcome], bool]  # False: stop, the remaining jobs here would fail the same way


class Executor(Protocol):
    """Runs jobs and reports each outcome as soon as its files are in the job's folder."""

    def run(self, jobs: Sequence[Job], started: Started, finished: Finished) -> None: ...


class LocalExecutor:
    """One job after another on this machine, each in its own worker process."""

    def run(self, jobs: Sequence[Job], started: Started, finished: Finished) -> None:
        for job in jobs:
            started(job, "")
            if not finished(run_job_in_subprocess(job)):
                return


def save_run_file(run: Plan) -> None:
    if run.config is not None:
        atomic_write_json(run.run_dir / RUN_FILE, {"run_id": run.run_dir.name, "config": asdict(run.config)})


def execute(run: Plan, log=print, executor: Executor | None = None) -> list[Outcome]:
    """Run every job; stop early only on a user error, which the remaining jobs would repeat on this
    machine (a lab's executor runs on: one node's full disk is not another's)."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    save_run_file(run)
    outcomes = list(run.done)
    if run.done:
        log(f"resuming {run.run_dir.name}: {len(run.done)} of {run.total} job(s) already have a valid result")
    position = iter(range(len(run.done) + 1, run.total + 1))

    def started(job: Job, where: str) -> None:
        log(f"[{next(position)}/{run.total}] {job.model} on {job.backend} ({job.scenario}, {job.mode}, "
            f"preset {job.preset})" + (f" on {where}" if where else ""))

    def finished(outcome: Outcome) -> bool:
        outcomes.append(outcome)
        _log_outcome(outcome, log)
        return not (outcome.error and outcome.error.get("user_error"))

    (executor or LocalExecutor()).run(run.jobs, started, finished)
    return outcomes


def _log_outcome(outcome: Outcome, log) -> None:
    if outcome.ok:
        latency = outcome.result["latency"] or {}
        accuracy = (outcome.result["accuracy"] or {}).get("metrics", {})
        p90 = results.per_query_latency(outcome.result).get("p90_ms")
        figures = [f"p90 {p90:.2f} ms" if p90 is not None else None,
                   f"{latency['samples_per_s']:.1f} samples/s at batch {outcome.job.batch}"
                   if outcome.job.scenario == "Offline" and latency.get("samples_per_s") else None,
                   *(f"{name} {value:.2f}" for name, value in accuracy.items()),
                   outcome.result["validity"]["result"],
                   "BUSY machine: " + "; ".join(load["reasons"])
                   if (load := outcome.result.get("machine_load") or {}).get("quiet") is False else None,
                   f"PARTIAL: {outcome.result['task']['dataset']['skipped']} unusable sample(s) skipped"
                   if outcome.result["status"] == "partial" else None,
                   f"post-processing {loadgen.get('postprocess_ms_per_sample', 0):.2f} ms/sample inside the timed latency"
                   if (loadgen := outcome.result["loadgen"]).get("timed_postprocessing") else None]
        log("  done: " + ", ".join(f for f in figures if f))
    if outcome.error:
        log(f"  failed: {printable(outcome.error['message'], 2000)}")
