"""Built-in plugin: Core ML on the Apple Neural Engine. Declares specs only; `backend` holds the implementation.

Converting (coremltools, torch.export) works on any OS; predicting needs Core ML, which exists only
on macOS. The probe hook says which of the two this machine can do without importing anything.
"""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path

from mnv4suite.api import Availability, BackendSpec, Requirement, hookimpl, install_command

INSTALL = install_command("coreml")
REQUIRES = (
    Requirement("coremltools", INSTALL),
    Requirement("torch", INSTALL),  # the Core ML model is converted from the PyTorch reference
)


def _runtime_binding_present() -> bool | None:
    """Whether coremltools ships its Core ML binding (libcoremlpython, macOS wheels only); None if unknown."""
    spec = importlib.util.find_spec("coremltools")
    if spec is None or not spec.submodule_search_locations:
        return None
    return any(any(Path(d).glob("libcoremlpython*")) for d in spec.submodule_search_locations)


def probe_coreml(system: str | None = None, machine: str | None = None) -> Availability:
    """Core ML needs macOS, and the Neural Engine needs Apple silicon."""
    system = system or platform.system()
    machine = machine or platform.machine()
    if system != "Darwin":
        return Availability.missing(f"Core ML runs only on macOS; this is {system} {machine}")
    if machine != "arm64":
        return Availability.missing(
            f"no Apple Neural Engine: this Mac has an Intel CPU ({machine}); the Neural Engine needs Apple silicon (arm64)"
        )
    if _runtime_binding_present() is False:
        return Availability.missing(
            "coremltools has no Core ML runtime binding (libcoremlpython) for this Python, so it can convert "
            f"but not predict: install a macOS wheel of coremltools for Python {platform.python_version()}"
        )
    return Availability.ok(
        "measured on this Mac's Neural Engine, not an iPhone 13's: the latency is this machine's"
    )


@hookimpl
def register_backends():
    return [
        BackendSpec(
            id="coreml-ane",
            framework="coremltools",
            delegate="ane",
            precision="fp16",
            hardware="iphone13_ane",
            implementation="mnv4suite.plugins.coreml.backend:CoreMLANEBackend",
            requires=REQUIRES,
            probe_hook=probe_coreml,
            summary="Core ML ML Program (fp16, CPU_AND_NE) converted with coremltools from torch.export; .mlpackage cached as a zip",
        )
    ]
