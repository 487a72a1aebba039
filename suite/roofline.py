"""Roofline latency estimates (MobileNetV4 paper, section 3 and Appendix F).

A layer takes as long as the slower of its arithmetic and its memory traffic:

    time(layer) = max(MACs / peak MACs/s, (weight bytes + activation bytes) / bandwidth bytes/s)

and a model takes the sum over its layers. The ridge point (peak / bandwidth, in MACs per byte) is
the operational intensity where both limits meet; layers below it are memory-bound.

Dividing by the peak shows that, for a fixed ridge point R, latency x peak = sum max(MACs, R x bytes)
("MAC-equivalents"). So the *ranking* of models depends on R alone, and fitting a peak to measured
latency at a fixed R is a 1-D least-squares problem with a closed form in log space.

Framework-free: layers are any rows with ``macs``, ``weight_bytes`` and ``activation_bytes``
(``reference_models.counting.LayerCost`` or :class:`Layer`), already counted at the device's
bytes per element (int8 = 1 as in the paper, fp16 = 2, fp32 = 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Protocol, Sequence

import numpy as np

from mnv4suite.api import DeviceProfile, Runtime

#: Bytes per tensor element for the precisions the devices run.
BYTES_PER_ELEMENT = {"int8": 1, "fp16": 2, "bf16": 2, "fp32": 4}

#: The ridge points the paper's Figures 2 and 3 sweep over (MACs/byte).
SWEEP_RIDGE_POINTS = np.linspace(0.0, 500.0, 501)


class LayerLike(Protocol):
    macs: int
    weight_bytes: int
    activation_bytes: int


@dataclass(frozen=True)
class Layer:
    """A hand-made layer row (``LayerCost`` has the same fields, plus shapes)."""

    name: str
    macs: float
    weight_bytes: float
    activation_bytes: float
    op: str = "conv"
    kernel: int = 1

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.activation_bytes


#: The ops the paper's roofline counts; element-wise rows (GELU, LayerNorm, ...) only a cost model
#: that gives the op its own class times.
PAPER_OPS = frozenset({"conv", "dwconv", "mdwconv", "gconv", "linear", "attention"})

#: Op classes a cost model may give their own efficiency: what accelerators run on different units or
#: kernels. "pointwise" (1x1 convs, fully connected) carries most MACs and is the base every other
#: class is timed like unless its own term earns its place. Each element-wise op is a class of its
#: own: a runtime may have a fast kernel for one (hard-swish) and fall back to a slow one for another
#: (GELU's erf), and the paper's roofline does not time them at all. "add" and "mul" are the residual
#: adds and squeeze-excite multiplies: pure memory traffic, a broadcast multiply maybe a slow one.
OP_CLASSES = ("pointwise", "dense", "depthwise", "general_depthwise", "multiplier", "grouped", "attention", "gelu",
              "hardswish", "layernorm", "groupnorm", "add", "mul", "cpu_fallback")

#: Not an op but where rows run: the layers a delegate leaves to the CPU. A TFLite delegate hands the
#: accelerator only its largest run of consecutive ops it accepts (the GPU delegate's
#: ``max_delegated_partitions`` defaults to 1), so one op it rejects splits the graph, and every other
#: piece runs at the CPU's speed, not the accelerator's.
CPU_FALLBACK = "cpu_fallback"

#: A depthwise conv the runtime has no kernel written for runs on its general, slower one:
#: "general_depthwise". Unless a device says which (kernel, stride) pairs have their own kernel, that is
#: a window this wide or wider: mobile CPU runtimes ship single-pass kernels for 3x3 and 5x5 windows
#: (XNNPACK's 9- and 25-tap micro-kernels) and take a general path beyond them (FastViT's and ConvNeXt's 7x7).
LARGE_KERNEL = 7

#: A class without a term of its own is timed as its parent when the parent has one (a depthwise conv on
#: the general kernel is still depthwise), else at the shared peak.
PARENT = {"general_depthwise": "depthwise"}

#: A runtime that does nothing the roofline must count: every op on the device, default kernels, packed
#: tensors.
PLAIN_RUNTIME = Runtime()


def stride(row: LayerLike) -> int:
    """A conv row's stride, from its input and output widths (1 for a row without shapes)."""
    inputs, output = getattr(row, "input_shapes", ()), getattr(row, "output_shape", ())
    if not inputs or len(inputs[0]) != 4 or len(output) != 4 or not output[-1]:
        return 1
    return max(1, round(inputs[0][-1] / output[-1]))


def op_class(row: LayerLike, runtime: Runtime = PLAIN_RUNTIME) -> str:
    """The row's op class; a depthwise conv is "depthwise" where the runtime has a kernel of its own for
    its (kernel, stride) (``Runtime.dedicated_depthwise``; None: windows narrower than LARGE_KERNEL)."""
    op = getattr(row, "op", "conv")
    if op == "dwconv":
        kernel, own = getattr(row, "kernel", 1), runtime.dedicated_depthwise
        dedicated = kernel < LARGE_KERNEL if own is None else (kernel, stride(row)) in own
        return "depthwise" if dedicated else "general_depthwise"
    if op in ("mdwconv", "gconv"):
        return {"mdwconv": "multiplier", "gconv": "grouped"}[op]
    if op == "conv":
        return "dense" if getattr(row, "kernel", 1) > 1 else "pointwise"
    if op == "linear":
        return "pointwise"
    return op  # attention and the element-wise ops


def paper_counts(row: LayerLike) -> bool:
    """Whether the paper's roofline counts a row: convs, linears and attention, not element-wise rows."""
    return getattr(row, "op", "conv") in PAPER_OPS


def launched(row: LayerLike) -> bool:
    """Whether a row is a kernel launch of its own, paying the per-layer dispatch time: the rows the
    paper counts, as runtimes fuse element-wise ops (activations, norms) into the layer before them."""
    return paper_counts(row)


def timed_class(row: LayerLike, classes, runtime: Runtime = PLAIN_RUNTIME) -> str | None:
    """The class of ``classes`` (those with their own peak) a row is timed as; None: the shared peak."""
    c = op_class(row, runtime)
    while c is not None and c not in classes:
        c = PARENT.get(c)
    return c


def left_to_cpu(layers: Sequence[LayerLike], runtime: Runtime) -> list[bool]:
    """Per row (rows in execution order): whether it runs on the CPU, because the runtime's delegate
    rejects its op class or delegates a larger run of accepted rows instead (CPU_FALLBACK)."""
    accepted = [op_class(r, runtime) not in runtime.delegate_rejects for r in layers]
    if all(accepted):
        return [False] * len(accepted)
    largest, start = (0, 0), None
    for i, ok in enumerate([*accepted, False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            largest, start = max(largest, (start, i), key=lambda run: run[1] - run[0]), None
    return [not largest[0] <= i < largest[1] for i in range(len(accepted))]


def row_classes(layers: Sequence[LayerLike], classes, on_cpu: Sequence[bool],
                runtime: Runtime = PLAIN_RUNTIME) -> list[str | None]:
    """``timed_class`` of each row, except that rows left to the CPU (``left_to_cpu``) are CPU_FALLBACK
    where it is one of ``classes`` (else timed as their op's class: one model's fallback is no peak to fit)."""
    fallback = CPU_FALLBACK in classes
    return [CPU_FALLBACK if cpu and fallback else timed_class(r, classes, runtime)
            for r, cpu in zip(layers, on_cpu)]


def _arrays(layers: Iterable[LayerLike]) -> tuple[np.ndarray, np.ndarray]:
    """MACs and bytes of the rows the paper's roofline counts."""
    rows = [r for r in layers if paper_counts(r)]
    macs = np.array([float(r.macs) for r in rows])
    moved = np.array([float(r.weight_bytes) + float(r.activation_bytes) for r in rows])
    return macs, moved


def laid_out(layers: Iterable[LayerLike], bytes_per_element: float, runtime: Runtime) -> list:
    """Rows with the activation bytes a runtime moves when it pads the last axis of every tensor to a
    multiple of ``Runtime.last_axis_alignment_bytes`` (0: packed, rows unchanged). The Apple Neural Engine does,
    to 64 bytes: an fp16 (1, 384, 8, 8) map takes four times its packed size, so late, small feature
    maps cost more than their elements say. Rows without shapes (a hand-made ``Layer``) stay as they are."""
    rows, last_axis_alignment = list(layers), runtime.last_axis_alignment_bytes
    if not last_axis_alignment:
        return rows

    def padded(shape: Sequence[int]) -> float:
        if not shape:
            return bytes_per_element
        lines = math.ceil(shape[-1] * bytes_per_element / last_axis_alignment)
        return math.prod(shape[:-1]) * lines * last_axis_alignment

    out = []
    for r in rows:
        shapes = [*getattr(r, "input_shapes", ()), *([r.output_shape] if getattr(r, "output_shape", None) else [])]
        out.append(replace(r, activation_bytes=int(sum(padded(s) for s in shapes))) if shapes else r)
    return out


# --------------------------------------------------------------------------- estimate


@dataclass(frozen=True)
class Estimate:
    """A roofline latency estimate: always an estimate, labelled with the profile it used."""

    device: str
    source: str
    total_s: float  # the layers' time plus the profile's fixed per-inference overhead
    layer_s: tuple[float, ...]
    compute_bound: tuple[bool, ...]  # per layer: arithmetic, not memory, sets its time
    names: tuple[str, ...]
    overhead_s: float = 0.0
    cpu_layers: tuple[str, ...] = ()  # the layers the delegate leaves to the CPU (CPU_FALLBACK)

    @property
    def total_ms(self) -> float:
        return self.total_s * 1e3

    @property
    def compute_bound_time_share(self) -> float:
        """Fraction of the total time spent in compute-bound layers."""
        layers_s = self.total_s - self.overhead_s
        if not layers_s:
            return 0.0
        return sum(t for t, c in zip(self.layer_s, self.compute_bound) if c) / layers_s

    @property
    def memory_bound_layers(self) -> tuple[str, ...]:
        return tuple(n for n, c in zip(self.names, self.compute_bound) if not c)


def rates(profile: DeviceProfile) -> tuple[float, float]:
    """(peak MACs/s, bandwidth bytes/s) of a profile; the bandwidth may be derived from the ridge point."""
    peak = profile.peak_macs_per_s
    bandwidth = profile.bandwidth_bytes_per_s
    if bandwidth is None and peak and profile.ridge_point:
        bandwidth = peak / profile.ridge_point
    if not peak or not bandwidth:
        raise ValueError(
            f"device profile '{profile.id}' has no peak MACs/s and bandwidth (ridge point {profile.ridge_point}); "
            "only relative estimates (mac_equivalents, sweep) are possible"
        )
    return float(peak), float(bandwidth)


def unsupported_ops(layers: Sequence[LayerLike], profile: DeviceProfile) -> tuple[str, ...]:
    """The ops of a model the device's runtime does not run (Table 6's "Failed"), sorted."""
    return tuple(sorted({getattr(r, "op", "conv") for r in layers} & set(profile.unsupported_ops)))


def estimate(layers: Sequence[LayerLike], profile: DeviceProfile) -> Estimate:
    """Per-layer and total roofline time of one forward pass on ``profile``: each layer at its op
    class's effective peak (the shared one unless the profile times the class apart; an element-wise
    op only when it does; the CPU's where the delegate leaves it there), plus the profile's per-layer
    dispatch and fixed per-inference times."""
    peak, bandwidth = rates(profile)
    class_peaks = dict(profile.class_peaks)
    on_cpu = left_to_cpu(layers, profile.runtime)
    classes = row_classes(layers, class_peaks, on_cpu, profile.runtime)
    timed = [(r, c, cpu) for r, c, cpu in zip(layers, classes, on_cpu)
             if c is not None or paper_counts(r)]
    slowdown = np.array([peak / class_peaks.get(c, peak) for _, c, _ in timed])
    macs = np.array([float(r.macs) for r, _, _ in timed])
    moved = np.array([float(r.weight_bytes) + float(r.activation_bytes) for r, _, _ in timed])
    compute_s = macs / peak
    memory_s = moved / bandwidth
    launches = np.array([launched(r) for r, _, _ in timed], dtype=bool)
    layer_s = np.maximum(compute_s, memory_s) * slowdown + profile.dispatch_s * launches
    fixed_s = profile.overhead_s
    names = tuple(str(getattr(r, "name", i)) for i, (r, _, _) in enumerate(timed))
    return Estimate(
        device=profile.id,
        source=profile.source,
        total_s=float(layer_s.sum()) + fixed_s,
        layer_s=tuple(float(t) for t in layer_s),
        compute_bound=tuple(bool(b) for b in compute_s >= memory_s),
        names=names,
        overhead_s=fixed_s,
        cpu_layers=tuple(n for n, (_, _, cpu) in zip(names, timed) if cpu),
    )


def mac_equivalents(layers: Sequence[LayerLike], ridge_point: float) -> float:
    """Latency x peak at ``ridge_point``: sum of max(MACs, ridge x bytes). Needs no absolute rates."""
    macs, moved = _arrays(layers)
    return float(np.maximum(macs, ridge_point * moved).sum())


def sweep(layers: Sequence[LayerLike], ridge_points: Sequence[float] = SWEEP_RIDGE_POINTS) -> np.ndarray:
    """MAC-equivalents of one model at each ridge point (0 = pure MAC count), for Figures 2 and 3.

    Non-decreasing in the ridge point: a slower memory never makes a layer faster.
    """
    macs, moved = _arrays(layers)
    ridges = np.asarray(ridge_points, dtype=float)[:, None]
    return np.maximum(macs[None, :], ridges * moved[None, :]).sum(axis=1)


# --------------------------------------------------------------------------- fit


@dataclass(frozen=True)
class Terms:
    """The columns of a cost model beyond the paper's roofline: what its weights may express. How far
    each class's peak may stray from the shared one is the fit's shrinkage, chosen on held-out models."""

    overhead: bool = False  # fixed seconds per inference: dispatch, synchronisation, I/O
    dispatch: bool = False  # seconds per launched layer (conv, linear, attention): an accelerator's per-op cost
    classes: tuple[str, ...] = ()  # op classes (OP_CLASSES, not "pointwise") with their own effective peak
    #: what the rows were classed (op_class), split (left_to_cpu) and counted (laid_out) by
    runtime: Runtime = PLAIN_RUNTIME

    def __str__(self) -> str:
        parts = (["overhead"] if self.overhead else []) + (["per-layer dispatch"] if self.dispatch else [])
        op_classes = [c for c in self.classes if c != CPU_FALLBACK]
        parts += [f"own peaks for {', '.join(op_classes)}"] if op_classes else []
        rejected = self.runtime.delegate_rejects
        parts += [f"a CPU peak for what the delegate does not take ({', '.join(rejected)} rejected)"] \
            if rejected else []
        return "roofline" + "".join(f" + {p}" for p in parts)


PLAIN = Terms()


def cost_model_text(terms: Terms) -> str:
    """The terms, with what the rows were classed and counted by where it is not the default: the
    depthwise convs the runtime has kernels of its own for (``op_class``), and its layout (``laid_out``)."""
    text, runtime = str(terms), terms.runtime
    if runtime.dedicated_depthwise is not None:
        own = ", ".join(f"{k}x{k} stride {s}" for k, s in runtime.dedicated_depthwise) or "none"
        text += f" (depthwise kernels of the runtime's own: {own}; the others general_depthwise)"
    if runtime.last_axis_alignment_bytes:
        text += f" on activations whose last axis is padded to {runtime.last_axis_alignment_bytes} bytes"
    return text


@dataclass(frozen=True)
class Fit:
    """An effective peak (and ridge point) fitted to measured latencies, with its log-space error."""

    ridge_point: float
    peak_macs_per_s: float
    rms_log_error: float  # root mean square of ln(estimate / measured)
    n: int
    #: True when every larger ridge point fits as well: above the most intense layer everything is
    #: memory-bound, estimates scale with bytes alone, and the data cannot bound the ridge from above.
    ridge_is_lower_bound: bool = False
    #: fixed seconds per inference (fit_terms); 0 for the plain roofline
    overhead_s: float = 0.0
    #: seconds per layer, and op classes with their own effective peak (fit_terms)
    dispatch_s: float = 0.0
    class_peaks: tuple[tuple[str, float], ...] = ()
    terms: Terms = PLAIN

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.peak_macs_per_s / self.ridge_point if self.ridge_point else math.inf


def _peak_at(equivalents: np.ndarray, measured_s: np.ndarray) -> tuple[float, float]:
    """Closed-form log-space least squares: ln peak = mean(ln MAC-equivalents - ln measured)."""
    gap = np.log(equivalents) - np.log(measured_s)
    log_peak = float(gap.mean())
    return math.exp(log_peak), float(np.sqrt(np.mean((gap - log_peak) ** 2)))


def _check(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float]) -> np.ndarray:
    measured = np.asarray(measured_s, dtype=float)
    if len(models) != len(measured) or len(measured) < 2:
        raise ValueError(f"need one measured latency per model and at least two models (got {len(models)}, {len(measured)})")
    if np.any(measured <= 0):
        raise ValueError("measured latencies must be positive")
    return measured


def fit_peak(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float], ridge_point: float) -> Fit:
    """Effective peak MACs/s at a given (e.g. published) ridge point, least squares on ln latency."""
    measured = _check(models, measured_s)
    equivalents = np.array([mac_equivalents(layers, ridge_point) for layers in models])
    peak, rms = _peak_at(equivalents, measured)
    return Fit(float(ridge_point), peak, rms, len(measured))




def _features(layers: Sequence[LayerLike], terms: Terms) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: MACs, bytes, column of the design matrix (0 = the shared peak, then terms.classes) and
    whether it is launched (pays the per-layer dispatch time)."""
    on_cpu = left_to_cpu(layers, terms.runtime)
    timed = zip(layers, row_classes(layers, terms.classes, on_cpu, terms.runtime))
    timed = [(r, c) for r, c in timed if c is not None or paper_counts(r)]
    macs = np.array([float(r.macs) for r, _ in timed])
    moved = np.array([float(r.weight_bytes) + float(r.activation_bytes) for r, _ in timed])
    column = np.array([0 if c is None else 1 + terms.classes.index(c) for _, c in timed], dtype=int)
    return macs, moved, column, np.array([launched(r) for r, _ in timed], dtype=bool)


class Design:
    """Every model's row of the design matrix - [shared MAC-eq, per-class MAC-eq..., 1 per inference,
    launched layers] - at every ridge of a grid, for one set of terms. Built once, then sliced by row,
    so cross-validation and the choice of shrinkage refit without recounting a layer."""

    def __init__(self, models: Sequence[Sequence[LayerLike]], terms: Terms, grid: Sequence[float]):
        self.terms = terms
        self.grid = np.asarray(grid, dtype=float)
        width = 1 + len(terms.classes)
        per_model = []
        for layers in models:
            macs, moved, column, launches = _features(layers, terms)
            one_hot = np.zeros((len(macs), width))
            one_hot[np.arange(len(macs)), column] = 1.0
            eq = np.maximum(macs[None, :], self.grid[:, None] * moved[None, :]) @ one_hot  # ridge x class
            extra = ([1.0] if terms.overhead else []) + ([float(launches.sum())] if terms.dispatch else [])
            per_model.append(np.concatenate([eq, np.broadcast_to(extra, (len(self.grid), len(extra)))], axis=1))
        self.a = np.stack(per_model, axis=1)  # ridge x model x weight
        eq = self.a[:, :, :width]
        #: model x class: the most of a model's roofline time the class carries at any ridge tried
        self.share = (eq / np.maximum(eq.sum(axis=2, keepdims=True), 1e-300)).max(axis=0)

    def fit(self, rows: Sequence[int], measured_s: np.ndarray, shrinkage: float = 0.0) -> tuple[int, np.ndarray, float]:
        """(ridge index, weights, rms ln error) of the best fit to ``rows`` (smallest ridge of equals)."""
        merge, kept = self._merge(rows)
        classes = (None, *self.terms.classes)
        # op classes are pulled toward the accelerator's shared peak; the CPU's time is not the accelerator's
        pulled = [j for j, c in enumerate(kept) if 0 < c < len(classes) and classes[c] != CPU_FALLBACK]
        best = None
        for g in range(len(self.grid)):
            x, rms = _solve(self.a[g, rows] @ merge, measured_s[rows], shrinkage, pulled)
            if best is None or rms < best[2] * (1 - _TIE) - _TIE:
                best = (g, merge @ x, rms)
        return best

    def _merge(self, rows: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """(columns x kept columns, the kept columns): a class fewer than MIN_MODELS_PER_CLASS of ``rows``
        have (MIN_CLASS_SHARE) is timed as its parent (or the shared peak): its weight is theirs, not one
        fitted to one model's latency. A model the delegate splits counts toward CPU_FALLBACK alone: an op
        class only such models have could not be told apart from their time on the CPU (FastViT's 7x7
        depthwise convs on the phone GPUs). Nor does a class that is not in every model left unsplit but in
        exactly the models an earlier kept class of OP_CLASSES is in: the rows cannot tell the two apart.
        With MNv4-Hybrid-L held out of the S23 CPU's rows, GELU was only in FastViT and ConvNeXt, beside
        their 7x7 depthwise convs, and a GELU peak that took their slowness predicted Hybrid-L's 50 GELUs
        2.4x over; the conv class, first in OP_CLASSES, keeps it."""
        classes = (None, *self.terms.classes)
        have = self.share[rows] >= MIN_CLASS_SHARE
        whole = len(rows)  # models whose op classes count: those the delegate does not split
        if CPU_FALLBACK in classes:  # a split model's op classes are confounded with its CPU time
            split = have[:, classes.index(CPU_FALLBACK)].copy()
            have &= ~split[:, None]
            have[:, classes.index(CPU_FALLBACK)] = split
            whole -= int(split.sum())
        seen = have.sum(axis=0)
        target = list(range(self.a.shape[2]))
        kept_in: list[tuple[bool, ...]] = []  # which models each class kept so far is in
        for c in range(1, len(classes)):
            models_with = tuple(have[:, c])
            confounded = classes[c] != CPU_FALLBACK and seen[c] < whole and models_with in kept_in
            if seen[c] < MIN_MODELS_PER_CLASS or confounded:
                parent = PARENT.get(classes[c])
                target[c] = classes.index(parent) if parent in classes else 0
            else:
                kept_in.append(models_with)
        for c in range(len(target)):  # a parent merged in turn takes its children along
            while target[target[c]] != target[c]:
                target[c] = target[target[c]]
        kept = sorted(set(target))
        merge = np.zeros((len(target), len(kept)))
        merge[np.arange(len(target)), [kept.index(t) for t in target]] = 1.0
        return merge, kept

    def predict(self, g: int, x: np.ndarray, rows: Sequence[int]) -> np.ndarray:
        return self.a[g, rows] @ x

    def as_fit(self, g: int, x: np.ndarray, rms: float, n: int) -> "Fit":
        terms = self.terms
        n_classes = 1 + len(terms.classes)
        inverse_peaks = np.maximum(x[:n_classes], 1 / FREE_PEAK)
        extra = list(x[n_classes:])
        overhead = extra.pop(0) if terms.overhead else 0.0
        dispatch = extra.pop(0) if terms.dispatch else 0.0
        return Fit(
            float(self.grid[g]), 1.0 / float(inverse_peaks[0]), rms, n, overhead_s=float(overhead),
            dispatch_s=float(dispatch), terms=terms,
            class_peaks=tuple((c, 1.0 / float(w)) for c, w in zip(terms.classes, inverse_peaks[1:])),
        )


def _solve(a: np.ndarray, measured_s: np.ndarray, shrinkage: float = 0.0, pulled: Sequence[int] = (),
           ) -> tuple[np.ndarray, float]:
    """Non-negative least squares on relative error (a x / measured = 1); (x, rms ln error).

    ``shrinkage`` pulls the weight of each column in ``pulled`` toward the shared peak's (column 0): a
    deviation costs shrinkage x (the share of a typical model's time the column carries x its
    change)^2, so a class that moves few models' time can differ more."""
    from scipy.optimize import nnls

    scaled = a / measured_s[:, None]
    target = np.ones_like(measured_s)
    if shrinkage > 0 and pulled:
        share = scaled.mean(axis=0)
        penalty = np.zeros((len(pulled), a.shape[1]))
        for row, c in enumerate(pulled):
            penalty[row, c], penalty[row, 0] = share[c], -share[c]
        scaled = np.vstack([scaled, math.sqrt(shrinkage) * penalty])
        target = np.concatenate([target, np.zeros(len(pulled))])
    x, _ = nnls(scaled, target)
    predicted = a @ x
    if np.any(predicted <= 0):
        return x, math.inf
    return x, float(np.sqrt(np.mean(np.log(predicted / measured_s) ** 2)))


#: The peak stored for a class the fit finds free (weight 0): its time is all in the per-layer and
#: per-inference terms, e.g. depthwise convs on an accelerator that overlaps them with the dense ones.
FREE_PEAK = 1e15


def peak_text(peak: float) -> str:
    return "free (its time is in the per-layer or per-inference terms)" if peak >= FREE_PEAK * 0.999 else \
        f"{peak / 1e9:.3g} GMACs/s"


#: Ridge points tried when a cost model's ridge is fitted: 0.5 to 5000 MACs/byte, 17% apart (each point
#: costs a fit per fold and per shrinkage tried; the plain roofline's ridge is searched finer).
TERMS_RIDGE_GRID = np.geomspace(0.5, 5000.0, 60)


def _ridges(ridge_point: float | None) -> Sequence[float]:
    """The ridge points a cost model is fitted at: the given (published) one, else TERMS_RIDGE_GRID."""
    return [ridge_point] if ridge_point is not None else TERMS_RIDGE_GRID


def fit_terms(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float], terms: Terms,
              ridge_point: float | None = None, shrinkage: float = 0.0) -> Fit:
    """The roofline with ``terms``, its weights non-negative least squares in relative error (each class
    pulled toward the shared peak by ``shrinkage``), at a given ridge point or the ridge searched on
    TERMS_RIDGE_GRID (smallest of equals) when it is None."""
    measured = _check(models, measured_s)
    design = Design(models, terms, _ridges(ridge_point))
    g, x, rms = design.fit(list(range(len(measured))), measured, shrinkage)
    return design.as_fit(g, x, rms, len(measured))


def fit_with_overhead(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float],
                      ridge_point: float | None = None) -> Fit:
    """Roofline plus a fixed per-inference overhead (on an accelerator the small models' latency is mostly this)."""
    return fit_terms(models, measured_s, Terms(overhead=True), ridge_point)


def predict(layers: Sequence[LayerLike], fit: Fit) -> float:
    """Seconds ``fit`` gives one model (what ``estimate`` gives with a profile made from it)."""
    macs, moved, column, launches = _features(layers, fit.terms)
    peaks = np.array([fit.peak_macs_per_s, *(p for _, p in fit.class_peaks)])
    layer_s = np.maximum(macs, fit.ridge_point * moved) / peaks[column] + fit.dispatch_s * launches
    return float(layer_s.sum()) + fit.overhead_s


#: Ridge points tried when the ridge is fitted too: 0.5 to 5000 MACs/byte, 1% apart.
FIT_RIDGE_GRID = np.geomspace(0.5, 5000.0, 927)

#: Errors this close count as equal: a flat stretch of the error curve is a tie, not a minimum.
_TIE = 1e-9


def fit_ridge_and_peak(
    models: Sequence[Sequence[LayerLike]],
    measured_s: Sequence[float],
    ridge_points: Sequence[float] = FIT_RIDGE_GRID,
) -> Fit:
    """Ridge point and peak together: grid search over the ridge, closed-form peak at each.

    Of equally good ridge points the smallest wins, so a flat error curve (all layers memory-bound
    beyond the most intense one) gives its lower edge, flagged ``ridge_is_lower_bound``, rather than
    an arbitrary point on the plateau. The grid is refined once around the winner, to 0.1% steps.
    """
    measured = _check(models, measured_s)
    arrays = [_arrays(layers) for layers in models]

    def scan(grid: np.ndarray) -> tuple[int, list[tuple[float, float]]]:
        equivalents = np.stack([np.maximum(m[None, :], grid[:, None] * b[None, :]).sum(axis=1) for m, b in arrays], axis=1)
        results = [_peak_at(row, measured) for row in equivalents]
        errors = np.array([rms for _, rms in results])
        return int(np.argmax(errors <= errors.min() * (1 + _TIE) + _TIE)), results

    grid = np.asarray(ridge_points, dtype=float)
    i, results = scan(grid)
    plateau = results[-1][1]
    if 0 < i < len(grid) - 1:
        fine = np.linspace(grid[i - 1], grid[i + 1], 201)
        j, fine_results = scan(fine)
        if fine_results[j][1] <= results[i][1] * (1 + _TIE) + _TIE:
            grid, i, results = fine, j, fine_results
    peak, rms = results[i]
    return Fit(float(grid[i]), peak, rms, len(measured), ridge_is_lower_bound=plateau <= rms * (1 + _TIE) + _TIE)


def estimate_text(estimate: dict) -> str:
    """"~3.96 ms, typically within ±12%": an estimate is never shown without its error band."""
    band = estimate.get("typical_error_pct")
    return f"~{estimate['ms']:.2f} ms" + (f", typically within ±{band:.0f}%" if band is not None else ", error unknown")


# --------------------------------------------------------------------------- held-out validation


@dataclass(frozen=True)
class HeldOut:
    """Leave-one-out predictions: each model estimated by a fit that never saw it."""

    predicted_s: tuple[float, ...]
    measured_s: tuple[float, ...]

    @property
    def abs_pct_errors(self) -> np.ndarray:
        p, m = np.asarray(self.predicted_s), np.asarray(self.measured_s)
        return 100.0 * np.abs(p - m) / m

    @property
    def median_abs_pct_error(self) -> float:
        return float(np.median(self.abs_pct_errors))

    @property
    def max_abs_pct_error(self) -> float:
        return float(np.max(self.abs_pct_errors))

    @property
    def spearman(self) -> float:
        return spearman(self.predicted_s, self.measured_s)

    def spearman_within(self, half_widths: Sequence[float], draws: int = 4000, seed: int = 0) -> tuple[float, float]:
        """5th and 95th percentile of the Spearman against measured latencies moved anywhere within
        ``half_widths`` of their printed values (uniformly): how much of the ranking the rounding of a
        published table decides. Table 6 prints 0.5 ms for anything from 0.45 to 0.55, so its ties and
        near-ties could rank either way, and a correlation near a threshold may fall on either side."""
        from scipy.stats import rankdata

        measured, half = np.asarray(self.measured_s), np.asarray(half_widths, dtype=float)
        if half.shape != measured.shape or np.any(half < 0):
            raise ValueError(f"need one non-negative half width per model (got {half.shape} for {measured.shape})")
        drawn = measured + np.random.default_rng(seed).uniform(-1.0, 1.0, (draws, len(measured))) * half
        x = _ranks(self.predicted_s) - (len(measured) + 1) / 2
        y = rankdata(drawn, axis=1)
        y -= y.mean(axis=1, keepdims=True)
        rho = (y @ x) / np.sqrt((y * y).sum(axis=1) * float(x @ x))
        low, high = np.percentile(rho, [5, 95])
        return float(low), float(high)

    @property
    def mean_abs_log_error(self) -> float:
        """Mean |ln(predicted / measured)|: symmetric in over- and under-estimates, every model counted."""
        return float(np.mean(np.abs(np.log(np.asarray(self.predicted_s) / np.asarray(self.measured_s)))))


def _folds_checked(folds: Sequence[Sequence[int]], n: int) -> None:
    flat = sorted(i for fold in folds for i in fold)
    if flat != list(range(n)):
        raise ValueError(f"folds must hold every model index exactly once (got {flat})")
    if any(n - len(set(fold)) < 2 for fold in folds):
        raise ValueError("a fold leaves fewer than two models to fit on")


def _plain_fit(models, measured, ridge_point: float | None) -> Fit:
    return fit_peak(models, measured, ridge_point) if ridge_point is not None else fit_ridge_and_peak(models, measured)


def cross_validate(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float], folds: Sequence[Sequence[int]],
                   ridge_point: float | None = None, terms: Terms | None = None, shrinkage: float = 0.0) -> HeldOut:
    """Predict the models of each fold from a fit to all the others (every model in exactly one fold).

    The paper's roofline (``terms`` None): the peak at ``ridge_point``, or ridge and peak refitted per
    fold when it is None; a cost model with ``terms``: all its weights (and the ridge, when None)
    refitted at ``shrinkage``."""
    measured = _check(models, measured_s)
    _folds_checked(folds, len(measured))
    design = None if terms is None else Design(models, terms, _ridges(ridge_point))
    predicted = np.zeros(len(measured))
    for fold in folds:
        held = sorted(set(fold))
        rest = [j for j in range(len(measured)) if j not in held]
        if design is not None:
            g, x, _ = design.fit(rest, measured, shrinkage)
            predicted[held] = design.predict(g, x, held)
        else:
            fit = _plain_fit([models[j] for j in rest], measured[rest], ridge_point)
            predicted[held] = [predict(models[i], fit) for i in held]
    return HeldOut(tuple(float(p) for p in predicted), tuple(float(t) for t in measured))


def leave_one_out(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float],
                  ridge_point: float | None = None, overhead: bool = False, terms: Terms | None = None,
                  shrinkage: float = 0.0) -> HeldOut:
    """Each model predicted by a fit to all the others: the honest error of an estimate for a model
    the fit never saw (in-sample error flatters: the fit has seen the answer). See ``cross_validate``."""
    if len(models) < 3:
        raise ValueError(f"leave-one-out needs at least three models (got {len(models)})")
    terms = Terms(overhead=True) if overhead and terms is None else terms
    return cross_validate(models, measured_s, [[i] for i in range(len(models))], ridge_point, terms, shrinkage)


# --------------------------------------------------------------------------- choosing the cost model

#: An op class has its own peak only where this many of the models fitted have it: a class seen in one
#: model is a label for that model, not an efficiency the fit can tell apart.
MIN_MODELS_PER_CLASS = 2

#: ... and has it only where it carries this share of the model's roofline time (at some ridge point).
#: Below it, only an absurd peak moves the model's time at all, so such rows say nothing of the class's
#: speed and would let its peak absorb the model's other errors (EfficientViT's one LayerNorm, in its
#: head, carries 0.007-0.02%: with ConvNeXt and two EfficientViTs held out of the S23 CPU's rows, a
#: LayerNorm peak fitted to the third predicted ConvNeXt's 37 LayerNorms 58x over).
MIN_CLASS_SHARE = 1e-3

#: Shrinkages tried, weakest first: 0 lets every class's peak go its own way, the last ties them all to
#: the shared peak (the roofline plus overhead and dispatch). Leave-one-out chooses among them.
SHRINKAGE_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 1e6)


def cost_model_terms(models: Sequence[Sequence[LayerLike]], runtime: Runtime = PLAIN_RUNTIME) -> Terms:
    """Every term a cost model may use on these models: a fixed per-inference time, a per-layer
    dispatch time, and an effective peak for each op class that MIN_MODELS_PER_CLASS of them have,
    CPU_FALLBACK included where the runtime's delegate rejects op classes (they never run on the
    accelerator) and so splits that many; depthwise convs classed by the runtime's own kernels."""
    split = [any(left_to_cpu(layers, runtime)) for layers in models]
    have = [{op_class(r, runtime) for r in layers} | ({CPU_FALLBACK} if s else set())
            for layers, s in zip(models, split)]
    classes = tuple(c for c in OP_CLASSES[1:]
                    if c not in runtime.delegate_rejects and sum(c in h for h in have) >= MIN_MODELS_PER_CLASS)
    return Terms(overhead=True, dispatch=True, classes=classes, runtime=runtime)


def _loo_rows(design: Design, rows: Sequence[int], measured: np.ndarray, shrinkage: float) -> HeldOut:
    predicted = []
    for i in rows:
        g, x, _ = design.fit([j for j in rows if j != i], measured, shrinkage)
        predicted.append(float(design.predict(g, x, [i])[0]))
    return HeldOut(tuple(predicted), tuple(float(measured[i]) for i in rows))


def _choose_shrinkage(design: Design, rows: Sequence[int], measured: np.ndarray) -> tuple[float, HeldOut]:
    """The shrinkage whose leave-one-out mean |ln error| over ``rows`` is least (the stronger of equals).

    The mean |ln error| weighs every model: the median alone would let a choice buy a better middle with
    a worse tail, and the ranking with it."""
    trials = [(_loo_rows(design, rows, measured, k), k) for k in SHRINKAGE_GRID]
    best = min(held.mean_abs_log_error for held, _ in trials)
    return next((k, held) for held, k in reversed(trials) if held.mean_abs_log_error <= best * (1 + _TIE) + _TIE)


@dataclass(frozen=True)
class CostModel:
    """A device's cost model as chosen on all its rows, with the figures of that choice."""

    terms: Terms
    shrinkage: float
    held_out: HeldOut  # leave-one-out at the chosen shrinkage: optimistic, the choice saw every row


def choose_cost_model(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float],
                      ridge_point: float | None, runtime: Runtime = PLAIN_RUNTIME) -> CostModel:
    """Every term of ``cost_model_terms``, the shrinkage of the class peaks chosen by leave-one-out."""
    measured = _check(models, measured_s)
    if len(measured) < 3:
        raise ValueError(f"choosing a cost model needs at least three models (got {len(measured)})")
    terms = cost_model_terms(models, runtime)
    design = Design(models, terms, _ridges(ridge_point))
    shrinkage, held = _choose_shrinkage(design, list(range(len(measured))), measured)
    return CostModel(terms, shrinkage, held)


@dataclass(frozen=True)
class NestedHeldOut:
    """Each model predicted by a cost model whose shrinkage was chosen, and weights fitted, without it."""

    held_out: HeldOut
    fold_shrinkage: tuple[float, ...]  # per model: the shrinkage chosen by the fold that held it out


def nested_cross_validate(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float],
                          folds: Sequence[Sequence[int]], ridge_point: float | None,
                          runtime: Runtime = PLAIN_RUNTIME) -> NestedHeldOut:
    """Cross-validation around the whole fitting procedure: for each fold, the shrinkage is chosen (by
    leave-one-out on the other models) and the weights fitted on the others alone. Nothing about a
    held-out model, not even how free the class peaks may be, comes from its own latency."""
    measured = _check(models, measured_s)
    _folds_checked(folds, len(measured))
    if any(len(measured) - len(set(fold)) < 3 for fold in folds):
        raise ValueError("a fold leaves fewer than three models to choose a cost model on")
    design = Design(models, cost_model_terms(models, runtime), _ridges(ridge_point))
    predicted, chosen = np.zeros(len(measured)), [0.0] * len(measured)
    for fold in folds:
        held = sorted(set(fold))
        rest = [j for j in range(len(measured)) if j not in held]
        shrinkage, _ = _choose_shrinkage(design, rest, measured)
        g, x, _ = design.fit(rest, measured, shrinkage)
        predicted[held] = design.predict(g, x, held)
        for i in held:
            chosen[i] = shrinkage
    return NestedHeldOut(HeldOut(tuple(float(p) for p in predicted), tuple(float(t) for t in measured)), tuple(chosen))


def nested_leave_one_out(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float],
                         ridge_point: float | None, runtime: Runtime = PLAIN_RUNTIME) -> NestedHeldOut:
    """``nested_cross_validate`` with one model per fold: the figures every estimate carries."""
    if len(models) < 4:
        raise ValueError(f"nested leave-one-out needs at least four models (got {len(models)})")
    return nested_cross_validate(models, measured_s, [[i] for i in range(len(models))], ridge_point, runtime)


# --------------------------------------------------------------------------- rank correlation


def _ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks; tied values share the mean of their ranks (as scipy.stats.rankdata does)."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    start = 0
    while start < len(x):
        stop = start
        while stop + 1 < len(x) and sorted_x[stop + 1] == sorted_x[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson on tie-averaged ranks); nan when either side is constant."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two equally long sequences of at least two values (got {len(x)}, {len(y)})")
    rx, ry = _ranks(x), _ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denominator = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denominator) if denominator else math.nan
