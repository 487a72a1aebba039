"""What a lab node does for the driver: build artifacts, run one job, hand the files back.

Each job still runs in its own worker process (`python -m mnv4suite.worker`), exactly as locally:
LoadGen allows one test per process, and a crash must not take the node's Ray worker with it. The
job writes into a private temporary folder; its files travel home as bytes, and the folder goes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mnv4suite.cache import ArtifactCache
from mnv4suite.fileio import atomic_write_bytes
from mnv4suite.results import RESULT_FILE
from mnv4suite.runner import start_job_dir, worker_command, worker_env
from mnv4suite.worker import PREPARE_ONLY, Job

#: Where a node keeps its running jobs' folders (default: the system's temporary folder).
WORKDIR_ENV = "MNV4SUITE_LAB_WORKDIR"
#: The job's own copy of job.json stays home: the driver wrote it with its own paths.
KEPT_AT_HOME = ("job.json",)
OUTPUT_TAIL = 4000


def _die_with_parent() -> None:
    """Linux: the job process is killed when the Ray worker that started it dies (a node taken down
    mid-job must not leave a benchmark running on it)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _run_worker(command: list[str]) -> subprocess.CompletedProcess:
    hook = _die_with_parent if sys.platform.startswith("linux") else None
    return subprocess.run(command, env=worker_env(), capture_output=True, text=True, check=False, preexec_fn=hook)


def identity(names: dict[str, str]) -> dict[str, Any]:
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return {"hostname": socket.gethostname(), "name": names.get(node_id), "ray_node_id": node_id}


def build_artifacts(job_fields: dict[str, Any]) -> dict[str, Any]:
    """Run the job's preparation only, and return every cache entry it used with the file's bytes."""
    job = Job(**job_fields)
    job.cache_dir = None  # the node's own cache
    with tempfile.TemporaryDirectory(prefix="mnv4suite-prepare-") as tmp:
        job.out_dir = tmp
        job_file, entries_file = Path(tmp) / "job.json", Path(tmp) / "entries.json"
        job.save(job_file)
        proc = _run_worker(worker_command(job_file, PREPARE_ONLY, str(entries_file)))
        if proc.returncode != 0 or not entries_file.is_file():
            # The job's own worker will meet the same problem and report it in its error.json.
            return {"entries": [], "error": (proc.stdout + proc.stderr)[-OUTPUT_TAIL:]}
        entries = json.loads(entries_file.read_text())
    return {"entries": [{**e, "data": Path(e.pop("path")).read_bytes()} for e in entries]}


def install_artifacts(built: dict[str, Any] | None, cache: ArtifactCache) -> list[str]:
    """Put shipped artifacts into this node's cache, each checked against its sha256; returns notes."""
    notes = []
    for entry in (built or {}).get("entries", []):
        try:
            cache.install(entry["key"], entry["suffix"], entry["data"], entry["sha256"])
        except ValueError as exc:  # damaged on the way: the job builds its own
            notes.append(f"{exc}; building it on this node instead")
    return notes


def run_job(job_fields: dict[str, Any], built: dict[str, Any] | None, names: dict[str, str]) -> dict[str, Any]:
    """One job on this node; returns its files (path relative to the job folder -> bytes)."""
    job = Job(**job_fields)
    job.node = identity(names)
    job.progress = False  # nobody watches a node's terminal; the driver prints each outcome
    job.cache_dir = None
    notes = install_artifacts(built, ArtifactCache(None))
    tmp = Path(tempfile.mkdtemp(prefix="mnv4suite-job-", dir=os.environ.get(WORKDIR_ENV) or None))
    try:
        job.out_dir = str(tmp / job.name)
        job_dir = start_job_dir(job)
        proc = _run_worker(worker_command(job_dir / "job.json"))
        files = {str(p.relative_to(job_dir)): p.read_bytes() for p in sorted(job_dir.rglob("*"))
                 if p.is_file() and p.name not in KEPT_AT_HOME}
        return {"files": files, "node": job.node, "notes": notes, "returncode": proc.returncode,
                "output": (proc.stdout + proc.stderr)[-OUTPUT_TAIL:]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bring_home(files: dict[str, bytes], job_dir: Path) -> None:
    """Write a job's files into its folder at the driver: relative paths inside it only, atomically,
    and the result last, so a folder with a result always has its logs (what --resume trusts)."""
    root = job_dir.resolve()
    for name, data in sorted(files.items(), key=lambda item: item[0] == RESULT_FILE):
        target = (root / name).resolve()
        if not target.is_relative_to(root) or target == root:
            raise ValueError(f"a lab node returned a file outside the job folder: {name!r}")
        atomic_write_bytes(target, data)

