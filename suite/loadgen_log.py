"""Reading LoadGen's own logs: the single source of every reported latency and accuracy figure.

Figures are taken from `mlperf_log_detail.txt` (MLLOG lines) and payloads from
`mlperf_log_accuracy.json`, so a result can always be checked against its raw logs. Where a key or
a sample repeats, the first entry counts, as MLCommons' own log reader and accuracy scripts take it:
the suite and their tools must never read two different figures from one log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DETAIL = "mlperf_log_detail.txt"
SUMMARY = "mlperf_log_summary.txt"
ACCURACY = "mlperf_log_accuracy.json"
MLLOG_PREFIX = ":::MLLOG "
#: LoadGen's warning when an audit.config in its working directory overrides the test settings
AUDIT_OVERRIDE = "Found Audit Config file (audit.config)"


def read_detail(log_dir: Path) -> dict[str, Any]:
    """Every MLLOG key of the detail log mapped to its first value; `_errors` and `_warnings` list
    every entry LoadGen flagged as one."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    warnings: list[str] = []
    from mnv4suite.safeparse import load_json  # a submission's log is anyone's

    with open(Path(log_dir) / DETAIL, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.startswith(MLLOG_PREFIX):
                continue
            entry = load_json(line[len(MLLOG_PREFIX) :], f"{DETAIL} line {number}", max_depth=8)
            metadata = entry.get("metadata", {}) if isinstance(entry, dict) else None
            if not isinstance(metadata, dict) or not isinstance(entry.get("key"), str) or "value" not in entry:
                raise ValueError(f"{DETAIL} line {number} is not a LoadGen MLLOG entry (an object with a key, "
                                 "a value and metadata)")
            values.setdefault(entry["key"], entry["value"])
            if metadata.get("is_error"):
                errors.append(f"{entry['key']}: {entry['value']}")
            if metadata.get("is_warning"):
                warnings.append(str(entry["value"]))
    values["_errors"] = errors
    values["_warnings"] = warnings
    return values


def overridden_by_audit_config(detail: dict[str, Any]) -> bool:
    return any(AUDIT_OVERRIDE in w for w in detail.get("_warnings", []))


def _ms(ns: float | int | None) -> float | None:
    if ns is None:
        return None
    if isinstance(ns, bool) or not isinstance(ns, (int, float)) or abs(ns) > 1e18:
        raise ValueError(f"a latency in {DETAIL} is {str(ns)[:40]!r}, not a number of nanoseconds")
    return float(ns) / 1e6


def latency_figures(detail: dict[str, Any]) -> dict[str, Any]:
    """The figures a result reports, in milliseconds, straight from LoadGen's detail log."""
    scenario = detail.get("effective_scenario") or detail.get("requested_scenario")
    figures: dict[str, Any] = {
        "queries": detail.get("result_query_count"),
        "mean_ms": _ms(detail.get("result_mean_latency_ns")),
        "min_ms": _ms(detail.get("result_min_latency_ns")),
        "max_ms": _ms(detail.get("result_max_latency_ns")),
        "p50_ms": _ms(detail.get("result_50.00_percentile_latency_ns")),
        "p90_ms": _ms(detail.get("result_90.00_percentile_latency_ns")),
        "p99_ms": _ms(detail.get("result_99.00_percentile_latency_ns")),
        "early_stopping_p90_ms": None,
        "samples_per_s": None,
    }
    figures["qps_with_loadgen_overhead"] = None
    if scenario == "SingleStream":
        figures["early_stopping_p90_ms"] = _ms(detail.get("early_stopping_latency_ss"))
        figures["samples_per_s"] = detail.get("result_qps_without_loadgen_overhead")
        figures["qps_with_loadgen_overhead"] = detail.get("result_qps_with_loadgen_overhead")
    else:
        figures["samples_per_s"] = detail.get("result_samples_per_second")
    return figures


def validity(detail: dict[str, Any]) -> dict[str, Any]:
    """LoadGen's own verdict and the flags behind it."""
    result = {
        "result": detail.get("result_validity", "UNKNOWN"),
        "min_duration_met": detail.get("result_min_duration_met"),
        "min_queries_met": detail.get("result_min_queries_met"),
        "perf_constraints_met": detail.get("result_perf_constraints_met"),
        "early_stopping_met": detail.get("early_stopping_met"),
        "loadgen_errors": len(detail.get("_errors", [])),
    }
    return result


def read_accuracy_payloads(log_dir: Path) -> dict[int, bytes]:
    """Sample index -> the payload the SUT returned, as logged in accuracy mode (the first entry of a
    sample LoadGen issued more than once)."""
    path = Path(log_dir) / ACCURACY
    if not path.exists() or path.stat().st_size == 0:
        return {}
    from mnv4suite.safeparse import load_json

    entries = load_json(path.read_bytes(), ACCURACY, max_depth=None)
    payloads: dict[int, bytes] = {}
    for entry in entries if isinstance(entries, list) else [None]:
        index, data = (entry.get("qsl_idx"), entry.get("data")) if isinstance(entry, dict) else (None, None)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0 or not isinstance(data, str):
            raise ValueError(f"{ACCURACY} holds {str(entry)[:80]!r}, not a LoadGen entry "
                             '({"qsl_idx": sample index, "data": hex payload})')
        payloads.setdefault(index, bytes.fromhex(data))
    return payloads
