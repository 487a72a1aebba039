"""Schema-valid result dicts made by hand, for report tests that need no real run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mnv4suite import results

SHA = "0" * 64


def make_result(
    model: str,
    backend: str = "pytorch-cpu",
    hardware: str = "host-cpu",
    latency_ms: float | None = None,
    estimate_ms: float | None = None,
    accuracy: float | None = None,
    precision: str = "fp32",
    status: str = "complete",
    scenario: str = "SingleStream",
    task: str = "imagenet",
    run_id: str = "run-1",
    cpu: str = "Test CPU",
) -> dict[str, Any]:
    metric = "ap" if task == "coco" else "top1"
    skipped = 1 if status == "partial" else 0
    result = {
        "schema_version": "1.0",
        "run_id": run_id,
        "created": "2026-01-01T00:00:00+00:00",
        "status": status,
        "task": {"id": task, "dataset": {"synthetic": accuracy is None, "path": None, "samples": 10,
                                         "skipped": skipped, "requested": 10 + skipped}},
        "model": {"id": model, "resolution": 224, "params": 1, "macs": 1, "precision": precision,
                  "weights": "random-init (seed 0)", "checksum": SHA},
        "backend": {"id": backend, "framework": "torch", "framework_version": "2", "delegate": "cpu",
                    "available": estimate_ms is None, "accelerator": "CPU", "hardware": hardware, "provider": "test"},
        "scenario": scenario,
        "mode": "both",
        "preset": {"name": "rapid", "min_query_count": 64, "min_duration_ms": 6000},
        "seeds": {"qsl": 1, "sample_index": 2, "schedule": 3},
        "latency": None if latency_ms is None else {
            "kind": "measured", "queries": 64, "mean_ms": latency_ms, "p50_ms": latency_ms, "p90_ms": latency_ms,
            "p99_ms": latency_ms, "early_stopping_p90_ms": latency_ms, "samples_per_s": 1e3 / latency_ms,
        },
        "estimate": None if estimate_ms is None else {
            "kind": "estimated", "method": "roofline", "device": hardware, "ms": estimate_ms, "profile_source": "test",
        },
        "accuracy": None if accuracy is None else {"kind": "measured", "samples": 10, "metrics": {metric: accuracy}},
        "validity": {"result": "VALID" if latency_ms is not None else "NOT-MEASURED"},
        "loadgen": {"version": None, "log_dir": "loadgen", "logs": {}},
        "system": {"cpu": cpu, "cores": 2, "os": "Linux", "python": "3.12", "frameworks": {}},
        "suite": {"version": "0.1.0", "git_commit": "unknown"},
    }
    results.validate(result)
    return result


def write_results(root: Path, items: list[dict[str, Any]]) -> list[Path]:
    paths = []
    for i, result in enumerate(items):
        path = root / f"r{i:03d}" / results.RESULT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))
        paths.append(path)
    return paths
