"""Timing shared by the benchmark scripts (imported from the scripts' own folder)."""

from __future__ import annotations

import statistics
import time


def median_ms(fn, runs: int, warmup: int = 3) -> float:
    """Median wall time of `fn()` in ms over `runs` calls after `warmup` untimed ones (nan for 0 runs)."""
    if runs <= 0:
        return float("nan")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3
