"""Planning and running a benchmark: names -> jobs -> one worker process per job -> results.

Everything that can be checked before a model is built (names, data path, weights, availability)
is checked here, so a typo fails in milliseconds. Each job then runs in its own process; a
finished job's result is on disk before the next starts, so a later failure loses nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnv4suite import results
from mnv4suite.api import Availability, BackendSpec, ModelSpec, check_requirements
from mnv4suite.config import RunConfig
from mnv4suite.errors import UnavailableError, UserError
from mnv4suite.registry import Registry
from mnv4suite.worker import ERROR_FILE, Job


@dataclass
class Plan:
    run_dir: Path
    jobs: list[Job]
    skipped_backends: dict[str, Availability] = field(default_factory=dict)  # not run at all
    skipped_pairs: dict[tuple[str, str], str] = field(default_factory=dict)  # (model, backend) -> why not
    estimated_backends: dict[str, Availability] = field(default_factory=dict)  # run without their device


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


def _select_backends(config: RunConfig, registry: Registry) -> tuple[list[BackendSpec], dict[str, Availability]]:
    """Backends to run, and the reasons each missing one was left out (or will only be estimated)."""
    if not config.backend:
        probed = {b.id: (b, b.probe()) for b in registry.backends}
        chosen = [b for b, found in probed.values() if found]
        skipped = {bid: found for bid, (_, found) in probed.items() if not found}
        if not chosen:
            reasons = "\n  ".join(f"{bid}: {found.explain()}" for bid, found in skipped.items())
            raise UnavailableError(f"no backend can run here:\n  {reasons}")
        return chosen, skipped
    chosen = list({b.id: b for b in map(registry.backends.get, config.backend)}.values())
    missing_device: dict[str, Availability] = {}
    for backend in chosen:
        needed = backend.requirements()
        if not needed:
            raise UnavailableError(f"backend '{backend.id}' cannot even prepare its model here: {needed.explain()}")
        found = backend.probe()
        if not found:
            # Asked for by name: still convert, stand in for accuracy where possible, estimate latency.
            missing_device[backend.id] = found
    return chosen, missing_device


def plan(config: RunConfig, registry: Registry) -> Plan:
    task_spec = registry.tasks.get(config.task)
    missing = task_spec.probe()
    if not missing:
        raise UnavailableError(f"task '{task_spec.id}' cannot run here: {missing.explain()}")
    models = _select_models(config, registry, task_spec.model_kind, task_spec.id)
    backends, unavailable = _select_backends(config, registry)

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
            if not Path(weights).expanduser().is_file():
                raise UserError(f"weights file {weights} does not exist")
            weights = str(Path(weights).expanduser().resolve())

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
            scenario=config.scenario,
            mode=config.mode,
            preset=config.preset,
            data=str(data) if data else None,
            count=config.count,
            on_error=config.on_error,
            weights=weights,
            run_id=run_id,
            cache_dir=config.cache_dir,
        )
        for model, backend in pairs
        if (model.id, backend.id) not in skipped_pairs
    ]
    for job in jobs:
        job.out_dir = str(run_dir / job.name)
    chosen = {b.id for b in backends}
    return Plan(run_dir=run_dir, jobs=jobs, skipped_pairs=skipped_pairs,
                skipped_backends={k: v for k, v in unavailable.items() if k not in chosen},
                estimated_backends={k: v for k, v in unavailable.items() if k in chosen})


def run_job_in_subprocess(job: Job) -> Outcome:
    job_dir = Path(job.out_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    job_file = job_dir / "job.json"
    job.save(job_file)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "-m", "mnv4suite.worker", str(job_file)], env=env, check=False)
    outcome = Outcome(job=job, job_dir=job_dir)
    result_file = job_dir / results.RESULT_FILE
    if result_file.exists():
        outcome.result = results.read(result_file)
    elif (job_dir / ERROR_FILE).exists():
        outcome.error = json.loads((job_dir / ERROR_FILE).read_text())
    else:
        outcome.error = {"kind": "WorkerCrashed", "user_error": False,
                         "message": "the worker process died without a result (see the output above)"}
    return outcome


def execute(run: Plan, log=print) -> list[Outcome]:
    """Run every job; stop early only on a user error, which the remaining jobs would repeat."""
    outcomes = []
    for i, job in enumerate(run.jobs, 1):
        log(f"[{i}/{len(run.jobs)}] {job.model} on {job.backend} ({job.scenario}, {job.mode}, preset {job.preset})")
        outcome = run_job_in_subprocess(job)
        outcomes.append(outcome)
        if outcome.ok:
            latency = outcome.result["latency"] or {}
            accuracy = (outcome.result["accuracy"] or {}).get("metrics", {})
            figures = [f"p90 {latency['p90_ms']:.2f} ms" if latency.get("p90_ms") is not None else None,
                       *(f"{name} {value:.2f}" for name, value in accuracy.items()),
                       outcome.result["validity"]["result"],
                       f"PARTIAL: {outcome.result['task']['dataset']['skipped']} unusable sample(s) skipped"
                       if outcome.result["status"] == "partial" else None]
            log("  done: " + ", ".join(f for f in figures if f))
        if outcome.error:
            log(f"  failed: {outcome.error['message']}")
            if outcome.error.get("user_error"):
                break
    return outcomes
