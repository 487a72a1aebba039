"""Cheap probes for the ONNX Runtime backends: installed wheels, shared libraries, device nodes.

Nothing here imports onnxruntime (or any framework): `mnv4suite list` runs these for every
backend and must stay fast. The full checks, which do import onnxruntime, live in the backends'
``probe()``.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import os
import platform
import sys
from pathlib import Path

from mnv4suite.api import Availability, install_command

CUDA_INSTALL = "pip uninstall -y onnxruntime && pip install onnxruntime-gpu"
QNN_INSTALL = install_command("qnn") + " (the onnxruntime-qnn plugin execution provider)"

#: What the x86-64 (and x86) wheels of onnxruntime-qnn carry as libQnnHtp.so: Qualcomm's HTP emulator.
X86_MACHINES = ("x86_64", "amd64", "x86", "i386", "i686")
#: FastRPC device nodes through which the application processor reaches the Hexagon DSP/NPU
#: (Linux and Android kernels name them differently across generations).
FASTRPC_NODES = (
    "/dev/fastrpc-cdsp",
    "/dev/fastrpc-cdsp-secure",
    "/dev/cdsprpc-smd",
    "/dev/fastrpc-adsp",
    "/dev/adsprpc-smd",
    "/dev/fastrpc-hta",
)
NO_HEXAGON_ON_X86 = "no Hexagon device: this is x86-64; the QNN HTP backend here is Qualcomm's emulator"


def distribution_version(name: str) -> str | None:
    """Version of an installed distribution (wheel), or None; reads metadata only."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_dir(module: str) -> Path | None:
    """Folder of a top-level package, located without executing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def machine() -> str:
    return platform.machine().lower()


# --------------------------------------------------------------------------- CUDA


def ort_cuda_provider_library() -> Path | None:
    """ONNX Runtime's CUDA provider library inside the installed `onnxruntime` module, if any."""
    folder = package_dir("onnxruntime")
    if folder is None:
        return None
    names = ("libonnxruntime_providers_cuda.so", "onnxruntime_providers_cuda.dll", "libonnxruntime_providers_cuda.dylib")
    return next((folder / "capi" / n for n in names if (folder / "capi" / n).is_file()), None)


def nvidia_device_nodes() -> list[str]:
    """NVIDIA GPUs the kernel exposes (/dev/nvidia0, ...), and WSL's GPU paravirtualisation node."""
    nodes = sorted(glob.glob("/dev/nvidia[0-9]*"))
    if os.path.exists("/dev/dxg"):
        nodes.append("/dev/dxg")
    return nodes


def nvidia_gpu_names() -> list[str]:
    """GPU model names from the NVIDIA driver's /proc files (Linux), without loading CUDA."""
    names = []
    for info in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        try:
            for line in Path(info).read_text().splitlines():
                if line.startswith("Model:"):
                    names.append(line.split(":", 1)[1].strip())
        except OSError:
            continue
    return names


def cuda_probe() -> Availability:
    """ONNX Runtime's CUDA build installed, and an NVIDIA GPU the kernel can see."""
    reasons = []
    gpu_wheel = distribution_version("onnxruntime-gpu")
    cpu_wheel = distribution_version("onnxruntime")
    library = ort_cuda_provider_library()
    if gpu_wheel is None:
        which = f"the installed wheel is 'onnxruntime' {cpu_wheel}, the CPU build" if cpu_wheel else "no onnxruntime-gpu wheel"
        reasons.append(f"ONNX Runtime's CUDA build is not installed: {which}, which has no CUDAExecutionProvider "
                       f"(fix: {CUDA_INSTALL})")
    elif library is None:
        if cpu_wheel is not None:
            reasons.append(
                f"both 'onnxruntime' {cpu_wheel} and 'onnxruntime-gpu' {gpu_wheel} are installed and the CPU wheel's "
                "files won the shared 'onnxruntime' module (no libonnxruntime_providers_cuda); "
                "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
            )
        else:
            reasons.append(f"onnxruntime-gpu {gpu_wheel} is installed but its CUDA provider library is missing (reinstall it)")
    if sys.platform.startswith("linux") and not nvidia_device_nodes():
        reasons.append("no NVIDIA GPU: no /dev/nvidia[0-9]* device node (no GPU, or the NVIDIA driver is not loaded)")
    if reasons:
        return Availability.missing(*reasons)
    gpus = nvidia_gpu_names()
    return Availability.ok(*([f"GPU: {', '.join(gpus)}"] if gpus else []))


# --------------------------------------------------------------------------- Qualcomm QNN


def qnn_library(name: str) -> Path | None:
    """A shared library shipped in the onnxruntime_qnn wheel (e.g. "QnnHtp"), if present."""
    folder = package_dir("onnxruntime_qnn")
    if folder is None:
        return None
    for candidate in (f"lib{name}.so", f"{name}.dll"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def fastrpc_nodes() -> list[str]:
    return [node for node in FASTRPC_NODES if os.path.exists(node)]


def qnn_probe() -> Availability:
    """A Hexagon NPU this process can reach, and the QNN EP with its HTP backend library."""
    reasons = []
    if package_dir("onnxruntime_qnn") is not None:
        if qnn_library("onnxruntime_providers_qnn") is None:
            reasons.append(f"onnxruntime_qnn has no QNN execution-provider library (reinstall: {QNN_INSTALL})")
        if qnn_library("QnnHtp") is None:
            reasons.append(f"onnxruntime_qnn has no QNN HTP backend library (libQnnHtp) (reinstall: {QNN_INSTALL})")
    arch = machine()
    if arch in X86_MACHINES:
        reasons.insert(0, NO_HEXAGON_ON_X86)
    elif sys.platform.startswith("linux"):  # Android reports "linux" too
        if not fastrpc_nodes():
            reasons.insert(0, f"no Hexagon device: no FastRPC device node ({', '.join(FASTRPC_NODES)}) on this {arch} machine")
    elif sys.platform == "win32" and arch in ("arm64", "aarch64"):
        pass  # Windows on Snapdragon: the QNN EP enumerates the NPU itself; probe() checks it
    else:
        reasons.insert(0, f"no Hexagon device: this is {arch} {sys.platform}; QNN runs on Snapdragon "
                          "(Android/Linux aarch64 or Windows on ARM)")
    return Availability.missing(*reasons) if reasons else Availability.ok()


def qnn_emulator_here() -> bool:
    """Whether libQnnHtp.so here is Qualcomm's x86-64 HTP emulator (the wheel for x86 hosts ships it)."""
    return machine() in X86_MACHINES and qnn_library("QnnHtp") is not None
