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

from mnv4suite.api import DeviceProfile

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
#: (GELU's erf), and the paper's roofline does not time them at all.
OP_CLASSES = ("pointwise", "dense", "depthwise", "multiplier", "grouped", "attention", "gelu", "hardswish", "layernorm", "groupnorm")


def op_class(row: LayerLike) -> str:
    op = getattr(row, "op", "conv")
    if op in ("dwconv", "mdwconv", "gconv"):
        return {"dwconv": "depthwise", "mdwconv": "multiplier", "gconv": "grouped"}[op]
    if op == "conv":
        return "dense" if getattr(row, "kernel", 1) > 1 else "pointwise"
    if op == "linear":
        return "pointwise"
    return op  # attention and the element-wise ops


def _arrays(layers: Iterable[LayerLike]) -> tuple[np.ndarray, np.ndarray]:
    """MACs and bytes of the rows the paper's roofline counts."""
    rows = [r for r in layers if getattr(r, "op", "conv") in PAPER_OPS]
    macs = np.array([float(r.macs) for r in rows])
    moved = np.array([float(r.weight_bytes) + float(r.activation_bytes) for r in rows])
    return macs, moved


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
    op only when it does), plus the profile's per-layer dispatch and fixed per-inference times."""
    peak, bandwidth = rates(profile)
    class_peaks = dict(profile.class_peaks)
    rows = [r for r in layers if getattr(r, "op", "conv") in PAPER_OPS or op_class(r) in class_peaks]
    slowdown = np.array([peak / class_peaks.get(op_class(r), peak) for r in rows])
    macs = np.array([float(r.macs) for r in rows])
    moved = np.array([float(r.weight_bytes) + float(r.activation_bytes) for r in rows])
    compute_s = macs / peak
    memory_s = moved / bandwidth
    layer_s = np.maximum(compute_s, memory_s) * slowdown + profile.dispatch_s
    fixed_s = profile.overhead_s
    return Estimate(
        device=profile.id,
        source=profile.source,
        total_s=float(layer_s.sum()) + fixed_s,
        layer_s=tuple(float(t) for t in layer_s),
        compute_bound=tuple(bool(b) for b in compute_s >= memory_s),
        names=tuple(str(getattr(r, "name", i)) for i, r in enumerate(rows)),
        overhead_s=fixed_s,
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
    """A cost model's terms beyond the paper's roofline; each is kept for a device only where it
    lowers the error on models held out of the fit (``plugins/devices.py`` chooses)."""

    overhead: bool = False  # fixed seconds per inference: dispatch, synchronisation, I/O
    dispatch: bool = False  # seconds per layer: an accelerator's per-op launch cost
    classes: tuple[str, ...] = ()  # op classes (OP_CLASSES, not "pointwise") with their own effective peak

    def __str__(self) -> str:
        parts = (["overhead"] if self.overhead else []) + (["per-layer dispatch"] if self.dispatch else [])
        parts += [f"{c} peak" for c in self.classes]
        return "roofline" + "".join(f" + {p}" for p in parts)

    def plus(self, term: str) -> "Terms":
        if term in ("overhead", "dispatch"):
            return replace(self, **{term: True})
        return replace(self, classes=tuple(c for c in OP_CLASSES if c in (*self.classes, term)))

    def candidates(self) -> tuple[str, ...]:
        """The terms not yet in the model, in a fixed order."""
        have = {"overhead"} if self.overhead else set()
        have |= {"dispatch"} if self.dispatch else set()
        return tuple(t for t in ("overhead", "dispatch", *OP_CLASSES[1:]) if t not in have | set(self.classes))


PLAIN = Terms()


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




def _features(layers: Sequence[LayerLike], terms: Terms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: MACs, bytes and column of the design matrix (0 = the shared peak, then terms.classes)."""
    rows = [r for r in layers if getattr(r, "op", "conv") in PAPER_OPS or op_class(r) in terms.classes]
    macs = np.array([float(r.macs) for r in rows])
    moved = np.array([float(r.weight_bytes) + float(r.activation_bytes) for r in rows])
    column = np.array([1 + terms.classes.index(c) if (c := op_class(r)) in terms.classes else 0 for r in rows], dtype=int)
    return macs, moved, column


def _design(features, terms: Terms, ridge: float) -> np.ndarray:
    """One row per model: [shared MAC-eq, per-class MAC-eq..., overhead 1, layer count] at ``ridge``."""
    width = 1 + len(terms.classes)
    out = []
    for macs, moved, column in features:
        eq = np.bincount(column, weights=np.maximum(macs, ridge * moved), minlength=width)
        extra = ([1.0] if terms.overhead else []) + ([float(len(macs))] if terms.dispatch else [])
        out.append(np.concatenate([eq, extra]))
    return np.array(out)


def _solve(a: np.ndarray, measured_s: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative least squares on relative error (a x / measured = 1); (x, rms ln error).

    A class no model has keeps the shared peak's weight, so a model that has it is not costed at zero."""
    from scipy.optimize import nnls

    x, _ = nnls(a / measured_s[:, None], np.ones_like(measured_s))
    absent = ~a.any(axis=0)
    x[absent] = x[0]
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


#: Ridge points tried when a cost model's ridge is fitted: 0.5 to 5000 MACs/byte, 4% apart.
TERMS_RIDGE_GRID = np.geomspace(0.5, 5000.0, 236)


def fit_terms(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float], terms: Terms,
              ridge_point: float | None = None) -> Fit:
    """The roofline with ``terms``, its weights non-negative least squares in relative error, at a given
    ridge point or the ridge searched on TERMS_RIDGE_GRID (smallest of equals) when it is None."""
    measured = _check(models, measured_s)
    grid = [ridge_point] if ridge_point is not None else TERMS_RIDGE_GRID
    features = [_features(layers, terms) for layers in models]
    best = None
    for ridge in grid:
        x, rms = _solve(_design(features, terms, float(ridge)), measured)
        if best is None or rms < best[2] * (1 - _TIE) - _TIE:
            best = (float(ridge), x, rms)
    ridge, x, rms = best
    n_classes = 1 + len(terms.classes)
    inverse_peaks = np.maximum(x[:n_classes], 1 / FREE_PEAK)
    extra = list(x[n_classes:])
    overhead = extra.pop(0) if terms.overhead else 0.0
    dispatch = extra.pop(0) if terms.dispatch else 0.0
    return Fit(
        ridge, 1.0 / float(inverse_peaks[0]), rms, len(measured), overhead_s=float(overhead),
        dispatch_s=float(dispatch), terms=terms,
        class_peaks=tuple((c, 1.0 / float(w)) for c, w in zip(terms.classes, inverse_peaks[1:])),
    )


def fit_with_overhead(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float],
                      ridge_point: float | None = None) -> Fit:
    """Roofline plus a fixed per-inference overhead (on an accelerator the small models' latency is mostly this)."""
    return fit_terms(models, measured_s, Terms(overhead=True), ridge_point)


def predict(layers: Sequence[LayerLike], fit: Fit) -> float:
    """Seconds ``fit`` gives one model (what ``estimate`` gives with a profile made from it)."""
    macs, moved, column = _features(layers, fit.terms)
    peaks = np.array([fit.peak_macs_per_s, *(p for _, p in fit.class_peaks)])
    layer_s = np.maximum(macs, fit.ridge_point * moved) / peaks[column] + fit.dispatch_s
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

    @property
    def mean_abs_log_error(self) -> float:
        """Mean |ln(predicted / measured)|: symmetric in over- and under-estimates, every model counted."""
        return float(np.mean(np.abs(np.log(np.asarray(self.predicted_s) / np.asarray(self.measured_s)))))


def cross_validate(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float], folds: Sequence[Sequence[int]],
                   ridge_point: float | None = None, terms: Terms | None = None) -> HeldOut:
    """Predict the models of each fold from a fit to all the others (every model in exactly one fold).

    The paper's roofline (``terms`` None): the peak at ``ridge_point``, or ridge and peak refitted per
    fold when it is None; a cost model with ``terms``: all its weights (and the ridge, when None) refitted."""
    measured = _check(models, measured_s)
    flat = sorted(i for fold in folds for i in fold)
    if flat != list(range(len(measured))):
        raise ValueError(f"folds must hold every model index exactly once (got {flat})")
    predicted = np.zeros(len(measured))
    for fold in folds:
        rest = [j for j in range(len(measured)) if j not in set(fold)]
        if len(rest) < 2:
            raise ValueError(f"a fold of {len(fold)} leaves fewer than two models to fit on")
        train, train_s = [models[j] for j in rest], [measured[j] for j in rest]
        if terms is not None:
            fit = fit_terms(train, train_s, terms, ridge_point)
        elif ridge_point is not None:
            fit = fit_peak(train, train_s, ridge_point)
        else:
            fit = fit_ridge_and_peak(train, train_s)
        for i in fold:
            predicted[i] = predict(models[i], fit)
    return HeldOut(tuple(float(p) for p in predicted), tuple(float(t) for t in measured))


def leave_one_out(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float],
                  ridge_point: float | None = None, overhead: bool = False, terms: Terms | None = None) -> HeldOut:
    """Each model predicted by a fit to all the others: the honest error of an estimate for a model
    the fit never saw (in-sample error flatters: the fit has seen the answer). See ``cross_validate``."""
    if len(models) < 3:
        raise ValueError(f"leave-one-out needs at least three models (got {len(models)})")
    terms = Terms(overhead=True) if overhead and terms is None else terms
    return cross_validate(models, measured_s, [[i] for i in range(len(models))], ridge_point, terms)


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
