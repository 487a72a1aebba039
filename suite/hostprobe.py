"""This machine's CPU as a roofline profile, measured rather than looked up.

Peak MACs/s comes from a float32 GEMM (numpy's BLAS, all the threads it uses by default) and
bandwidth from copying an array far larger than the caches (bytes read + bytes written per second).
Both take the best of a few repetitions within a small time budget: a roofline wants the attainable
ceiling, not the average. The result is cached per process, and nothing here runs at plugin
discovery: the registered ``host-cpu`` profile stays empty until ``measure_profile()`` is called.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from mnv4suite.api import DeviceProfile

HOST_ID = "host-cpu"


@dataclass(frozen=True)
class HostFigures:
    """What the micro-benchmarks measured, and how."""

    peak_macs_per_s: float
    bandwidth_bytes_per_s: float
    precision: str  # of the GEMM: the peak holds for this precision only
    gemm_size: int
    copy_bytes: int  # size of the copied array (each copy reads and writes this many bytes)
    threads: int  # CPUs this process may run on
    blas: str

    @property
    def ridge_point(self) -> float:
        return self.peak_macs_per_s / self.bandwidth_bytes_per_s


def _best_seconds(run: Callable[[], object], repeats: int, budget_s: float) -> float:
    """Fastest of up to ``repeats`` timed calls (after one warm-up), stopping early past ``budget_s``."""
    run()
    best = float("inf")
    deadline = time.perf_counter() + budget_s
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return best


def measure_gemm(size: int = 2048, repeats: int = 5, budget_s: float = 1.5) -> float:
    """Attainable float32 MACs/s: an n x n x n matmul is n**3 multiply-adds."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    return size**3 / _best_seconds(lambda: np.matmul(a, b, out=out), repeats, budget_s)


def measure_copy(nbytes: int = 128 * 2**20, repeats: int = 5, budget_s: float = 1.0) -> float:
    """Attainable memory bandwidth: bytes read + bytes written per second by an array copy.

    Write-allocate caches may read the destination too; that traffic is not counted, so this is a
    conservative (low) figure, as STREAM's copy is.
    """
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    return 2 * src.nbytes / _best_seconds(lambda: np.copyto(dst, src), repeats, budget_s)


def _blas_name() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # the layout of show_config is not a stable API
        return "unknown BLAS"


@lru_cache(maxsize=1)
def measure(gemm_size: int = 2048, copy_bytes: int = 128 * 2**20) -> HostFigures:
    """Run both micro-benchmarks once per process (a few seconds at most) and keep the result."""
    return HostFigures(
        peak_macs_per_s=measure_gemm(gemm_size),
        bandwidth_bytes_per_s=measure_copy(copy_bytes),
        precision="fp32",
        gemm_size=gemm_size,
        copy_bytes=copy_bytes,
        threads=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        blas=_blas_name(),
    )


def measure_profile(gemm_size: int = 2048, copy_bytes: int = 128 * 2**20) -> DeviceProfile:
    """The ``host-cpu`` profile with measured figures (float32: use 4 bytes per element with it)."""
    f = measure(gemm_size, copy_bytes)
    return DeviceProfile(
        HOST_ID,
        f"This machine's CPU ({platform.processor() or platform.machine()}, {f.threads} threads)",
        "cpu",
        ridge_point=f.ridge_point,
        peak_macs_per_s=f.peak_macs_per_s,
        bandwidth_bytes_per_s=f.bandwidth_bytes_per_s,
        source=(
            f"measured: peak from a {f.precision} {f.gemm_size}^3 GEMM ({f.blas}), bandwidth from a "
            f"{f.copy_bytes >> 20} MiB array copy (read + write); best of up to 5 runs each"
        ),
        notes=f"{f.precision}: 4 bytes per element; ridge point derived = peak / bandwidth",
    )
