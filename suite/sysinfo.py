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


def _read(path: str) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return text[:200] or None


def _command(*argv: str) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()[:200] or None if out.returncode == 0 else None


@lru_cache(maxsize=1)
def device_info() -> dict:
    """Manufacturer, model and SoC as the OS reports them (MLPerf Mobile's device environment): Android's
    build properties, Linux DMI (PCs and servers) and the device tree (boards), macOS sysctl."""
    if Path("/system/build.prop").exists():  # Android
        return {"manufacturer": _command("getprop", "ro.product.manufacturer"),
                "model": _command("getprop", "ro.product.model"),
                "soc": _command("getprop", "ro.soc.model") or _command("getprop", "ro.board.platform")}
    if platform.system() == "Darwin":
        return {"manufacturer": "Apple", "model": _command("sysctl", "-n", "hw.model"),
                "soc": _command("sysctl", "-n", "machdep.cpu.brand_string")}
    model = _read("/sys/class/dmi/id/product_name") or _read("/proc/device-tree/model")
    soc = None
    compatible = _read("/proc/device-tree/compatible")  # "vendor,board\0vendor,soc": the SoC comes last
    if compatible:
        soc = compatible.split("\0")[-1] or None
    return {"manufacturer": _read("/sys/class/dmi/id/sys_vendor"), "model": model, "soc": soc or cpu_model()}


def system_info() -> dict:
    frameworks = {name: v for name in FRAMEWORK_DISTRIBUTIONS if (v := distribution_version(name))}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "device": device_info(),
        "frameworks": frameworks,
    }


def suite_info() -> dict:
    commit = git_commit()
    return {"version": mnv4suite.__version__, "git_commit": commit,
            "git_dirty": None if commit == "unknown" else commit.endswith("-dirty")}


def node_info() -> dict:
    """Which machine ran a job; a lab run adds the node's lab name and Ray node id (mnv4suite.lab)."""
    import socket

    return {"hostname": socket.gethostname(), "name": None, "ray_node_id": None}
