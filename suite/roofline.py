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
from dataclasses import dataclass
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

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.activation_bytes


def _arrays(layers: Iterable[LayerLike]) -> tuple[np.ndarray, np.ndarray]:
    rows = list(layers)
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


def estimate(layers: Sequence[LayerLike], profile: DeviceProfile) -> Estimate:
    """Per-layer and total roofline time of one forward pass on ``profile``."""
    peak, bandwidth = rates(profile)
    macs, moved = _arrays(layers)
    compute_s = macs / peak
    memory_s = moved / bandwidth
    layer_s = np.maximum(compute_s, memory_s)
    return Estimate(
        device=profile.id,
        source=profile.source,
        total_s=float(layer_s.sum()) + profile.overhead_s,
        layer_s=tuple(float(t) for t in layer_s),
        compute_bound=tuple(bool(b) for b in compute_s >= memory_s),
        names=tuple(str(getattr(r, "name", i)) for i, r in enumerate(layers)),
        overhead_s=profile.overhead_s,
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
class Fit:
    """An effective peak (and ridge point) fitted to measured latencies, with its log-space error."""

    ridge_point: float
    peak_macs_per_s: float
    rms_log_error: float  # root mean square of ln(estimate / measured)
    n: int
    #: True when every larger ridge point fits as well: above the most intense layer everything is
    #: memory-bound, estimates scale with bytes alone, and the data cannot bound the ridge from above.
    ridge_is_lower_bound: bool = False
    #: fixed seconds per inference (fit_with_overhead); 0 for the plain roofline
    overhead_s: float = 0.0

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


def _overhead_at(equivalents: np.ndarray, measured_s: np.ndarray) -> tuple[float, float, float]:
    """(overhead s, peak MACs/s, rms ln error) minimising the relative error of overhead + equivalents / peak,
    a linear least-squares problem in (overhead, 1 / peak); overhead 0 where the best one would be negative."""
    a = np.stack([1.0 / measured_s, equivalents / measured_s], axis=1)
    (overhead, inverse_peak), *_ = np.linalg.lstsq(a, np.ones_like(measured_s), rcond=None)
    if overhead < 0 or inverse_peak <= 0:
        overhead, inverse_peak = 0.0, float(np.sum(a[:, 1]) / np.sum(a[:, 1] ** 2))
    predicted = overhead + equivalents * inverse_peak
    return float(overhead), 1.0 / float(inverse_peak), float(np.sqrt(np.mean(np.log(predicted / measured_s) ** 2)))


def fit_with_overhead(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float],
                      ridge_point: float | None = None) -> Fit:
    """Roofline plus a fixed per-inference overhead (dispatch, synchronisation, I/O that no layer
    accounts for: on an accelerator the small models' latency is mostly this). At a given ridge
    point, or the ridge searched on FIT_RIDGE_GRID (smallest of equals) when it is None."""
    measured = _check(models, measured_s)
    grid = np.asarray([ridge_point] if ridge_point is not None else FIT_RIDGE_GRID, dtype=float)
    arrays = [_arrays(layers) for layers in models]
    best = None
    for ridge in grid:
        equivalents = np.array([np.maximum(m, ridge * b).sum() for m, b in arrays])
        overhead, peak, rms = _overhead_at(equivalents, measured)
        if best is None or rms < best[3] * (1 - _TIE) - _TIE:
            best = (float(ridge), overhead, peak, rms)
    ridge, overhead, peak, rms = best
    return Fit(ridge, peak, rms, len(measured), overhead_s=overhead)


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


def leave_one_out(models: Sequence[Sequence[LayerLike]], measured_s: Sequence[float],
                  ridge_point: float | None = None, overhead: bool = False) -> HeldOut:
    """Predict each model from a fit to all the others: the peak at `ridge_point`, or, when it is None,
    ridge and peak both refitted per fold (with `overhead`, a fixed per-inference time too). The honest
    error of an estimate for a model not in the fit (in-sample error flatters: the fit has seen the answer)."""
    measured = _check(models, measured_s)
    if len(measured) < 3:
        raise ValueError(f"leave-one-out needs at least three models (got {len(measured)})")
    predicted = []
    for i in range(len(measured)):
        rest = [m for j, m in enumerate(models) if j != i]
        rest_s = [t for j, t in enumerate(measured) if j != i]
        if overhead:
            fit = fit_with_overhead(rest, rest_s, ridge_point)
        elif ridge_point is not None:
            fit = fit_peak(rest, rest_s, ridge_point)
        else:
            fit = fit_ridge_and_peak(rest, rest_s)
        predicted.append(fit.overhead_s + mac_equivalents(models[i], fit.ridge_point) / fit.peak_macs_per_s)
    return HeldOut(tuple(predicted), tuple(float(t) for t in measured))


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
