"""This suite next to the MobileNetV4 paper: params and MACs against Table 6, roofline-estimated device
latency against Table 6's measured latency, and their Spearman rank correlation per device (the check
of the paper's Appendix F, Table 16).

The paper's numbers ship as package data (``data/mnv4_paper_results.yaml``, a copy of
``shared/reference/mnv4_paper_results.yaml``); costing models needs torch (imported when used).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from mnv4suite import roofline

DATA_FILE = "mnv4_paper_results.yaml"


@lru_cache(maxsize=1)
def _packaged() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(resources.files("mnv4suite.reports").joinpath("data", DATA_FILE).read_text(encoding="utf-8"))


def paper_results() -> dict[str, Any]:
    """The packaged copy of the paper's Table 6 and Table 16 (same layout as the shared yaml)."""
    import copy

    return copy.deepcopy(_packaged())


@dataclass(frozen=True)
class DeviceComparison:
    """Roofline estimates against the paper's measured latencies on one device."""

    device: str
    name: str
    precision: str
    ridge_point: float
    ridge_from: str  # "published" (Appendix F) or "fitted"
    peak_macs_per_s: float
    rms_log_error: float  # of the stored fit
    rows: tuple[dict[str, Any], ...]  # {row, model, paper_ms, estimated_ms, ratio, macs}
    spearman_roofline: float
    spearman_macs: float
    paper_spearman_roofline: float | None  # Table 16, where the paper gives it
    paper_spearman_macs: float | None
    #: the honest figures: each row predicted by a fit that never saw it (nested leave-one-out); the
    #: spearman_* and rows above are in-sample, the profile having been fitted to these very rows
    held_out_spearman: float | None = None
    held_out_median_ape: float | None = None

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.peak_macs_per_s / self.ridge_point

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device, "name": self.name, "precision": self.precision,
            "ridge_point": self.ridge_point, "ridge_from": self.ridge_from,
            "peak_macs_per_s": self.peak_macs_per_s, "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "rms_log_error": self.rms_log_error, "n": len(self.rows), "rows": list(self.rows),
            "spearman_roofline": self.spearman_roofline, "spearman_macs": self.spearman_macs,
            "paper_spearman_roofline": self.paper_spearman_roofline, "paper_spearman_macs": self.paper_spearman_macs,
            "held_out_spearman": self.held_out_spearman, "held_out_median_ape": self.held_out_median_ape,
        }


def device_comparisons(results: Mapping[str, Any] | None = None, specs=None) -> list[DeviceComparison]:
    """Every paper device: each Table 6 row the suite counts, estimated with the stored profile."""
    from mnv4suite.plugins import devices

    results = results if results is not None else _packaged()
    matched = devices.costed_rows(results, specs)
    table6 = devices.table6_latencies(results)
    table16 = {row["device"]: row for row in results.get("roofline_fitted", [])}
    out = []
    for device, target in devices.TARGETS.items():
        cmp = devices.compare(device, table6.get(device, {}), matched)
        fitted = devices.FITS[device]
        rows = tuple(
            {"row": name, "model": model_id, "paper_ms": measured, "estimated_ms": est,
             "ratio": est / measured, "macs": int(macs)}
            for name, model_id, measured, est, macs in zip(cmp.models, cmp.model_ids, cmp.measured_ms, cmp.estimated_ms, cmp.macs)
        )
        published = table16.get(device, {})
        out.append(DeviceComparison(
            device=device, name=target.name, precision=target.precision,
            ridge_point=fitted.ridge_point, ridge_from=fitted.ridge_from,
            peak_macs_per_s=fitted.peak_macs_per_s, rms_log_error=fitted.rms_log_error, rows=rows,
            spearman_roofline=cmp.spearman_roofline if len(rows) >= 2 else float("nan"),
            spearman_macs=cmp.spearman_macs if len(rows) >= 2 else float("nan"),
            paper_spearman_roofline=published.get("spearman_roofline"),
            paper_spearman_macs=published.get("spearman_macs"),
            held_out_spearman=fitted.held_out_spearman, held_out_median_ape=fitted.held_out_median_ape,
        ))
    return out


def size_rows(results: Mapping[str, Any] | None = None, specs=None) -> list[dict[str, Any]]:
    """Our params and MACs next to Table 6's, for every Table 6 row the catalog implements."""
    from mnv4suite.plugins import devices

    results = results if results is not None else _packaged()
    matched = devices.implemented_rows(results, specs)
    by_row = {row["model"]: row for row in results["imagenet"]}
    out = []
    for name, spec in matched.items():
        paper = by_row[name]
        params_m = spec.params / 1e6 if spec.params else None
        gmacs = spec.macs / 1e9 if spec.macs else None
        out.append({
            "row": name, "model": spec.id, "resolution": spec.resolution, "top1": paper["top1"],
            "params_m": params_m, "paper_params_m": paper["params_m"],
            "gmacs": gmacs, "paper_gmacs": paper["gmacs"],
            "params_ratio": params_m / paper["params_m"] if params_m else None,
            "gmacs_ratio": gmacs / paper["gmacs"] if gmacs else None,
        })
    return out


def spearman(x, y) -> float:
    """Spearman rank correlation with ties averaged (``mnv4suite.roofline.spearman``)."""
    return roofline.spearman(x, y)


def paper_report(results: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The paper comparison as data (JSON-ready)."""
    data = results if results is not None else _packaged()
    return {
        "source": data.get("source"),
        "sizes": size_rows(data),
        "devices": [c.to_dict() for c in device_comparisons(data)],
    }
