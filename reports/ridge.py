"""The roofline report: the MobileNetV4 paper's Figures 2 and 3 recomputed from this suite's own
per-layer costs.

Figure 2: every model's roofline latency swept over ridge points 0..500 MACs/byte (int8, 1 byte per
element, as the paper), given as MAC-equivalents = latency x peak (``mnv4suite.roofline.sweep``), and
which models are on the accuracy/latency front (published top-1) at each ridge point.
Figure 3: one model's per-layer cost along the network at a low and a high ridge point.

Costing needs torch (models are built on the meta device); imports stay inside the functions.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mnv4suite import roofline

from .pareto import front_flags

#: Figure 3's two ends: a CPU and the EdgeTPU (published ridge points, paper Appendix F).
LOW_RIDGE = ("pixel6_cpu", 31.2)
HIGH_RIDGE = ("pixel8_edgetpu", 433.8)
#: Ridge points of the Figure 2 style accuracy/latency panels.
PANEL_RIDGES = ((0.0, "MACs only"), (31.2, "Pixel 6 CPU"), (100.0, ""), (347.3, "Pixel 4 DSP"), (433.8, "Pixel 8 EdgeTPU"), (500.0, ""))
DEFAULT_LAYER_MODEL = "mnv4-conv-l"


def _specs(specs=None) -> list:
    if specs is not None:
        return list(specs)
    from mnv4suite.reference_models.catalog import classifier_specs

    return classifier_specs()


def _layers(spec) -> list:
    from mnv4suite.plugins import devices

    return devices.model_layers(spec, 1)


def fronts_over_ridges(top1: Sequence[float | None], equivalents: np.ndarray) -> np.ndarray:
    """[ridge, model] flags: on the published-top-1 / roofline-latency front at that ridge point."""
    return np.array([front_flags(list(zip(row.tolist(), top1))) for row in equivalents], dtype=bool)


def _intervals(ridges: np.ndarray, flags: np.ndarray) -> list[tuple[float, float]]:
    """Runs of consecutive ridge points where a flag holds, as (first, last)."""
    runs, start = [], None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        if start is not None and (not flag or i == len(flags) - 1):
            stop = i if flag else i - 1
            runs.append((float(ridges[start]), float(ridges[stop])))
            start = None
    return runs


def device_ridges() -> dict[str, float]:
    """Each paper device's ridge point in int8 bytes: an fp16 device's ridge x 2 (its bytes are twice as many)."""
    from mnv4suite.plugins import devices

    return {
        d: round(devices.FITS[d].ridge_point * devices.bytes_per_element(devices.PROFILES[d]), 1)
        for d in devices.TARGETS
    }


def sweep_report(specs=None, ridge_points: Sequence[float] = roofline.SWEEP_RIDGE_POINTS,
                 layer_model: str = DEFAULT_LAYER_MODEL) -> dict[str, Any]:
    """Figures 2 and 3 as data (JSON-ready)."""
    specs = _specs(specs)
    ridges = np.asarray(ridge_points, dtype=float)
    layers = {s.id: _layers(s) for s in specs}
    equivalents = np.stack([roofline.sweep(layers[s.id], ridges) for s in specs], axis=1)  # [ridge, model]
    top1 = [(s.published or {}).get("top1") for s in specs]
    flags = fronts_over_ridges(top1, equivalents)

    models = []
    for j, s in enumerate(specs):
        models.append({
            "id": s.id,
            "family": s.family,
            "baseline": bool(s.baseline),
            "table6_row": (s.published or {}).get("row"),
            "published_top1": top1[j],
            "macs": int(sum(r.macs for r in layers[s.id])),
            "mac_equivalents": equivalents[:, j].tolist(),
            "on_front_at": [list(run) for run in _intervals(ridges, flags[:, j])] if top1[j] is not None else [],
        })

    panels = []
    for ridge, label in PANEL_RIDGES:
        values = [roofline.mac_equivalents(layers[s.id], ridge) for s in specs]
        fastest = min(values)
        panel_flags = front_flags(list(zip(values, top1)))
        panels.append({
            "ridge_point": ridge,
            "label": label,
            "front": [s.id for s, f in zip(specs, panel_flags) if f],
            "points": [
                {"model": s.id, "top1": t, "mac_equivalents": v, "relative_latency": v / fastest, "on_front": f}
                for s, t, v, f in zip(specs, top1, values, panel_flags) if t is not None
            ],
        })

    return {
        "method": "roofline: latency x peak = sum over layers of max(MACs, ridge point x bytes), int8 (1 byte/element)",
        "ridge_points": ridges.tolist(),
        "device_ridges": device_ridges(),
        "models": models,
        "panels": panels,
        "layers": layer_report(next(s for s in specs if s.id == layer_model) if any(s.id == layer_model for s in specs)
                               else specs[-1], layers),
    }


def layer_report(spec, layers_by_model: dict | None = None) -> dict[str, Any]:
    """Figure 3: each layer's MAC-equivalents at ridge 0, a CPU's and the EdgeTPU's, memory-bound flags;
    the layers the paper's roofline counts (element-wise rows only a device's cost model times)."""
    rows = (layers_by_model or {}).get(spec.id) or _layers(spec)
    rows = [r for r in rows if roofline.paper_counts(r)]
    ends = {"MACs only (ridge 0)": 0.0, f"{LOW_RIDGE[0]} (ridge {LOW_RIDGE[1]:g})": LOW_RIDGE[1],
            f"{HIGH_RIDGE[0]} (ridge {HIGH_RIDGE[1]:g})": HIGH_RIDGE[1]}
    out_rows = []
    for r in rows:
        moved = r.weight_bytes + r.activation_bytes
        out_rows.append({
            "name": r.name,
            "op": getattr(r, "op", ""),
            "macs": int(r.macs),
            "bytes": int(moved),
            "intensity": (r.macs / moved) if moved else 0.0,
            "cost": {label: float(max(r.macs, ridge * moved)) for label, ridge in ends.items()},
            "memory_bound": {label: bool(ridge * moved > r.macs) for label, ridge in ends.items()},
        })
    totals = {label: sum(row["cost"][label] for row in out_rows) for label in ends}
    return {"model": spec.id, "ridge_points": ends, "totals": totals, "rows": out_rows}


def by_block(layer_rep: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-layer rows summed per block (``blocks.S.B``), for a table short enough to read."""
    out: dict[str, dict[str, Any]] = {}
    for row in layer_rep["rows"]:
        parts = row["name"].split(".")
        block = ".".join(parts[:3]) if parts[0] == "blocks" and len(parts) > 2 else parts[0]
        entry = out.setdefault(block, {"block": block, "layers": 0, "macs": 0, "bytes": 0,
                                       "cost": dict.fromkeys(layer_rep["ridge_points"], 0.0)})
        entry["layers"] += 1
        entry["macs"] += row["macs"]
        entry["bytes"] += row["bytes"]
        for label, value in row["cost"].items():
            entry["cost"][label] += value
    return list(out.values())
