"""The driver of a lab run: each job a Ray task on a node that holds its hardware.

The runner plans exactly as for a local run (with the lab answering which backends can run), then
hands the jobs to `RayExecutor.run`. Artifacts that travel (ONNX, TFLite, Core ML files) are built
once per model x backend by a Ray task on any node that has the packages, and reach every node that
needs them through Ray's object store; each job's files come home into the run folder as they finish.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import ray
from ray import exceptions as ray_errors

from mnv4suite.errors import UserError
from mnv4suite.fileio import atomic_write_json
from mnv4suite.registry import Registry
from mnv4suite.safeparse import printable
from mnv4suite.runner import Finished, Outcome, Started, read_outcome, start_job_dir
from mnv4suite.worker import ERROR_FILE, Job

from . import node as node_side
from .resources import Lab, Node, host_resources, job_demand, prepare_demand

#: A task whose node dies is tried again on another node that holds its hardware, this many times.
RETRIES = 2
#: How often the driver looks for jobs that no living node can run any more.
POLL_S = 2.0


@ray.remote(num_cpus=0)
def _build_artifacts(job_fields: dict[str, Any]) -> dict[str, Any]:
    return node_side.build_artifacts(job_fields)


@ray.remote(num_cpus=0, max_retries=RETRIES)
def _run_job(job_fields: dict[str, Any], built: dict[str, Any] | None, names: dict[str, str]) -> dict[str, Any]:
    return node_side.run_job(job_fields, built, names)


def connect(address: str, backends=()) -> None:
    """Join the driver to a lab. "local" starts a private one-node lab on this machine."""
    if ray.is_initialized():
        return
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": True}
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address == "local":
            ray.init(address="local", resources=host_resources(backends), include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"--ray {address}: no Ray cluster to join ({str(exc).splitlines()[0] if str(exc) else exc}). "
                        "Start one with `mnv4suite lab join --head` (docs/lab.md), or pass --ray local "
                        "for a one-machine lab") from None


def lab_nodes() -> list[Node]:
    return [Node.from_ray(entry) for entry in ray.nodes() if entry.get("Alive")]


def discover(pinned: str | None = None) -> Lab:
    lab = Lab(lab_nodes())
    if not lab.nodes:
        raise UserError("the Ray cluster has no lab nodes: start each node with "
                        "`mnv4suite lab join ADDRESS` (or `ray start --resources \"$(mnv4suite lab resources)\"`)")
    if pinned:
        lab.pinned = lab.resolve(pinned)
    return lab


class RayExecutor:
    """Runs jobs as Ray tasks; see the module docstring. Implements mnv4suite.runner.Executor.

    Unlike a local run, a lab run does not stop at a job's user error: a full disk or a missing package is
    its node's, not the lab's, so the other nodes' jobs run on and each failure keeps its reason."""

    def __init__(self, lab: Lab, registry: Registry):
        self.lab = lab
        self.registry = registry

    def _measured(self, job: Job) -> bool:
        return self.lab.measured(self.registry.backends.get(job.backend))

    def demand(self, job: Job) -> dict[str, float]:
        return job_demand(job.backend, job.mode, self._measured(job), self.lab.pinned)

    def placement(self, job: Job) -> str:
        """Where the job will go, in words, for the plan printed before the run."""
        spec = self.registry.backends.get(job.backend)
        if self._measured(job):
            return "measured on " + " or ".join(n.name for n in self.lab.holders(spec))
        return (f"prepared, stood in for and estimated on {' or '.join(n.name for n in self.lab.preparers(spec))} "
                f"(no node holds {spec.hardware})")

    def _artifact_group(self, job: Job) -> tuple | None:
        """Jobs that share one artifact build (the cache key's inputs as far as the driver knows them);
        None when the job builds its own: the artifact cannot travel, or only one node could build or
        run it, so a separate build would only add a process."""
        spec = self.registry.backends.get(job.backend)
        nodes = {n.id for n in (*self.lab.holders(spec), *self.lab.preparers(spec))}
        if not spec.ships_artifact or len(nodes) < 2:
            return None
        return (job.task, job.model, job.backend, job.weights, job.data, job.batch)

    def describe(self, jobs: Sequence[Job]) -> list[str]:
        """The plan as the run will carry it out: where each job goes, and how many artifacts travel."""
        lines = [f"  {job.name}: {self.placement(job)}" for job in jobs]
        shipped = [g for g in map(self._artifact_group, jobs) if g is not None]
        if shipped:
            lines.append(f"  artifacts: {len(set(shipped))} build(s) shipped to {len(shipped)} job(s) "
                         "through Ray's object store, checked by sha256 on arrival")
        return lines

    def run(self, jobs: Sequence[Job], started: Started, finished: Finished) -> None:
        names = {n.id: n.name for n in self.lab.nodes}
        builds: dict[tuple, Any] = {}
        pending: dict[Any, Job] = {}
        for job in jobs:
            start_job_dir(job)
            group = self._artifact_group(job)
            if group is not None and group not in builds:
                builds[group] = _build_artifacts.options(
                    resources=prepare_demand(job.backend, self.lab.pinned)).remote(asdict(job))
            built = builds.get(group) if group is not None else None
            ref = _run_job.options(resources=self.demand(job)).remote(asdict(job), built, names)
            pending[ref] = job
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                if ready:
                    self._take(ready[0], pending, started, finished)
                else:
                    self._fail_stranded(pending, started, finished)
        finally:
            # Ctrl-C or a bug: what has finished still comes home, and nothing keeps running for a driver
            # that stopped listening.
            try:
                if pending:
                    done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                    for ref in done:
                        self._take(ref, pending, started, finished)
            finally:
                for ref in [*pending, *builds.values()]:
                    ray.cancel(ref, force=True)

    def _take(self, ref: Any, pending: dict[Any, Job], started: Started, finished: Finished) -> None:
        """A finished task's job: its files home and its outcome reported."""
        job = pending.pop(ref)
        try:
            shipped = ray.get(ref)
        except ray_errors.RayError as exc:
            started(job, "the lab")
            outcome = _failed(job, type(exc).__name__, _lost_because(exc))
        else:
            try:
                where = str(shipped["node"]["name"] or shipped["node"]["hostname"])
                where += "".join(f" ({note})" for note in shipped["notes"])
            except (KeyError, TypeError):
                where = "the lab"
            started(job, printable(where, 400))
            try:
                outcome = self._home(job, shipped)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # not a job's files: this job's failure
                outcome = _failed(job, "BadShipment", f"the node's answer could not be brought home: {printable(exc)}")
        finished(outcome)

    def _home(self, job: Job, shipped: dict[str, Any]) -> Outcome:
        job_dir = Path(job.out_dir)
        node_side.bring_home(shipped["files"], job_dir)
        where = shipped["node"]["name"] or shipped["node"]["hostname"]
        outcome = read_outcome(job, job_dir, crash_hint=f"on {where}; its last output: {shipped['output'][-600:]}")
        if outcome.error and outcome.error.get("kind") == "WorkerCrashed":
            atomic_write_json(job_dir / ERROR_FILE, outcome.error)
        return outcome

    def _fail_stranded(self, pending: dict[Any, Job], started: Started, finished: Finished) -> None:
        """Jobs that no living node can take (their only node died): failed with the reason, not waited on."""
        alive = lab_nodes()
        for ref, job in list(pending.items()):
            demand = self.demand(job)
            if any(n.holds(demand) for n in alive):
                continue
            ray.cancel(ref, force=True)
            del pending[ref]
            started(job, "the lab")
            needs = ", ".join(k for k in demand if not k.endswith(":slot"))
            finished(_failed(job, "NoNodeLeft", f"no living lab node holds {needs} any more "
                             "(a node left the lab); rerun with --resume when it is back"))


def _lost_because(exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [repr(exc)])[0][:400]
    if isinstance(exc, (ray_errors.NodeDiedError, ray_errors.WorkerCrashedError, ray_errors.ObjectLostError)):
        return f"the Ray worker or node running it was lost {RETRIES + 1} times ({first}); rerun with --resume"
    return first


def _failed(job: Job, kind: str, message: str) -> Outcome:
    error = {"kind": kind, "user_error": False, "message": message}
    job_dir = Path(job.out_dir)
    atomic_write_json(job_dir / ERROR_FILE, error)
    return Outcome(job=job, job_dir=job_dir, error=error)


def describe(lab: Lab) -> str:
    """One line per node: what `mnv4suite lab nodes` prints."""
    rows = []
    for n in lab.nodes:
        rows.append(f"{n.name:<20} {n.address:<15} {n.id[:12]}  hardware: {', '.join(n.listed('hw')) or '-'}; "
                    f"measures: {', '.join(n.listed('measures')) or '-'}")
    return "\n".join(rows)


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()

