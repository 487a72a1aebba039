"""`mnv4suite list`: what the installed plugins offer, rendered from specs alone.

Availability here is the cheap probe (packages, shared libraries, device nodes); nothing is
imported, so the listing stays fast and works even when a framework is broken.
"""

from __future__ import annotations

from tabulate import tabulate

from mnv4suite.registry import Registry


def _provider(registry: Registry, catalog, spec_id: str) -> str:
    plugin = catalog.providers[spec_id]
    return "built-in" if plugin.startswith("mnv4suite.") else registry.plugin_versions.get(plugin, plugin)


def backends_table(registry: Registry) -> str:
    rows = []
    for spec in registry.backends:
        found = spec.probe()
        note = spec.summary if found else found.explain()
        if not spec.in_default_run:
            note = f"(runs when named) {note}"
        rows.append([spec.id, spec.framework, spec.delegate, spec.precision, spec.hardware,
                     "yes" if found else "no", _provider(registry, registry.backends, spec.id), note])
    return tabulate(rows, ["backend", "framework", "delegate", "precision", "stands for", "available", "provider", "notes / why not"])


def tasks_table(registry: Registry) -> str:
    rows = [[t.id, t.model_kind, ", ".join(t.metrics), _provider(registry, registry.tasks, t.id), t.summary]
            for t in registry.tasks]
    return tabulate(rows, ["task", "models", "metrics", "provider", "summary"])


def models_table(registry: Registry) -> str:
    rows = []
    for m in registry.models:
        rows.append([m.id, m.kind, m.resolution,
                     f"{m.params / 1e6:.2f}M" if m.params else "-",
                     f"{m.macs / 1e9:.3f}" if m.macs else "-",
                     _provider(registry, registry.models, m.id), ", ".join(m.aliases)])
    return tabulate(rows, ["model", "kind", "resolution", "params", "GMACs", "provider", "aliases"], disable_numparse=True)


def devices_table(registry: Registry) -> str:
    def held_out(d) -> str:
        """How far off an estimate typically is, from models left out of the fit (leave-one-out)."""
        if d.typical_error_pct is None:
            return "-"
        band = d.held_out_spearman_within_rounding
        return f"±{d.typical_error_pct:.0f}% median, Spearman {d.held_out_spearman:.3f}" + (
            f" ({band[0]:.3f}-{band[1]:.3f} within the published rounding)" if band else "")

    rows = [[d.id, d.kind, d.name, d.ridge_point if d.ridge_point is not None else "-", held_out(d), d.source]
            for d in registry.devices]
    return tabulate(rows, ["device", "kind", "name", "ridge point (MACs/B)", "held-out error", "source"],
                    disable_numparse=True)


SECTIONS = {"backends": backends_table, "tasks": tasks_table, "models": models_table, "devices": devices_table}


def render(registry: Registry, kinds: list[str]) -> str:
    parts = []
    for kind in kinds:
        body = SECTIONS[kind](registry)
        parts.append(body if len(kinds) == 1 else f"{kind.upper()}\n{body}")
    return "\n\n".join(parts)
