"""This machine's CPU as a roofline profile, measured with the fastest kernels it has.

A roofline time is a floor: no layer runs faster than its MACs at the peak or its bytes at the
bandwidth. So the peak must be the fastest any library here attains, not one library's: per
precision, the best square GEMM of numpy's BLAS, PyTorch (oneDNN/MKL; AMX for bf16 and int8 where the
CPU has it) and ONNX Runtime (MLAS; u8 x s8 MatMulInteger for int8), whichever are installed. XNNPACK
is not probed: LiteRT runs only converted models, and no GEMM-only model is built here.
The bandwidth is the best of array copies from cache-resident to far larger than the caches (bytes
read + bytes written): a model's activations often stay in cache, and a floor that assumed DRAM
speed would sit above real latencies.

Each figure is the best of a few repetitions in a small time budget (the attainable ceiling, not the
average), cached per process. Nothing here runs at plugin discovery: the registered ``host-cpu``
profile stays empty until ``measure_profile()`` is called. ``floor_check`` is the test of the result:
a measured latency below its floor means the profile is wrong.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from mnv4suite.api import DeviceProfile
from mnv4suite.roofline import BYTES_PER_ELEMENT, LayerLike, estimate

HOST_ID = "host-cpu"
PRECISIONS = ("fp32", "bf16", "int8")
COPY_SIZES = (256 * 2**10, 2**20, 4 * 2**20, 128 * 2**20)  # from L2-resident to far beyond the caches


@dataclass(frozen=True)
class HostFigures:
    """What the micro-benchmarks measured, and with which library."""

    peaks: tuple[tuple[str, float, str], ...]  # (precision, MACs/s, library) of the fastest GEMM found
    bandwidth_bytes_per_s: float  # the best copy of any size: the attainable ceiling
    dram_bandwidth_bytes_per_s: float  # the largest copy's: what a working set beyond the caches gets
    gemm_size: int
    copy_bytes: int  # the largest copy
    threads: int  # CPUs this process may run on
    tried: tuple[tuple[str, str, float], ...] = ()  # every (precision, library, MACs/s) measured

    def peak(self, precision: str = "fp32") -> tuple[float, str]:
        for p, macs, library in self.peaks:
            if p == precision:
                return macs, library
        raise ValueError(f"no {precision} GEMM could be measured here (tried: {self.tried_text()})")

    @property
    def peak_macs_per_s(self) -> float:
        return self.peak("fp32")[0]

    @property
    def ridge_point(self) -> float:
        """fp32's, in MACs per byte."""
        return self.peak_macs_per_s / self.bandwidth_bytes_per_s

    def tried_text(self) -> str:
        return ", ".join(f"{p} {lib} {macs / 1e9:.0f}" for p, lib, macs in self.tried) or "nothing"


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


def _numpy_gemm(precision: str, n: int) -> Callable[[], object] | None:
    if precision != "fp32":
        return None
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    return lambda: np.matmul(a, b, out=out)


def _torch_gemm(precision: str, n: int) -> Callable[[], object] | None:
    import torch

    if precision == "int8":
        if not hasattr(torch, "_int_mm"):
            return None
        a, b = (torch.randint(-128, 127, (n, n), dtype=torch.int8) for _ in range(2))
        return lambda: torch._int_mm(a, b)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    a, b = (torch.randn(n, n).to(dtype) for _ in range(2))
    return lambda: torch.matmul(a, b)


def _onnxruntime_gemm(precision: str, n: int) -> Callable[[], object] | None:
    if precision == "bf16":
        return None
    import onnxruntime as ort
    from onnx import TensorProto, helper

    int8 = precision == "int8"
    a_type, b_type = (TensorProto.UINT8, TensorProto.INT8) if int8 else (TensorProto.FLOAT, TensorProto.FLOAT)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger" if int8 else "MatMul", ["A", "B"], ["Y"])], "gemm",
        [helper.make_tensor_value_info("A", a_type, [n, n]), helper.make_tensor_value_info("B", b_type, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32 if int8 else TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if int8:
        feeds = {"A": rng.integers(0, 255, (n, n), dtype=np.uint8), "B": rng.integers(-128, 127, (n, n), dtype=np.int8)}
    else:
        feeds = {"A": rng.standard_normal((n, n), dtype=np.float32), "B": rng.standard_normal((n, n), dtype=np.float32)}
    return lambda: session.run(None, feeds)


#: The libraries that run the models here, each a GEMM per precision (None where it has none).
LIBRARIES: dict[str, Callable[[str, int], Callable[[], object] | None]] = {
    "numpy BLAS": _numpy_gemm,
    "PyTorch (oneDNN/MKL)": _torch_gemm,
    "ONNX Runtime (MLAS)": _onnxruntime_gemm,
}


def measure_gemm(precision: str = "fp32", size: int = 2048, repeats: int = 5, budget_s: float = 1.5,
                 ) -> list[tuple[str, float]]:
    """(library, attainable MACs/s) of an n x n x n GEMM (n**3 multiply-adds) in every installed library."""
    found = []
    for library, make in LIBRARIES.items():
        try:
            run = make(precision, size)
        except ImportError:
            continue
        if run is not None:
            found.append((library, size**3 / _best_seconds(run, repeats, budget_s)))
    return found


def measure_copy(nbytes: int = 128 * 2**20, repeats: int = 5, budget_s: float = 1.0) -> float:
    """Attainable bandwidth: bytes read + bytes written per second by an array copy.

    Write-allocate caches may read the destination too; that traffic is not counted, so this is a
    conservative (low) figure, as STREAM's copy is.
    """
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    return 2 * src.nbytes / _best_seconds(lambda: np.copyto(dst, src), repeats, budget_s)


def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@lru_cache(maxsize=4)
def measure(gemm_size: int = 2048, copy_bytes: int = 128 * 2**20) -> HostFigures:
    """Every GEMM and copy once per process (about ten seconds on a small machine) and keep the result."""
    tried, peaks = [], []
    for precision in PRECISIONS:
        found = measure_gemm(precision, gemm_size)
        tried += [(precision, library, macs) for library, macs in found]
        if found:
            library, macs = max(found, key=lambda item: item[1])
            peaks.append((precision, macs, library))
    sizes = sorted({s for s in COPY_SIZES if s < copy_bytes} | {copy_bytes})
    copies = [measure_copy(size, repeats=20 if size < 2**24 else 5) for size in sizes]
    return HostFigures(
        peaks=tuple(peaks), bandwidth_bytes_per_s=max(copies), dram_bandwidth_bytes_per_s=copies[-1],
        gemm_size=gemm_size, copy_bytes=copy_bytes, threads=_threads(), tried=tuple(tried),
    )


def measure_profile(precision: str = "fp32", gemm_size: int = 2048, copy_bytes: int = 128 * 2**20) -> DeviceProfile:
    """The ``host-cpu`` profile at ``precision`` (use BYTES_PER_ELEMENT[precision] with it)."""
    f = measure(gemm_size, copy_bytes)
    peak, library = f.peak(precision)
    return DeviceProfile(
        HOST_ID,
        f"This machine's CPU ({platform.processor() or platform.machine()}, {f.threads} threads)",
        "cpu",
        ridge_point=peak / f.bandwidth_bytes_per_s,
        peak_macs_per_s=peak,
        bandwidth_bytes_per_s=f.bandwidth_bytes_per_s,
        source=(
            f"measured: peak from the fastest {precision} {f.gemm_size}^3 GEMM here ({library}; tried "
            f"{f.tried_text()} GMACs/s), bandwidth the best array copy from {COPY_SIZES[0] >> 10} KiB to "
            f"{f.copy_bytes >> 20} MiB (read + write); best of several runs each"
        ),
        notes=f"{precision}: {BYTES_PER_ELEMENT[precision]} bytes per element; ridge point derived = peak / bandwidth; "
              f"beyond the caches the bandwidth is {f.dram_bandwidth_bytes_per_s / 1e9:.1f} GB/s",
    )


@dataclass(frozen=True)
class FloorCheck:
    """A measured latency against the host roofline's floor for the same model and precision."""

    floor_ms: float
    measured_ms: float

    @property
    def fraction(self) -> float:
        """floor / measured: the share of the roofline ceiling the backend reaches (at most 1)."""
        return self.floor_ms / self.measured_ms

    @property
    def below_floor(self) -> bool:
        return self.measured_ms < self.floor_ms

    def text(self) -> str:
        if self.below_floor:
            return (f"{self.measured_ms:.2f} ms is below the host roofline's floor of {self.floor_ms:.2f} ms: the host "
                    "profile is wrong (a faster kernel or cache than it measured), not the measurement")
        return f"{self.fraction:.0%} of the roofline ceiling (floor {self.floor_ms:.2f} ms)"


def floor_check(layers: Sequence[LayerLike], measured_ms: float, profile: DeviceProfile) -> FloorCheck:
    """``layers`` counted at the profile's precision; its roofline time is the fastest the host could be."""
    return FloorCheck(estimate(layers, profile).total_ms, measured_ms)
