"""Cheap probes for the TFLite / LiteRT delegates: shared libraries, device nodes, the Edge TPU compiler.

Nothing here imports a framework (not even ``ai_edge_litert``): ``mnv4suite list`` runs these for
every backend and must stay fast. Shared libraries are looked up the way the dynamic loader would
find them (``$LD_LIBRARY_PATH``, the ``ldconfig`` cache, the usual system and Android folders),
without loading them; one ``ldconfig -p`` per process instead of ``ctypes.util.find_library``, which
spawns ``ldconfig``, ``gcc`` and ``ld`` for every name it does not find. The backends' ``probe()``
then loads the delegate for real.

Each probe names exactly what it looked for, so "not available" always says what to install or plug in.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from mnv4suite.api import Availability

# --------------------------------------------------------------------------- environment overrides

#: A path to the TFLite GPU delegate built as an external delegate (exports ``tflite_plugin_create_delegate``).
GPU_DELEGATE_ENV = "MNV4SUITE_TFLITE_GPU_DELEGATE"
#: A path to the Edge TPU runtime library, when it is not where the loader finds it.
EDGETPU_LIBRARY_ENV = "MNV4SUITE_EDGETPU_LIBRARY"
#: A path to the ``edgetpu_compiler`` binary, when it is not on $PATH.
EDGETPU_COMPILER_ENV = "MNV4SUITE_EDGETPU_COMPILER"
#: A path to the TFLite Hexagon delegate built as an external delegate.
HEXAGON_DELEGATE_ENV = "MNV4SUITE_TFLITE_HEXAGON_DELEGATE"

# --------------------------------------------------------------------------- what is looked for

GPU_DELEGATE_NAMES = ("libtensorflowlite_gpu_delegate.so", "libtensorflowlite_gpu_delegate.dylib",
                      "tensorflowlite_gpu_delegate.dll")
#: The Edge TPU runtime (https://coral.ai/docs/edgetpu/tflite-python/#load-tensorflow-lite-and-run-an-inference).
EDGETPU_LIBRARY_NAMES = {"linux": "libedgetpu.so.1", "darwin": "libedgetpu.1.dylib", "win32": "edgetpu.dll"}
EDGETPU_COMPILER = "edgetpu_compiler"
#: PCIe / M.2 Coral modules appear as /dev/apex_N (gasket + apex kernel drivers).
EDGETPU_PCIE_GLOB = "/dev/apex_*"
#: USB Coral Accelerator: 1a6e:089a before its firmware is loaded, 18d1:9302 after.
EDGETPU_USB_IDS = (("1a6e", "089a"), ("18d1", "9302"))
USB_DEVICES = "/sys/bus/usb/devices"

#: The TFLite Hexagon delegate needs, on the phone: a delegate library the Python interpreter can
#: load, Qualcomm's libhexagon_interface.so, and the hexagon_nn skeleton matching the DSP's version.
HEXAGON_DELEGATE_NAMES = ("libtensorflowlite_hexagon_delegate.so",)
HEXAGON_INTERFACE = "libhexagon_interface.so"
HEXAGON_SKELS = ("libhexagon_nn_skel.so", "libhexagon_nn_skel_v65.so", "libhexagon_nn_skel_v66.so")
#: FastRPC device nodes through which the application processor reaches the Hexagon DSPs.
FASTRPC_NODES = ("/dev/adsprpc-smd", "/dev/cdsprpc-smd", "/dev/fastrpc-cdsp", "/dev/fastrpc-adsp")

#: GPUs the TFLite GPU delegate can drive (OpenCL, or OpenGL ES), by their kernel device nodes.
GPU_NODE_GLOBS = ("/dev/dri/renderD*", "/dev/nvidia[0-9]*", "/dev/mali[0-9]*", "/dev/kgsl-3d0")
OPENCL_ICD_GLOBS = ("/etc/OpenCL/vendors/*.icd",)
OPENCL_LIBRARY = "libOpenCL.so"

#: Folders the dynamic loader (or Android's linker namespaces) commonly searches, after $LD_LIBRARY_PATH.
LIBRARY_DIRS = (
    "/usr/local/lib", "/usr/lib", "/lib", "/usr/lib64", "/lib64",
    f"/usr/lib/{platform.machine()}-linux-gnu", f"/lib/{platform.machine()}-linux-gnu",
    "/opt/homebrew/lib",
    "/system/lib64", "/system/lib", "/vendor/lib64", "/vendor/lib", "/system/vendor/lib64",
    "/vendor/lib/rfsa/adsp", "/vendor/dsp/cdsp", "/data/local/tmp",
)
X86_MACHINES = ("x86_64", "amd64", "x86", "i386", "i686")


def machine() -> str:
    return platform.machine().lower()


def is_android() -> bool:
    return sys.platform == "android" or "ANDROID_ROOT" in os.environ or os.path.exists("/system/build.prop")


# --------------------------------------------------------------------------- finding shared libraries


@lru_cache(maxsize=1)
def ldconfig_cache() -> dict[str, str]:
    """soname -> path from ``ldconfig -p`` (Linux glibc); empty elsewhere or when it fails."""
    if not sys.platform.startswith("linux"):
        return {}
    exe = shutil.which("ldconfig")
    exe = exe or next((p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), None)
    if exe is None:
        return {}
    try:
        out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        name, sep, path = line.strip().partition(" => ")
        if sep:
            found.setdefault(name.split(" (", 1)[0], path.strip())
    return found


def search_dirs(extra: tuple[str, ...] = ()) -> list[str]:
    env = [d for var in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH")
           for d in os.environ.get(var, "").split(os.pathsep) if d]
    return list(dict.fromkeys([*extra, *env, *LIBRARY_DIRS]))


def find_library(names, env: str | None = None, extra_dirs: tuple[str, ...] = ()) -> str | None:
    """Path of the first of ``names`` the loader would find (or ``$env`` when it names a file), else None."""
    if env and os.environ.get(env):
        path = os.path.expanduser(os.environ[env])
        return path if os.path.isfile(path) else None
    names = (names,) if isinstance(names, str) else tuple(names)
    for folder in search_dirs(extra_dirs):
        for name in names:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                return candidate
    cache = ldconfig_cache()
    return next((cache[n] for n in names if n in cache), None)


def where_looked(names, env: str | None = None, extra_dirs: tuple[str, ...] = (), hint: str = "") -> str:
    """"NAME not found in ... (hint, or set $ENV)": a missing library, where it was looked for, the fix."""
    names = (names,) if isinstance(names, str) else tuple(names)
    if env and os.environ.get(env):
        return f"${env} is set to {os.environ[env]}, which is not a file"
    places = ", ".join([*extra_dirs, "$LD_LIBRARY_PATH", "the ldconfig cache"]) + " or the usual library folders"
    fixes = [f for f in (hint, f"or set ${env} to its path" if env else "") if f]
    return f"{' / '.join(names)} not found in {places}" + (f" ({', '.join(fixes)})" if fixes else "")


# --------------------------------------------------------------------------- GPU


def gpu_device_nodes() -> list[str]:
    return sorted(n for pattern in GPU_NODE_GLOBS for n in glob.glob(pattern))


def opencl_runtime() -> str | None:
    """An OpenCL ICD file or libOpenCL, whichever is found first."""
    icds = sorted(p for pattern in OPENCL_ICD_GLOBS for p in glob.glob(pattern))
    return icds[0] if icds else find_library((OPENCL_LIBRARY, "libOpenCL.so.1"))


def gpu_delegate_library() -> str | None:
    return find_library(GPU_DELEGATE_NAMES, GPU_DELEGATE_ENV)


def gpu_probe() -> Availability:
    """The TFLite GPU delegate library, a GPU device node, and an OpenCL runtime for the delegate to use."""
    reasons = []
    if gpu_delegate_library() is None:
        hint = "an external-delegate build exporting tflite_plugin_create_delegate"
        reasons.append("no TFLite GPU delegate: " + where_looked(GPU_DELEGATE_NAMES[0], GPU_DELEGATE_ENV, hint=hint))
    nodes = gpu_device_nodes()
    if not nodes:
        reasons.append(f"no GPU: no device node {', '.join(GPU_NODE_GLOBS)}")
    if opencl_runtime() is None:
        reasons.append(f"no OpenCL runtime for the GPU delegate: no {OPENCL_ICD_GLOBS[0]}, no {OPENCL_LIBRARY}")
    if reasons:
        return Availability.missing(*reasons)
    return Availability.ok(f"GPU device node(s): {', '.join(nodes)}")


# --------------------------------------------------------------------------- Edge TPU


def edgetpu_library() -> str | None:
    name = EDGETPU_LIBRARY_NAMES.get(sys.platform, EDGETPU_LIBRARY_NAMES["linux"])
    return find_library(name, EDGETPU_LIBRARY_ENV)


def edgetpu_compiler() -> str | None:
    """Path of ``edgetpu_compiler`` ($MNV4SUITE_EDGETPU_COMPILER, else $PATH), or None."""
    if os.environ.get(EDGETPU_COMPILER_ENV):
        path = os.path.expanduser(os.environ[EDGETPU_COMPILER_ENV])
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which(EDGETPU_COMPILER)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip().lower()
    except OSError:
        return ""


def edgetpu_usb_devices(root: str | None = None) -> list[str]:
    """USB Coral Accelerators, as "vendor:product (port)" of each matching /sys/bus/usb/devices entry."""
    found = []
    for vendor_file in sorted(Path(root or USB_DEVICES).glob("*/idVendor")):
        ids = (_read(vendor_file), _read(vendor_file.with_name("idProduct")))
        if ids in EDGETPU_USB_IDS:
            found.append(f"{ids[0]}:{ids[1]} ({vendor_file.parent.name})")
    return found


def edgetpu_devices() -> list[str]:
    return sorted(glob.glob(EDGETPU_PCIE_GLOB)) + [f"USB {d}" for d in edgetpu_usb_devices()]


def edgetpu_compiler_missing() -> str:
    if os.environ.get(EDGETPU_COMPILER_ENV):
        value = os.environ[EDGETPU_COMPILER_ENV]
        return f"no Edge TPU compiler: ${EDGETPU_COMPILER_ENV} is set to {value}, not an executable"
    return (f"no Edge TPU compiler: {EDGETPU_COMPILER} is not on $PATH (x86-64 Debian/Ubuntu: apt-get install "
            f"edgetpu-compiler from Coral's apt repository packages.cloud.google.com/apt, or set ${EDGETPU_COMPILER_ENV})")


def edgetpu_probe() -> Availability:
    """libedgetpu, a Coral Edge TPU (PCIe /dev/apex_N or USB), and edgetpu_compiler to make the model it runs."""
    reasons = []
    if edgetpu_library() is None:
        name = EDGETPU_LIBRARY_NAMES.get(sys.platform, EDGETPU_LIBRARY_NAMES["linux"])
        reasons.append("no Edge TPU runtime: " + where_looked(name, EDGETPU_LIBRARY_ENV,
                                                              hint="apt-get install libedgetpu1-std"))
    devices = edgetpu_devices()
    if not devices:
        usb = " or ".join(f"{v}:{p}" for v, p in EDGETPU_USB_IDS)
        reasons.append(f"no Edge TPU device: no {EDGETPU_PCIE_GLOB} (PCIe/M.2 Coral) and no USB Coral ({usb}) "
                       f"in {USB_DEVICES}/*/idVendor")
    if edgetpu_compiler() is None:
        reasons.append(edgetpu_compiler_missing())
    if reasons:
        return Availability.missing(*reasons)
    return Availability.ok(f"Edge TPU: {', '.join(devices)}")


# --------------------------------------------------------------------------- Hexagon DSP


def hexagon_dirs() -> tuple[str, ...]:
    """Where the DSP skeletons live: $ADSP_LIBRARY_PATH (';'-separated on Android), then the usual folders."""
    return tuple(d for d in os.environ.get("ADSP_LIBRARY_PATH", "").replace(";", os.pathsep).split(os.pathsep) if d)


def hexagon_probe() -> Availability:
    """Android on a Snapdragon with a Hexagon DSP, the delegate, libhexagon_interface.so and a hexagon_nn skeleton."""
    reasons = []
    arch = machine()
    if arch in X86_MACHINES:
        reasons.append(f"no Hexagon DSP: this is {arch}, and the TFLite Hexagon delegate runs only on Android on "
                       "Qualcomm Snapdragon (arm64)")
    elif not is_android():
        reasons.append(f"not Android: the TFLite Hexagon delegate runs only on Android on Qualcomm Snapdragon "
                       f"(this is {arch} {sys.platform})")
    nodes = [n for n in FASTRPC_NODES if os.path.exists(n)]
    if not nodes:
        reasons.append(f"no FastRPC device node to reach the DSP ({', '.join(FASTRPC_NODES)})")
    if find_library(HEXAGON_DELEGATE_NAMES, HEXAGON_DELEGATE_ENV) is None:
        reasons.append("no TFLite Hexagon delegate: " + where_looked(
            HEXAGON_DELEGATE_NAMES, HEXAGON_DELEGATE_ENV, hint="an external-delegate build of the Hexagon delegate"))
    missing = [HEXAGON_INTERFACE] if find_library(HEXAGON_INTERFACE, extra_dirs=hexagon_dirs()) is None else []
    if not any(find_library(skel, extra_dirs=hexagon_dirs()) for skel in HEXAGON_SKELS):
        missing.append(f"a hexagon_nn DSP skeleton ({' / '.join(HEXAGON_SKELS)})")
    if missing:
        reasons.append(f"missing {' and '.join(missing)} in $ADSP_LIBRARY_PATH, $LD_LIBRARY_PATH or /vendor/lib64, "
                       "/data/local/tmp, ... (Qualcomm's hexagon_nn libraries that ship with the TFLite Hexagon delegate)")
    if reasons:
        return Availability.missing(*reasons)
    return Availability.ok(f"FastRPC: {', '.join(nodes)}")
