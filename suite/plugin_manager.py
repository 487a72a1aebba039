"""Finding plugins: built-ins first, then every package with a `mnv4suite` entry point.

Built-in plugins are registered exactly as third-party ones are (the pytest/datasette way):
each is a module whose hook implementations return specs. Nothing heavy is imported here.
"""

from __future__ import annotations

import importlib
import os
from functools import lru_cache

import pluggy

from mnv4suite import hookspecs
from mnv4suite.api import PROJECT
from mnv4suite.errors import UserError

#: Modules of the built-in plugins. Each must stay cheap to import.
BUILTIN_PLUGINS = (
    "mnv4suite.plugins.pytorch",
    "mnv4suite.plugins.onnxruntime",
    "mnv4suite.plugins.tflite",
    "mnv4suite.plugins.coreml",
    "mnv4suite.plugins.devices",
    "mnv4suite.tasks.imagenet",
    "mnv4suite.tasks.coco",
    "mnv4suite.reference_models.plugin",
)

#: Set to a non-empty value to skip third-party entry points (e.g. to rule a plugin out).
DISABLE_ENV = "MNV4SUITE_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated plugin modules to load without installing them (handy while writing one).
PLUGINS_ENV = "MNV4SUITE_PLUGINS"


def create_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entrypoints and not os.environ.get(DISABLE_ENV):
        pm.load_setuptools_entrypoints(PROJECT)
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise UserError(f"cannot import plugin module '{name}' named in ${PLUGINS_ENV}: {exc}") from exc
        pm.register(module, name=name)
    return pm


@lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    return create_plugin_manager()

