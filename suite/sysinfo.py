"""A description of the machine a result came from, gathered without importing any framework."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import mnv4suite

#: Distributions whose versions a result records when they are installed.
FRAMEWORK_DISTRIBUTIONS = (
    "torch",
    "onnx",
    "onnxruntime",
    "onnxruntime-qnn",
    "onnxscript",
    "tensorflow",
    "ai-edge-litert",
    "coremltools",
    "numpy",
    "mlcommons-loadgen",
    "pluggy",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The suite's commit when it runs from a checkout; 'unknown' for an installed copy."""
    source = Path(mnv4suite.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def system_info() -> dict:
    frameworks = {name: v for name in FRAMEWORK_DISTRIBUTIONS if (v := distribution_version(name))}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "frameworks": frameworks,
    }


def suite_info() -> dict:
    return {"version": mnv4suite.__version__, "git_commit": git_commit()}


def node_info() -> dict:
    """Which machine ran a job; a lab run adds the node's lab name and Ray node id (mnv4suite.lab)."""
    import socket

    return {"hostname": socket.gethostname(), "name": None, "ray_node_id": None}
