"""The results table printed at the end of a run."""

from __future__ import annotations

from typing import Any, Iterable

from tabulate import tabulate

from mnv4suite.results import per_query_latency


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def results_table(results: Iterable[dict[str, Any]], tablefmt: str = "simple") -> str:
    rows = []
    for r in results:
        latency = per_query_latency(r)
        throughput = (r.get("latency") or {}).get("samples_per_s")
        metrics = (r.get("accuracy") or {}).get("metrics", {})
        # the task's headline metric comes first (top1 for ImageNet, AP for COCO)
        accuracy = next((f"{name} {value:.2f}" for name, value in metrics.items()), "-")
        if r.get("status") == "partial" and metrics:  # over fewer samples than asked for: say so
            accuracy += f" (partial: {r['task']['dataset']['skipped']} skipped)"
        estimate = r.get("estimate")
        mean = _fmt(latency.get("mean_ms"))
        if estimate:  # never dressed up as a measurement, never without its error band
            band = estimate.get("typical_error_pct")
            mean = f"~{estimate['ms']:.2f} ±{band:.0f}% (estimated, {estimate['device']})" if band is not None else \
                f"~{estimate['ms']:.2f} (estimated, {estimate['device']}, error unknown)"
        rows.append(
            [
                r["model"]["id"],
                r["backend"]["id"],
                r["scenario"],
                _fmt(latency.get("p50_ms")),
                _fmt(latency.get("p90_ms")),
                _fmt(latency.get("early_stopping_p90_ms")),
                mean,
                _fmt(throughput, 1),
                accuracy,
                r["validity"]["result"],
            ]
        )
    headers = ["model", "backend", "scenario", "p50 ms", "p90 ms", "ES p90 ms", "mean ms", "samples/s", "accuracy %", "LoadGen"]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)
