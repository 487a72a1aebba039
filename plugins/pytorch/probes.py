"""Cheap availability checks for the PyTorch backends: no torch import, only files and PATH.

`mnv4suite list` calls these for every backend, so each must take microseconds. The full checks
(`torch.cuda.is_available()`, the device name) run in the backends' `probe()` at run time.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

from mnv4suite.api import Availability

NVIDIA_NODES = ("/dev/nvidia0", "/proc/driver/nvidia")
NO_NVIDIA_DEVICE = f"no NVIDIA device (neither {' nor '.join(NVIDIA_NODES)} exists)"
#: C++ compilers AOTInductor can build with, in the order inductor itself tries them ($CXX first).
COMPILERS = ("g++", "c++", "clang++")


def torch_build() -> tuple[str | None, str | None]:
    """(torch version, CUDA version or None) read from torch/version.py without importing torch.

    (None, None) when torch is absent or the file cannot be read.
    """
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None, None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return None, None
    version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
    cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*(?:['\"]([^'\"]+)['\"]|None)", text, re.M)
    return (version.group(1) if version else None), (cuda.group(1) if cuda else None)


def cpu_build_reason(version: str | None) -> str:
    return f"torch is the CPU build ({version or 'unknown version'}): no CUDA"


def nvidia_device_present() -> bool:
    return any(os.path.exists(node) for node in NVIDIA_NODES)


def probe_cuda() -> Availability:
    """A CUDA-enabled torch build and an NVIDIA device node; every missing one is a reason."""
    reasons = []
    version, cuda = torch_build()
    if version is not None and cuda is None:
        reasons.append(cpu_build_reason(version))
    if not nvidia_device_present():
        reasons.append(NO_NVIDIA_DEVICE)
    return Availability.missing(*reasons) if reasons else Availability.ok()


def find_cxx() -> str | None:
    """The C++ compiler inductor would use: $CXX, else the first of COMPILERS on PATH."""
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"]) or None
    return next(filter(None, (shutil.which(c) for c in COMPILERS)), None)


def no_compiler_reason() -> str:
    named = f"$CXX={os.environ['CXX']} is not on PATH" if os.environ.get("CXX") else f"none of {', '.join(COMPILERS)} is on PATH"
    return (
        f"no C++ compiler ({named}): AOTInductor compiles the model to a shared library with one. "
        "Install g++ (e.g. apt-get install g++) or use the eager backend 'pytorch-cpu'"
    )


def probe_compiler() -> Availability:
    return Availability.ok() if find_cxx() else Availability.missing(no_compiler_reason())
