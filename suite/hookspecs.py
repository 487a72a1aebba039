"""Hook specifications: the only way anything, built-in or third-party, joins the suite.

Each hook returns a list of cheap specs (see mnv4suite.api). A plugin is a module or object
with functions decorated by `mnv4suite.hookimpl`, registered under the entry-point group
"mnv4suite". Hooks must not import heavy frameworks: specs point at implementations by name.
"""

from __future__ import annotations

import pluggy

from mnv4suite.api import PROJECT, BackendSpec, DeviceProfile, ModelSpec, TaskSpec

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def register_backends() -> list[BackendSpec]:
    """Framework x delegate pairs this plugin provides, e.g. `tflite-edgetpu`."""


@hookspec
def register_tasks() -> list[TaskSpec]:
    """Tasks (dataset + post-processing + metric) this plugin provides."""


@hookspec
def register_models() -> list[ModelSpec]:
    """Models this plugin provides."""


@hookspec
def register_devices() -> list[DeviceProfile]:
    """Hardware profiles (peak compute, bandwidth, ridge point) used for roofline estimates."""
