"""Built-in plugin: hardware profiles for roofline latency estimates, each number with its provenance.

The mobile devices are the seven columns of the MobileNetV4 paper's Table 6. Every figure is one of

* published - printed in the paper: the ridge points of Appendix F (Table 16, int8, 1 byte/element);
* fitted    - a cost model (``roofline.choose_cost_model``) fitted to the paper's Table 6 median latencies
  of the models this suite counts (the effective peaks and per-inference and per-layer times everywhere;
  the ridge point too where none is published);
* derived   - arithmetic on the above: bandwidth = peak / ridge point;
* measured  - ``host-cpu`` only, by ``mnv4suite.hostprobe.measure_profile()`` when asked.

The fitted numbers are stored below as data (the installed package never reads ``shared/``).
``refit()`` re-derives them from ``shared/reference/mnv4_paper_results.yaml`` and the model catalog;
``python benchmarks/bench_roofline.py --emit`` prints a fresh ``FITS`` block to paste here
when the catalog gains models of Table 6 (the MobileNet V1/V2/V3 baselines join by name).

Discovery imports nothing heavy: costing models for a re-fit imports torch inside the functions.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from mnv4suite import roofline
from mnv4suite.api import DeviceProfile, Runtime, hookimpl
from mnv4suite.roofline import BYTES_PER_ELEMENT

if TYPE_CHECKING:
    from mnv4suite.api import ModelSpec

PAPER = "MobileNetV4 paper (Qin et al. 2024)"
RESULTS_FILE = Path("reference") / "mnv4_paper_results.yaml"


@dataclass(frozen=True)
class Target:
    """A device of the paper's Table 6 and how the paper ran models on it (Appendix B)."""

    id: str
    name: str
    kind: str
    precision: str  # int8 for CPU, DSP and EdgeTPU; fp16 for mobile GPU and the ANE
    table6_column: str  # its column in mnv4_paper_results.yaml
    published_ridge: float | None = None  # Appendix F, Table 16
    #: ops its runtime does not run: Table 6 lists every model with one as "Failed"
    unsupported_ops: tuple[str, ...] = ()
    #: what its runtime does to a model: ops handed back to the CPU, kernels, layout
    runtime: Runtime = Runtime()


#: TFLite's GPU delegate rejects a DEPTHWISE_CONV_2D whose depth_multiplier is not 1 unless its input has
#: one channel (model_builder.cc: "depth_multiplier != 1 && input.c != 1"), and by default delegates only
#: the largest partition of the graph: FastViT's channel-multiplier convs, one per stage, leave all but
#: its longest stage on the CPU, which is why it runs on the phone GPUs at about their CPUs' speed.
GPU_DELEGATE_REJECTS = ("multiplier",)

#: The GPU delegate's own depthwise kernel (DepthwiseConv3x3) takes 3x3 windows at stride 1 only
#: (IsDepthwiseConv3x3Supported); every other depthwise conv runs its general one. Its kernel selector
#: (dw_convolution_selector.cc) uses it on Adreno, but on Mali only for Bifrost and Valhall gen 1: the
#: Pixel 7's Mali-G710 is Valhall gen 3 (gpu_info.cc), so there every depthwise conv is general.
TFLITE_GPU_ON_ADRENO = Runtime(delegate_rejects=GPU_DELEGATE_REJECTS, dedicated_depthwise=((3, 1),))
TFLITE_GPU_ON_MALI_G710 = Runtime(delegate_rejects=GPU_DELEGATE_REJECTS, dedicated_depthwise=())

#: The Neural Engine pads the last axis of every buffer (W of Core ML's NCHW) to 64 bytes (Apple,
#: "Deploying Transformers on the Apple Neural Engine", 2022, principle 1: a singleton last axis costs
#: 32x its size in fp16). A late 7x7 fp16 map moves 64 bytes per row, not 14.
CORE_ML_ON_ANE = Runtime(last_axis_alignment_bytes=64)


TARGETS: dict[str, Target] = {
    t.id: t
    for t in (
        Target("pixel6_cpu", "Google Pixel 6 CPU (TFLite int8, XNNPACK)", "cpu", "int8", "pixel6_cpu", 31.2),
        Target("s23_cpu", "Samsung Galaxy S23 CPU (TFLite int8, XNNPACK)", "cpu", "int8", "s23_cpu", 39.7),
        Target("pixel4_hexagon", "Google Pixel 4 Hexagon DSP (TFLite int8)", "dsp", "int8", "pixel4_hexagon", 347.3,
               unsupported_ops=("attention", "gelu", "layernorm")),
        Target("pixel8_edgetpu", "Google Pixel 8 EdgeTPU (TFLite int8)", "edgetpu", "int8", "pixel8_edgetpu", 433.8),
        Target("pixel7_gpu", "Google Pixel 7 GPU, Mali (TFLite fp16)", "gpu", "fp16", "pixel7_gpu",
               runtime=TFLITE_GPU_ON_MALI_G710),
        Target("s23_gpu", "Samsung Galaxy S23 GPU, Adreno (TFLite fp16)", "gpu", "fp16", "s23_gpu",
               runtime=TFLITE_GPU_ON_ADRENO),
        Target("iphone13_ane", "Apple iPhone 13 Neural Engine (Core ML fp16)", "npu", "fp16", "iphone13_coreml",
               runtime=CORE_ML_ON_ANE),
    )
}


@dataclass(frozen=True)
class DeviceFit:
    """A device's roofline numbers and where each comes from."""

    device: str
    ridge_point: float  # MACs/byte at the target's precision
    ridge_from: str  # "published" or "fitted"
    peak_macs_per_s: float  # fitted: the effective peak, not a datasheet figure
    rows: tuple[tuple[str, float], ...]  # the Table 6 (model, median ms) it was fitted to
    rms_log_error: float  # of the fit: rms of ln(estimate / measured)
    #: nested leave-one-out: each row predicted by a cost model whose shrinkage was chosen, and whose
    #: weights (and ridge, where it is fitted) were fitted, on the other rows alone
    held_out_spearman: float | None = None
    held_out_median_ape: float | None = None  # percent
    held_out_max_ape: float | None = None  # percent
    #: fixed seconds per inference (0 where the fit finds none)
    overhead_s: float = 0.0
    #: the paper's plain roofline, held out the same way: the baseline beside an overhead model
    plain_held_out_spearman: float | None = None
    plain_held_out_median_ape: float | None = None
    #: seconds per launched layer (roofline.launched) and (op class, effective peak) pairs
    dispatch_s: float = 0.0
    class_peaks: tuple[tuple[str, float], ...] = ()
    #: how hard the class peaks are pulled toward the shared one (roofline.SHRINKAGE_GRID), chosen by
    #: leave-one-out, and how many of the nested leave-one-out's folds (one per row) chose the same
    shrinkage: float | None = None
    folds_choosing_shrinkage: int | None = None
    #: the held-out Spearman's 5th-95th percentiles for latencies anywhere within Table 6's rounding
    #: (roofline.HeldOut.spearman_within): the part of the ranking the table's printed digits decide
    held_out_spearman_within_rounding: tuple[float, float] | None = None

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.peak_macs_per_s / self.ridge_point  # derived

    @property
    def terms(self) -> roofline.Terms:
        """Every fit is the full cost model (``roofline.cost_model_terms``); a weight may be zero."""
        return roofline.Terms(overhead=True, dispatch=True, classes=tuple(c for c, _ in self.class_peaks),
                              runtime=TARGETS[self.device].runtime)

    def agrees_with(self, other: "DeviceFit") -> bool:
        """Same rows, same numbers to their stored precision (a re-fit elsewhere may differ in a last digit)."""
        return (
            self.device == other.device
            and self.ridge_from == other.ridge_from
            and self.rows == other.rows
            and abs(self.ridge_point - other.ridge_point) <= 0.11
            and abs(self.peak_macs_per_s / other.peak_macs_per_s - 1) <= 2e-3
            and abs(self.rms_log_error - other.rms_log_error) <= 2e-3
            and abs((self.held_out_median_ape or 0) - (other.held_out_median_ape or 0)) <= 0.2
            and abs((self.held_out_spearman or 0) - (other.held_out_spearman or 0)) <= 2e-3
            and abs(self.overhead_s - other.overhead_s) <= 2e-3 * max(self.overhead_s, 1e-6)
            and abs(self.dispatch_s - other.dispatch_s) <= 2e-3 * max(self.dispatch_s, 1e-9)
            and self.shrinkage == other.shrinkage
            and [c for c, _ in self.class_peaks] == [c for c, _ in other.class_peaks]
            and all(abs(a / b - 1) <= 2e-3 for (_, a), (_, b) in zip(self.class_peaks, other.class_peaks))
            and _close_pairs(self.held_out_spearman_within_rounding, other.held_out_spearman_within_rounding, 5e-3)
        )

    def spearman_text(self) -> str:
        """The held-out Spearman with the band Table 6's rounding leaves it."""
        band = self.held_out_spearman_within_rounding
        return f"{self.held_out_spearman}" + (
            f" ({band[0]:.3f}-{band[1]:.3f} for latencies anywhere within Table 6's rounding)" if band else "")

    def provenance(self) -> dict[str, str]:
        models = ", ".join(name for name, _ in self.rows)
        if self.ridge_from == "published":
            ridge = f"published: {PAPER}, Appendix F (Table 16)"
        else:
            ridge = f"fitted (grid search, with the cost model's weights) to Table 6: {models}"
        peak = f"fitted (non-negative least squares in relative error, with the cost model) to Table 6: {models}"
        return {"ridge_point": ridge, "peak_macs_per_s": peak, "bandwidth_bytes_per_s": "derived: peak / ridge point"}


# Generated by `python benchmarks/bench_roofline.py --emit` from mnv4_paper_results.yaml (Table 6 median
# latencies) and the model catalog; checked against a re-fit by tests/test_devices.py.
FITS: dict[str, DeviceFit] = {
    'pixel6_cpu': DeviceFit(
        'pixel6_cpu', ridge_point=31.2, ridge_from='published', peak_macs_per_s=1.193e+11, rms_log_error=0.07,
        held_out_spearman=0.997, held_out_median_ape=3.5, held_out_max_ape=24.1,
        dispatch_s=4.509e-07,
        class_peaks=(
            ('dense', 1.655e+11), ('depthwise', 1.16e+11), ('general_depthwise', 1.404e+09),
            ('multiplier', 1.33e+10), ('attention', 6.425e+10), ('gelu', 8.983e+10), ('add', 8.656e+10),
            ('mul', 1.542e+12),
        ),
        shrinkage=3.0, folds_choosing_shrinkage=15,
        plain_held_out_spearman=0.917, plain_held_out_median_ape=64.8,
        held_out_spearman_within_rounding=(0.994, 0.999),
        rows=(
            ('MobileNet-V2-0.5x', 2.4), ('MobileNet-V3L-0.5x', 2.4), ('MobileOne-S0', 4.2), ('MobileNet-V2', 5.0),
            ('MNv4-Conv-S', 2.4), ('MobileNet-V1', 6.1), ('FastViT-T8', 49.3), ('MobileNet-V2-1.5x', 9.3),
            ('MultiHardware-MAX-1.5x', 9.8), ('MultiHardware-AVG-1.5x', 12.0), ('MobileNet-V2-2.0x', 13.9),
            ('MobileOne-S4', 26.7), ('FastViT-S12', 83.0), ('MNv4-Conv-M', 11.4), ('FastViT-SA12', 86.5),
            ('MNv4-Hybrid-M', 14.3), ('FastViT-SA24', 171.6), ('MNv4-Conv-L', 59.9), ('ConvNext-S', 314.9),
            ('MNv4-Hybrid-L', 87.6), ('FastViT-SA36', 241.6),
        ),
    ),
    's23_cpu': DeviceFit(
        's23_cpu', ridge_point=39.7, ridge_from='published', peak_macs_per_s=1.686e+11, rms_log_error=0.098,
        held_out_spearman=0.986, held_out_median_ape=10.9, held_out_max_ape=33.6,
        class_peaks=(
            ('dense', 2.313e+11), ('depthwise', 1.843e+11), ('general_depthwise', 2.04e+09),
            ('multiplier', 7.829e+09), ('grouped', 2.428e+09), ('attention', 3.411e+10), ('gelu', 3.492e+11),
            ('hardswish', 4.773e+11), ('layernorm', 1.686e+11), ('add', 6.721e+11), ('mul', 1e+15),
        ),
        shrinkage=3.0, folds_choosing_shrinkage=14,
        plain_held_out_spearman=0.853, plain_held_out_median_ape=76.1,
        held_out_spearman_within_rounding=(0.985, 0.986),
        rows=(
            ('MobileNet-V2-0.5x', 1.8), ('MobileNet-V3L-0.5x', 2.0), ('MobileOne-S0', 3.3), ('MobileNet-V2', 4.1),
            ('MNv4-Conv-S', 1.8), ('MobileNet-V1', 4.6), ('FastViT-T8', 43.6), ('MobileNet-V2-1.5x', 7.3),
            ('MobileNet-V2-2.0x', 10.6), ('MobileOne-S4', 19.4), ('FastViT-S12', 69.2),
            ('MIT-EfficientViT-B1-r224', 18.1), ('MNv4-Conv-M', 8.6), ('FastViT-SA12', 69.5),
            ('MNv4-Hybrid-M', 10.8), ('FastViT-SA24', 136.3), ('MIT-EfficientViT-B2-r256', 64.9),
            ('MNv4-Conv-L', 43.0), ('ConvNext-S', 243.9), ('MNv4-Hybrid-L', 61.8),
            ('MIT-EfficientViT-B3-r224', 125.9), ('FastViT-SA36', 206.3),
        ),
    ),
    'pixel4_hexagon': DeviceFit(
        'pixel4_hexagon', ridge_point=347.3, ridge_from='published', peak_macs_per_s=2.158e+12, rms_log_error=0.084,
        held_out_spearman=0.922, held_out_median_ape=8.5, held_out_max_ape=63.8,
        dispatch_s=2.712e-05,
        class_peaks=(
            ('dense', 2.158e+12), ('depthwise', 2.158e+12), ('add', 2.158e+12), ('mul', 2.158e+12),
        ),
        shrinkage=1000000.0, folds_choosing_shrinkage=12,
        plain_held_out_spearman=0.894, plain_held_out_median_ape=15.8,
        held_out_spearman_within_rounding=(0.918, 0.923),
        rows=(
            ('MobileNet-V2-0.5x', 2.9), ('MobileNet-V3L-0.5x', 3.5), ('MobileOne-S0', 2.9), ('MobileNet-V2', 3.9),
            ('MNv4-Conv-S', 2.4), ('MobileNet-V1', 3.2), ('MobileNet-V2-1.5x', 5.6), ('MultiHardware-MAX-1.5x', 5.7),
            ('MultiHardware-AVG-1.5x', 6.1), ('MobileNet-V2-2.0x', 6.9), ('MobileOne-S4', 9.0), ('MNv4-Conv-M', 7.3),
            ('MNv4-Conv-L', 20.8),
        ),
    ),
    'pixel8_edgetpu': DeviceFit(
        'pixel8_edgetpu', ridge_point=433.8, ridge_from='published', peak_macs_per_s=2.328e+13, rms_log_error=0.046,
        held_out_spearman=0.973, held_out_median_ape=5.7, held_out_max_ape=23.3,
        overhead_s=0.0005247,
        class_peaks=(
            ('dense', 7.173e+12), ('depthwise', 1e+15), ('general_depthwise', 3.922e+12), ('multiplier', 1.727e+12),
            ('attention', 9.142e+11), ('gelu', 1e+15), ('add', 6.384e+12), ('mul', 2.545e+12),
        ),
        shrinkage=0.1, folds_choosing_shrinkage=5,
        plain_held_out_spearman=0.901, plain_held_out_median_ape=27.0,
        held_out_spearman_within_rounding=(0.957, 0.979),
        rows=(
            ('MobileNet-V2-0.5x', 0.7), ('MobileNet-V3L-0.5x', 0.8), ('MobileOne-S0', 0.7), ('MobileNet-V2', 0.7),
            ('MNv4-Conv-S', 0.7), ('MobileNet-V1', 0.8), ('FastViT-T8', 1.3), ('MobileNet-V2-1.5x', 0.9),
            ('MultiHardware-MAX-1.5x', 1.0), ('MultiHardware-AVG-1.5x', 1.1), ('MobileNet-V2-2.0x', 1.1),
            ('MobileOne-S4', 1.7), ('FastViT-S12', 1.8), ('MNv4-Conv-M', 1.1), ('FastViT-SA12', 2.0),
            ('MNv4-Hybrid-M', 1.5), ('FastViT-SA24', 3.2), ('MNv4-Conv-L', 2.4), ('ConvNext-S', 3.7),
            ('MNv4-Hybrid-L', 3.8), ('FastViT-SA36', 4.3),
        ),
    ),
    'pixel7_gpu': DeviceFit(
        'pixel7_gpu', ridge_point=63.2, ridge_from='fitted', peak_macs_per_s=3.521e+11, rms_log_error=0.132,
        held_out_spearman=0.964, held_out_median_ape=10.9, held_out_max_ape=33.5,
        overhead_s=0.006525,
        class_peaks=(
            ('dense', 3.521e+11), ('general_depthwise', 3.521e+11), ('attention', 3.521e+11), ('gelu', 3.522e+11),
            ('add', 3.521e+11), ('mul', 3.518e+11), ('cpu_fallback', 7.508e+10),
        ),
        shrinkage=1000000.0, folds_choosing_shrinkage=16,
        plain_held_out_spearman=0.813, plain_held_out_median_ape=55.4,
        held_out_spearman_within_rounding=(0.964, 0.964),
        rows=(
            ('MobileNet-V2-0.5x', 8.3), ('MobileNet-V3L-0.5x', 9.9), ('MobileOne-S0', 10.7), ('MobileNet-V2', 13.6),
            ('MNv4-Conv-S', 8.4), ('MobileNet-V1', 13.0), ('FastViT-T8', 40.7), ('MobileNet-V2-1.5x', 16.4),
            ('MultiHardware-MAX-1.5x', 23.2), ('MultiHardware-AVG-1.5x', 20.3), ('MobileNet-V2-2.0x', 19.1),
            ('MobileOne-S4', 28.6), ('FastViT-S12', 75.0), ('MNv4-Conv-M', 18.1), ('FastViT-SA12', 79.6),
            ('MNv4-Hybrid-M', 17.9), ('FastViT-SA24', 131.9), ('MNv4-Conv-L', 37.6), ('ConvNext-S', 45.2),
            ('MNv4-Hybrid-L', 61.3), ('FastViT-SA36', 186.5),
        ),
    ),
    's23_gpu': DeviceFit(
        's23_gpu', ridge_point=8.3, ridge_from='fitted', peak_macs_per_s=8.559e+11, rms_log_error=0.06,
        held_out_spearman=0.99, held_out_median_ape=10.1, held_out_max_ape=28.4,
        overhead_s=0.0006634,
        dispatch_s=1.415e-05,
        class_peaks=(
            ('dense', 8.545e+11), ('depthwise', 1e+15), ('general_depthwise', 8.21e+10), ('grouped', 1.484e+10),
            ('attention', 2.863e+11), ('gelu', 1e+15), ('hardswish', 1e+15), ('layernorm', 8.559e+11),
            ('add', 4.403e+10), ('mul', 2.765e+11), ('cpu_fallback', 2.749e+10),
        ),
        shrinkage=1.0, folds_choosing_shrinkage=17,
        plain_held_out_spearman=0.775, plain_held_out_median_ape=73.3,
        held_out_spearman_within_rounding=(0.987, 0.991),
        rows=(
            ('MobileNet-V2-0.5x', 1.9), ('MobileNet-V3L-0.5x', 2.1), ('MobileOne-S0', 1.7), ('MobileNet-V2', 2.5),
            ('MNv4-Conv-S', 2.0), ('MobileNet-V1', 2.1), ('FastViT-T8', 24.7), ('MobileNet-V2-1.5x', 3.3),
            ('MultiHardware-MAX-1.5x', 4.1), ('MultiHardware-AVG-1.5x', 4.5), ('MobileNet-V2-2.0x', 4.2),
            ('MobileOne-S4', 5.9), ('FastViT-S12', 47.0), ('MIT-EfficientViT-B1-r224', 5.0), ('MNv4-Conv-M', 4.1),
            ('FastViT-SA12', 52.1), ('MNv4-Hybrid-M', 5.9), ('FastViT-SA24', 107.5),
            ('MIT-EfficientViT-B2-r256', 9.5), ('MNv4-Conv-L', 13.2), ('ConvNext-S', 18.5), ('MNv4-Hybrid-L', 18.1),
            ('MIT-EfficientViT-B3-r224', 18.4), ('FastViT-SA36', 138.1),
        ),
    ),
    'iphone13_ane': DeviceFit(
        'iphone13_ane', ridge_point=33.8, ridge_from='fitted', peak_macs_per_s=3.609e+12, rms_log_error=0.102,
        held_out_spearman=0.969, held_out_median_ape=7.5, held_out_max_ape=32.4,
        overhead_s=0.0002245,
        class_peaks=(
            ('dense', 1.602e+12), ('depthwise', 3.291e+12), ('general_depthwise', 1e+15), ('multiplier', 3.609e+12),
            ('grouped', 2.151e+11), ('attention', 3.327e+11), ('gelu', 3.609e+12), ('hardswish', 9.058e+12),
            ('layernorm', 3.609e+12), ('add', 6.444e+12), ('mul', 1e+15),
        ),
        shrinkage=10.0, folds_choosing_shrinkage=16,
        plain_held_out_spearman=0.908, plain_held_out_median_ape=32.2,
        held_out_spearman_within_rounding=(0.957, 0.973),
        rows=(
            ('MobileNet-V2-0.5x', 0.5), ('MobileNet-V3L-0.5x', 0.45), ('MobileOne-S0', 0.5), ('MobileNet-V2', 0.7),
            ('MNv4-Conv-S', 0.6), ('MobileNet-V1', 0.7), ('FastViT-T8', 0.7), ('MobileNet-V2-1.5x', 1.0),
            ('MobileNet-V2-2.0x', 1.5), ('MobileOne-S4', 1.5), ('FastViT-S12', 1.6),
            ('MIT-EfficientViT-B1-r224', 2.4), ('MNv4-Conv-M', 1.1), ('FastViT-SA12', 1.6), ('FastViT-SA24', 2.4),
            ('MIT-EfficientViT-B2-r256', 5.4), ('MNv4-Conv-L', 3.0), ('MIT-EfficientViT-B3-r224', 12.2),
        ),
    ),
}


def _profile(target: Target, fitted: DeviceFit) -> DeviceProfile:
    p = fitted.provenance()
    return DeviceProfile(
        target.id, target.name, target.kind,
        ridge_point=fitted.ridge_point,
        peak_macs_per_s=fitted.peak_macs_per_s,
        bandwidth_bytes_per_s=fitted.bandwidth_bytes_per_s,
        source=(
            f"MNv4 paper: ridge {fitted.ridge_from}, "
            f"peak fitted to Table 6 ({len(fitted.rows)} models), bandwidth derived"
        ),
        notes=(
            f"{target.precision}, {BYTES_PER_ELEMENT[target.precision]} byte(s) per element. "
            + (f"ridge point {p['ridge_point']}; " if fitted.ridge_from == "published" else
               "ridge point fitted with the peak (grid search); ")
            + f"peak {p['peak_macs_per_s']} (rms ln error {fitted.rms_log_error:.3f}); "
            f"bandwidth {p['bandwidth_bytes_per_s']}"
            + f"; cost model {roofline.cost_model_text(fitted.terms)}, each op "
            f"class's peak pulled toward the shared one with shrinkage "
            f"{fitted.shrinkage:g} (chosen by leave-one-out)"
            + "".join(f"; {c} at {roofline.peak_text(p)}" for c, p in fitted.class_peaks)
            + (f"; {fitted.overhead_s * 1e3:.3g} ms per inference" if fitted.overhead_s else "")
            + (f"; {fitted.dispatch_s * 1e6:.3g} us per launched layer" if fitted.dispatch_s else "")
            + (f"; does not run {', '.join(target.unsupported_ops)} (Table 6: Failed)" if target.unsupported_ops else "")
            + f". Held out (nested leave-one-out): median error {fitted.held_out_median_ape}%, max "
            f"{fitted.held_out_max_ape}%, Spearman {fitted.spearman_text()}; the paper's plain roofline: median "
            f"{fitted.plain_held_out_median_ape}%, Spearman {fitted.plain_held_out_spearman}"
        ),
        typical_error_pct=fitted.held_out_median_ape,
        held_out_spearman=fitted.held_out_spearman,
        held_out_spearman_within_rounding=fitted.held_out_spearman_within_rounding,
        overhead_s=fitted.overhead_s,
        dispatch_s=fitted.dispatch_s,
        class_peaks=fitted.class_peaks,
        unsupported_ops=target.unsupported_ops,
        runtime=target.runtime,
    )


HOST_CPU = DeviceProfile(
    "host-cpu", "This machine's CPU", "cpu",
    source="measured on demand: mnv4suite.hostprobe.measure_profile() (fp32 GEMM and array-copy micro-benchmarks)",
    notes="fp32, 4 bytes per element",
)

CUDA_GPU = DeviceProfile(
    "cuda-gpu", "An NVIDIA GPU in this machine (CUDA)", "gpu",
    source="no figures: a CUDA backend is measured when the GPU is present and never estimated",
)

#: Every built-in profile by id; the host CPU's figures are filled in only by measuring it.
PROFILES: dict[str, DeviceProfile] = {
    HOST_CPU.id: HOST_CPU,
    CUDA_GPU.id: CUDA_GPU,
    **{t.id: _profile(t, FITS[t.id]) for t in TARGETS.values()},
}


@hookimpl
def register_devices():
    return list(PROFILES.values())


def bytes_per_element(profile: DeviceProfile) -> int:
    """Bytes per tensor element a profile's numbers assume: its Table 6 precision, else by kind."""
    if profile.id in TARGETS:
        return BYTES_PER_ELEMENT[TARGETS[profile.id].precision]
    if profile.id in (HOST_CPU.id, CUDA_GPU.id):  # the host's backends run fp32
        return BYTES_PER_ELEMENT["fp32"]
    return BYTES_PER_ELEMENT["fp16" if profile.kind in ("gpu", "npu") else "int8"]


# --------------------------------------------------------------------------- the paper's Table 6


def shared_results_path() -> Path | None:
    """``$MNV4SUITE_SHARED``, else ``<repo>/../shared``: the paper's results, where this checkout has them."""
    repo = Path(__file__).resolve().parent.parent
    path = Path(os.environ.get("MNV4SUITE_SHARED") or repo.parent / "shared") / RESULTS_FILE
    return path if path.is_file() else None


def load_results(path: str | Path | None = None) -> dict[str, Any]:
    import yaml

    path = path or shared_results_path()
    if path is None:
        raise FileNotFoundError(f"{RESULTS_FILE} not found: set MNV4SUITE_SHARED to the shared/ folder")
    return yaml.safe_load(Path(path).read_text())


def table6_latencies(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Device id -> {Table 6 model: median ms}, leaving out "failed" and unbenchmarked (null) entries."""
    columns = results["devices"]
    out: dict[str, dict[str, float]] = {}
    for target in TARGETS.values():
        j = columns.index(target.table6_column)
        out[target.id] = {
            row["model"]: float(row["latency_ms"][j])
            for row in results["imagenet"]
            if isinstance(row["latency_ms"][j], (int, float)) and not isinstance(row["latency_ms"][j], bool)
        }
    return out


def _canonical(name: str) -> tuple[str, float]:
    """(family, width) of a model name: "MobileNet-V2-1.5x", "mobilenetv2_150" -> ("mobilenetv2", 1.5)."""
    family, width = [], 1.0
    for token in re.split(r"[-_\s]+", name.lower()):
        if re.fullmatch(r"\d+\.\d+x?|\d+x", token):
            width = float(token.rstrip("x"))
        elif re.fullmatch(r"\d{3}", token):  # timm style: 050, 100, 140
            width = int(token) / 100
        elif token:
            family.append(token)
    joined = re.sub(r"[^a-z0-9]", "", "".join(family)).replace("large", "l").replace("small", "s")
    return joined, width


#: ``published`` keys a catalog entry may use to name its Table 6 row outright.
NAME_KEYS = ("row", "paper_name", "table6_name")


def match_table6(table6_names: Iterable[str], specs: Sequence[ModelSpec] | None = None) -> dict[str, ModelSpec]:
    """Table 6 model -> the catalog spec that implements it, by name.

    A spec matches by a Table 6 name in its ``published`` data (e.g. ``row``), else by its id or an
    alias read as (family, width): "mobilenetv2_050" is "MobileNet-V2-0.5x".
    """
    if specs is None:
        from mnv4suite.reference_models import model_specs

        specs = model_specs()
    names = list(table6_names)
    by_canonical = {_canonical(n): n for n in names}
    out: dict[str, ModelSpec] = {}
    # Table 6 is ImageNet: a detector's Table 7 row carries its backbone's name and must not match.
    for spec in (s for s in specs if s.kind == "classification"):
        pub = spec.published or {}
        found = next((pub[k] for k in NAME_KEYS if pub.get(k) in names), None)
        if found is None:
            for candidate in (spec.id, *spec.aliases):
                found = by_canonical.get(_canonical(candidate))
                if found:
                    break
        if found and found not in out:
            out[found] = spec
    return out


def match_by_published(rows: Iterable[dict[str, Any]], specs: Sequence[ModelSpec]) -> dict[str, ModelSpec]:
    """Table 6 model -> spec whose published top-1 and params equal that row's (for unnamed entries)."""
    out = {}
    for row in rows:
        for spec in specs:
            pub = spec.published or {}
            figures = (pub.get("top1"), pub.get("params_m"))
            if None not in figures and figures == (row.get("top1"), row.get("params_m")):
                out.setdefault(row["model"], spec)
    return out


def implemented_rows(results: dict[str, Any], specs: Sequence[ModelSpec] | None = None) -> dict[str, ModelSpec]:
    """Every Table 6 row the catalog implements, matched by name first, then by published figures."""
    if specs is None:
        from mnv4suite.reference_models import model_specs

        specs = model_specs()
    rows = results["imagenet"]
    matched = match_table6([r["model"] for r in rows], specs)
    taken = {s.id for s in matched.values()}
    rest = [s for s in specs if s.id not in taken]
    for name, spec in match_by_published([r for r in rows if r["model"] not in matched], rest).items():
        if spec.id not in taken:
            matched[name] = spec
            taken.add(spec.id)
    return matched


def costed_rows(results: dict[str, Any], specs: Sequence[ModelSpec] | None = None) -> dict[str, Any]:
    """Every Table 6 row the suite can count: the catalog's (``implemented_rows``), then the models
    described for counting only (``reference_models.table6_zoo``) for the rest."""
    from mnv4suite.reference_models.table6_zoo import by_table6_name

    matched: dict[str, Any] = dict(implemented_rows(results, specs))
    zoo = by_table6_name()
    for row in results["imagenet"]:
        if row["model"] not in matched and row["model"] in zoo:
            matched[row["model"]] = zoo[row["model"]]
    return matched


# --------------------------------------------------------------------------- costing and fitting

_LAYER_CACHE: dict[str, list] = {}


def model_layers(spec: ModelSpec, bytes_per_element: float = 1) -> list:
    """Per-layer ``LayerCost`` rows at the spec's resolution, counted from shapes on torch's meta device.

    Counted once per model at 1 byte per element; other precisions scale the byte columns.
    """
    if spec.id not in _LAYER_CACHE:
        import torch

        from mnv4suite.reference_models.counting import profile

        try:
            with torch.device("meta"):
                model = spec.build()
            report = profile(model, spec.resolution, 1, device="meta")
        except (NotImplementedError, RuntimeError):  # a builder that cannot run on meta tensors
            report = profile(spec.build(), spec.resolution, 1)
        _LAYER_CACHE[spec.id] = report.layers
    rows = _LAYER_CACHE[spec.id]
    if bytes_per_element == 1:
        return rows
    return [
        replace(r, weight_bytes=r.weight_bytes * bytes_per_element, activation_bytes=r.activation_bytes * bytes_per_element)
        for r in rows
    ]


def device_layers(spec: ModelSpec, device: str) -> list:
    """A model's rows as a Table 6 device moves them: at its precision, each activation laid out as its
    runtime lays it out (``roofline.laid_out``). What its cost model is fitted to and estimates from."""
    target = TARGETS[device]
    bpe = BYTES_PER_ELEMENT[target.precision]
    return roofline.laid_out(model_layers(spec, bpe), bpe, target.runtime)


def paper_roofline_held_out(device: str, specs: Sequence[ModelSpec], measured_s: Sequence[float]) -> roofline.HeldOut:
    """The paper's plain roofline held out (leave-one-out) on the paper's own counts, packed tensors at
    the device's precision: the baseline every cost model is reported beside."""
    target = TARGETS[device]
    layers = [model_layers(spec, BYTES_PER_ELEMENT[target.precision]) for spec in specs]
    return roofline.leave_one_out(layers, measured_s, target.published_ridge)


def nested_held_out(device: str, models: Sequence[Sequence], measured_s: Sequence[float],
                    folds: Sequence[Sequence[int]] | None = None) -> roofline.NestedHeldOut:
    """The device's whole fitting procedure validated on models it never saw: leave-one-out, or ``folds``
    (``roofline.nested_cross_validate`` with the device's ridge and runtime)."""
    target = TARGETS[device]
    folds = folds if folds is not None else [[i] for i in range(len(models))]
    return roofline.nested_cross_validate(models, measured_s, folds, target.published_ridge, target.runtime)


def printed_half_step(ms: float) -> float:
    """Half the last digit a Table 6 latency is printed to (2.4 -> 0.05, 0.45 -> 0.005): how far the
    latency measured may lie from the one printed."""
    return 0.5 * 10.0 ** Decimal(repr(float(ms))).as_tuple().exponent


def _close_pairs(a: tuple[float, float] | None, b: tuple[float, float] | None, tolerance: float) -> bool:
    return (a is None) == (b is None) and (a is None or all(abs(x - y) <= tolerance for x, y in zip(a, b)))


def fit_device(device: str, latencies_ms: dict[str, float], specs: dict[str, ModelSpec]) -> DeviceFit:
    """Fit one device's cost model (``roofline.choose_cost_model``: the roofline at the published ridge
    point or a fitted one, a per-inference and a per-layer time, a peak per op class pulled toward the
    shared one as far as leave-one-out says) and validate the whole procedure by nested leave-one-out.
    The paper's plain roofline is held out beside it as the baseline."""
    target = TARGETS[device]
    names = [n for n in latencies_ms if n in specs]
    models = [device_layers(specs[n], device) for n in names]
    measured_s = [latencies_ms[n] / 1e3 for n in names]
    chosen = roofline.choose_cost_model(models, measured_s, target.published_ridge, target.runtime)
    fit = roofline.fit_terms(models, measured_s, chosen.terms, target.published_ridge, chosen.shrinkage)
    # the honest figures: shrinkage chosen and weights fitted without the model each fold holds out
    nested = nested_held_out(device, models, measured_s)
    held, plain = nested.held_out, paper_roofline_held_out(device, [specs[n] for n in names], measured_s)
    return DeviceFit(
        device=device,
        ridge_point=round(fit.ridge_point, 1),
        ridge_from="published" if target.published_ridge is not None else "fitted",
        peak_macs_per_s=float(f"{fit.peak_macs_per_s:.4g}"),
        rows=tuple((n, latencies_ms[n]) for n in names),
        rms_log_error=round(fit.rms_log_error, 3),
        held_out_spearman=round(held.spearman, 3),
        held_out_median_ape=round(held.median_abs_pct_error, 1),
        held_out_max_ape=round(held.max_abs_pct_error, 1),
        overhead_s=float(f"{fit.overhead_s:.4g}"),
        plain_held_out_spearman=round(plain.spearman, 3),
        plain_held_out_median_ape=round(plain.median_abs_pct_error, 1),
        dispatch_s=float(f"{fit.dispatch_s:.4g}"),
        class_peaks=tuple((c, float(f"{p:.4g}")) for c, p in fit.class_peaks),
        shrinkage=chosen.shrinkage,
        folds_choosing_shrinkage=sum(k == chosen.shrinkage for k in nested.fold_shrinkage),
        held_out_spearman_within_rounding=tuple(
            round(r, 3) for r in held.spearman_within([printed_half_step(latencies_ms[n]) / 1e3 for n in names])),
    )


def refit(
    results: dict[str, Any] | None = None,
    specs: Sequence[ModelSpec] | None = None,
    only_rows: dict[str, Sequence[str]] | None = None,
) -> dict[str, DeviceFit]:
    """Re-derive every device's fit from the paper's Table 6 and the catalog.

    ``only_rows`` (device -> Table 6 models) restricts a device to given rows, e.g. those a stored
    fit used, so stored numbers can be checked even after the catalog grows.
    """
    results = results if results is not None else load_results()
    matched = costed_rows(results, specs)
    latencies = table6_latencies(results)
    out = {}
    for device, row in latencies.items():
        if only_rows is not None and device in only_rows:
            row = {n: ms for n, ms in row.items() if n in only_rows[device]}
        out[device] = fit_device(device, row, matched)
    return out


@dataclass(frozen=True)
class Comparison:
    """Roofline estimates next to the paper's measured latencies on one device (Appendix F's check)."""

    device: str
    models: tuple[str, ...]  # Table 6 names
    model_ids: tuple[str, ...]  # the catalog's ids for them
    measured_ms: tuple[float, ...]
    estimated_ms: tuple[float, ...]
    macs: tuple[int, ...]

    @property
    def spearman_roofline(self) -> float:
        return roofline.spearman(self.estimated_ms, self.measured_ms)

    @property
    def spearman_macs(self) -> float:
        """The baseline the paper's Table 16 compares against: rank by raw MAC count."""
        return roofline.spearman(self.macs, self.measured_ms)


def compare(
    device: str,
    latencies_ms: dict[str, float] | None = None,
    matched: dict[str, ModelSpec] | None = None,
) -> Comparison:
    """Estimate every implemented model with the stored profile; by default on the rows it was fitted to."""
    latencies_ms = latencies_ms if latencies_ms is not None else dict(FITS[device].rows)
    if matched is None:
        from mnv4suite.reports.paper import paper_results

        matched = costed_rows(paper_results())
    profile = PROFILES[device]
    names = tuple(n for n in latencies_ms if n in matched)
    layers = [device_layers(matched[n], device) for n in names]
    return Comparison(
        device=device,
        models=names,
        model_ids=tuple(matched[n].id for n in names),
        measured_ms=tuple(latencies_ms[n] for n in names),
        estimated_ms=tuple(roofline.estimate(rows, profile).total_ms for rows in layers),
        macs=tuple(sum(r.macs for r in rows) for rows in layers),
    )


def _wrapped(items: Iterable[str], indent: int = 12, width: int = 104) -> list[str]:
    """Items joined by spaces into lines of at most ``width`` characters, each indented."""
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) > width:
            lines.append(" " * indent + line)
            line = ""
        line = f"{line} {item}" if line else item
    return lines + [" " * indent + line]


def emit(fits: dict[str, DeviceFit]) -> str:
    """Python source of a ``FITS`` block, to paste above after a re-fit."""
    lines = ["FITS: dict[str, DeviceFit] = {"]
    for device, c in fits.items():
        lines += [
            f"    {device!r}: DeviceFit(",
            f"        {device!r}, ridge_point={c.ridge_point!r}, ridge_from={c.ridge_from!r}, "
            f"peak_macs_per_s={c.peak_macs_per_s:.4g}, rms_log_error={c.rms_log_error!r},",
            f"        held_out_spearman={c.held_out_spearman!r}, held_out_median_ape={c.held_out_median_ape!r}, "
            f"held_out_max_ape={c.held_out_max_ape!r},",
            *([f"        overhead_s={c.overhead_s:.4g},"] if c.overhead_s else []),
            *([f"        dispatch_s={c.dispatch_s:.4g},"] if c.dispatch_s else []),
            *(["        class_peaks=(", *_wrapped(f"({n!r}, {p:.4g})," for n, p in c.class_peaks), "        ),"]
              if c.class_peaks else []),
            f"        shrinkage={c.shrinkage!r}, folds_choosing_shrinkage={c.folds_choosing_shrinkage!r},",
            f"        plain_held_out_spearman={c.plain_held_out_spearman!r}, "
            f"plain_held_out_median_ape={c.plain_held_out_median_ape!r},",
            *([f"        held_out_spearman_within_rounding={c.held_out_spearman_within_rounding!r},"]
              if c.held_out_spearman_within_rounding else []),
            "        rows=(",
            *_wrapped(f"({n!r}, {ms!r})," for n, ms in c.rows),
            "        ),",
            "    ),",
        ]
    return "\n".join(lines + ["}"])
