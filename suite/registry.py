"""What the plugins offer, by id: backends, tasks, models and devices.

Each spec remembers the plugin that provided it, so results can name the plugin and its version
and a clash between two plugins is reported with both names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Generic, Iterator, TypeVar

import pluggy

from mnv4suite.api import BackendSpec, DeviceProfile, ModelSpec, TaskSpec
from mnv4suite.errors import UnknownNameError, UserError

T = TypeVar("T")


@dataclass
class Catalog(Generic[T]):
    """Specs of one kind, looked up by id or alias."""

    kind: str
    items: dict[str, T] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)  # id -> plugin name
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> id

    def add(self, spec: T, plugin: str) -> None:
        spec_id = spec.id  # type: ignore[attr-defined]
        if spec_id in self.items:
            raise UserError(
                f"{self.kind} '{spec_id}' is provided by two plugins: '{self.providers[spec_id]}' and "
                f"'{plugin}'. Uninstall one of them."
            )
        self.items[spec_id] = spec
        self.providers[spec_id] = plugin
        for alias in getattr(spec, "aliases", ()):
            self.aliases[alias] = spec_id

    def get(self, name: str) -> T:
        spec_id = self.aliases.get(name, name)
        if spec_id not in self.items:
            raise UnknownNameError(self.kind, name, self.items)
        return self.items[spec_id]

    def __iter__(self) -> Iterator[T]:
        return iter(self.items.values())

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.items


@dataclass
class Registry:
    backends: Catalog[BackendSpec]
    tasks: Catalog[TaskSpec]
    models: Catalog[ModelSpec]
    devices: Catalog[DeviceProfile]
    plugin_versions: dict[str, str]

    def provider(self, spec) -> str:
        for catalog in (self.backends, self.tasks, self.models, self.devices):
            if spec.id in catalog.items and catalog.items[spec.id] is spec:
                return catalog.providers[spec.id]
        return "unknown"


def build_registry(pm: pluggy.PluginManager) -> Registry:
    catalogs = {
        "register_backends": Catalog[BackendSpec]("backend"),
        "register_tasks": Catalog[TaskSpec]("task"),
        "register_models": Catalog[ModelSpec]("model"),
        "register_devices": Catalog[DeviceProfile]("device"),
    }
    for hook_name, catalog in catalogs.items():
        # Call each implementation on its own so every spec is attributed to its plugin.
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            for spec in impl.function() or ():
                catalog.add(spec, impl.plugin_name)
    versions: dict[str, str] = {}
    for plugin, dist in pm.list_plugin_distinfo():
        versions[pm.get_name(plugin) or dist.project_name] = f"{dist.project_name} {dist.version}"
    return Registry(
        backends=catalogs["register_backends"],
        tasks=catalogs["register_tasks"],
        models=catalogs["register_models"],
        devices=catalogs["register_devices"],
        plugin_versions=versions,
    )


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    from mnv4suite.plugin_manager import get_plugin_manager

    return build_registry(get_plugin_manager())
