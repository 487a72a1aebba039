"""The roofline engine on hand-made layers: arithmetic, sweep, fits and rank correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnv4suite import hostprobe, roofline
from mnv4suite.api import DeviceProfile, Runtime
from mnv4suite.roofline import Layer

GIGA = 1e9
#: 1 GMAC/s and 1 GB/s: ridge point 1 MAC/byte, so a layer's time in ns is its larger column.
UNIT = DeviceProfile("unit", "unit", "cpu", peak_macs_per_s=GIGA, bandwidth_bytes_per_s=GIGA)

COMPUTE = Layer("compute", macs=1_000_000, weight_bytes=600, activation_bytes=400)  # 1 ms vs 1 us
MEMORY = Layer("memory", macs=1_000, weight_bytes=800_000, activation_bytes=200_000)  # 1 us vs 1 ms


def test_each_layer_takes_the_slower_of_compute_and_memory():
    est = roofline.estimate([COMPUTE, MEMORY], UNIT)
    assert est.layer_s == pytest.approx((1e-3, 1e-3))
    assert est.total_s == pytest.approx(2e-3) and est.total_ms == pytest.approx(2.0)
    assert est.compute_bound == (True, False)
    assert est.memory_bound_layers == ("memory",)
    assert est.compute_bound_time_share == pytest.approx(0.5)
    assert est.device == "unit"


def test_a_layer_at_the_ridge_point_is_balanced():
    profile = DeviceProfile("r", "r", "cpu", peak_macs_per_s=40 * GIGA, bandwidth_bytes_per_s=GIGA)  # ridge 40
    at_ridge = Layer("x", macs=40_000, weight_bytes=500, activation_bytes=500)
    est = roofline.estimate([at_ridge], profile)
    assert est.total_s == pytest.approx(1e-6) and est.compute_bound == (True,)
    below = Layer("y", macs=39_000, weight_bytes=500, activation_bytes=500)
    assert roofline.estimate([below], profile).compute_bound == (False,)


def test_bandwidth_follows_from_the_ridge_point():
    by_ridge = DeviceProfile("p", "p", "cpu", ridge_point=50.0, peak_macs_per_s=100 * GIGA)
    assert roofline.rates(by_ridge) == (100 * GIGA, 2 * GIGA)
    layers = [COMPUTE, MEMORY]
    assert roofline.estimate(layers, by_ridge).total_s == pytest.approx(roofline.mac_equivalents(layers, 50) / (100 * GIGA))


def test_a_profile_without_rates_is_refused():
    with pytest.raises(ValueError, match="no peak"):
        roofline.estimate([COMPUTE], DeviceProfile("x", "x", "cpu", ridge_point=30.0))


def test_sweep_starts_at_the_mac_count_and_never_falls():
    layers = [COMPUTE, MEMORY, Layer("mid", 50_000, 1_000, 1_000)]
    costs = roofline.sweep(layers)
    assert costs.shape == (501,)
    assert costs[0] == sum(layer.macs for layer in layers)
    assert np.all(np.diff(costs) >= 0)
    assert costs[-1] == roofline.mac_equivalents(layers, 500.0)
    assert roofline.sweep(layers, [1e9])[0] == pytest.approx(1e9 * sum(layer.bytes for layer in layers))


def _synthetic_models(seed: int = 0, count: int = 8) -> list[list[Layer]]:
    """Models whose layers span compute- and memory-bound intensities (1 to 1000 MACs/byte)."""
    rng = np.random.default_rng(seed)
    models = []
    for m in range(count):
        n = int(rng.integers(5, 30))
        bytes_ = rng.uniform(1e4, 1e6, n) * (m + 1)
        intensity = np.exp(rng.uniform(0, math.log(1000), n))
        models.append([Layer(f"l{i}", bytes_[i] * intensity[i], bytes_[i] / 2, bytes_[i] / 2) for i in range(n)])
    return models


def test_fit_peak_recovers_a_known_peak():
    models = _synthetic_models()
    truth = DeviceProfile("t", "t", "cpu", ridge_point=40.0, peak_macs_per_s=250 * GIGA)
    measured = [roofline.estimate(m, truth).total_s for m in models]
    fit = roofline.fit_peak(models, measured, ridge_point=40.0)
    assert fit.peak_macs_per_s == pytest.approx(250 * GIGA, rel=1e-9)
    assert fit.bandwidth_bytes_per_s == pytest.approx(250 * GIGA / 40)
    assert fit.rms_log_error < 1e-9 and fit.n == len(models)


def test_fit_peak_is_least_squares_in_log_space():
    models = _synthetic_models(seed=1)
    truth = DeviceProfile("t", "t", "cpu", ridge_point=40.0, peak_macs_per_s=GIGA)
    noise = [1.1, 1 / 1.1, 1.2, 1 / 1.2, 1.0, 1.05, 1 / 1.05, 1.0]  # geometric mean 1
    measured = [roofline.estimate(m, truth).total_s * k for m, k in zip(models, noise)]
    fit = roofline.fit_peak(models, measured, ridge_point=40.0)
    assert fit.peak_macs_per_s == pytest.approx(GIGA, rel=1e-9)
    assert fit.rms_log_error == pytest.approx(np.sqrt(np.mean(np.log(noise) ** 2)))


def test_fit_ridge_and_peak_recovers_both():
    models = _synthetic_models(seed=2)
    truth = DeviceProfile("t", "t", "gpu", ridge_point=120.0, peak_macs_per_s=800 * GIGA)
    measured = [roofline.estimate(m, truth).total_s for m in models]
    fit = roofline.fit_ridge_and_peak(models, measured)
    assert fit.ridge_point == pytest.approx(120.0, rel=2e-3) and not fit.ridge_is_lower_bound
    assert fit.peak_macs_per_s == pytest.approx(800 * GIGA, rel=2e-3)


def test_a_ridge_beyond_every_layer_is_reported_as_a_lower_bound():
    """When every layer is memory-bound, all larger ridges fit equally: the fit gives the plateau's edge."""
    models = [[Layer("a", 10_000 * k, 1_000 * k, 1_000 * k), Layer("b", 2_000 * k, 2_000, 2_000)] for k in (1, 2, 5, 9)]
    measured = [sum(layer.bytes for layer in m) / 3e9 for m in models]  # pure bandwidth: 3 GB/s
    fit = roofline.fit_ridge_and_peak(models, measured)
    assert fit.ridge_is_lower_bound
    assert fit.ridge_point == pytest.approx(5.0, rel=2e-3)  # the most intense layer: 10k MACs / 2k bytes
    assert fit.bandwidth_bytes_per_s == pytest.approx(3e9, rel=1e-6)


def test_fits_reject_mismatched_input():
    with pytest.raises(ValueError):
        roofline.fit_peak(_synthetic_models(count=3), [1.0, 2.0], 10.0)
    with pytest.raises(ValueError):
        roofline.fit_peak(_synthetic_models(count=2), [1.0, 0.0], 10.0)


def test_spearman_known_values():
    assert roofline.spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # 1 - 6 * 2 / (3 * 8)
    assert roofline.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert roofline.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(roofline.spearman([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError):
        roofline.spearman([1], [1])


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.integers(0, 6, 12).astype(float)  # plenty of ties
        y = x + rng.normal(0, 2, 12).round()
        assert roofline.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_host_probe_measures_positive_figures_fast():
    figures = hostprobe.measure(gemm_size=256, copy_bytes=8 * 2**20)
    assert figures.peak_macs_per_s > 1e8 and figures.bandwidth_bytes_per_s >= figures.dram_bandwidth_bytes_per_s > 1e8
    assert figures.threads >= 1 and figures.peak("fp32")[1] in hostprobe.LIBRARIES
    # every installed library was tried per precision, and the peak is the fastest of them
    for precision, macs, library in figures.peaks:
        assert macs == max(m for p, _, m in figures.tried if p == precision)
    assert {lib for p, lib, _ in figures.tried if p == "fp32"} >= {"numpy BLAS"}
    assert hostprobe.measure(gemm_size=256, copy_bytes=8 * 2**20) is figures  # cached per process
    profile = hostprobe.measure_profile(gemm_size=256, copy_bytes=8 * 2**20)
    assert profile.id == "host-cpu" and profile.source.startswith("measured")
    assert profile.ridge_point == pytest.approx(profile.peak_macs_per_s / profile.bandwidth_bytes_per_s)
    assert roofline.estimate([COMPUTE, MEMORY], profile).total_s > 0


def test_a_latency_below_the_host_floor_says_the_profile_is_wrong():
    profile = DeviceProfile("host-cpu", "host", "cpu", ridge_point=10.0, peak_macs_per_s=1e11, bandwidth_bytes_per_s=1e10)
    layers = [Layer("a", macs=1e9, weight_bytes=1e6, activation_bytes=1e6)]  # 10 ms of arithmetic at the peak
    fine = hostprobe.floor_check(layers, 20.0, profile)
    assert fine.floor_ms == pytest.approx(10.0) and fine.fraction == pytest.approx(0.5) and not fine.below_floor
    assert "50% of the roofline ceiling" in fine.text()
    wrong = hostprobe.floor_check(layers, 5.0, profile)
    assert wrong.below_floor and "the host profile is wrong" in wrong.text()


def synthetic_models(n: int = 8, seed: int = 0) -> list[list[Layer]]:
    rng = np.random.default_rng(seed)
    return [[Layer(f"m{i}l{j}", macs=float(rng.uniform(1e6, 1e8)), weight_bytes=float(rng.uniform(1e4, 1e6)),
                   activation_bytes=float(rng.uniform(1e4, 1e6))) for j in range(12)] for i in range(n)]


def test_which_depthwise_convs_run_the_general_kernel_is_the_runtimes_to_say():
    """The TFLite GPU delegate on Adreno has a kernel of its own for 3x3 stride-1 depthwise convs only;
    a strided 3x3 or a 5x5 runs the general one, as everything does on the Pixel 7's Mali. Stride comes
    from the row's shapes; without its own list a device gets the CPU runtimes' rule (LARGE_KERNEL)."""
    from mnv4suite.reference_models.counting import LayerCost

    def dw(kernel, stride):
        return LayerCost(f"dw{kernel}s{stride}", "dwconv", macs=10**6, weight_bytes=100, activation_bytes=10**4,
                         input_shapes=((1, 32, 16, 16),), output_shape=(1, 32, 16 // stride, 16 // stride),
                         kernel=kernel)

    rows = [dw(3, 1), dw(3, 2), dw(5, 1)]
    assert [roofline.stride(r) for r in rows] == [1, 2, 1]
    assert [roofline.op_class(r) for r in rows] == ["depthwise"] * 3
    adreno, mali = Runtime(dedicated_depthwise=[(3, 1)]), Runtime(dedicated_depthwise=())
    assert [roofline.op_class(r, adreno) for r in rows] == ["depthwise", "general_depthwise", "general_depthwise"]
    assert [roofline.op_class(r, mali) for r in rows] == ["general_depthwise"] * 3
    gpu = DeviceProfile("g", "g", "gpu", peak_macs_per_s=GIGA, bandwidth_bytes_per_s=GIGA,
                        class_peaks=(("general_depthwise", GIGA / 10),), runtime=adreno)
    assert roofline.estimate(rows, gpu).total_s == pytest.approx(1e-3 + 2 * 10e-3)
    assert roofline.cost_model_terms([rows, rows], adreno).runtime.dedicated_depthwise == ((3, 1),)


def test_a_held_out_spearman_band_spans_the_rankings_a_tables_rounding_allows():
    """Latencies printed to 0.1 ms: the two printed 0.5 and the two printed 0.7 could be either way round.
    A model that ranks the true latencies exactly gets 1.0 in a quarter of the draws, less in the rest."""
    true = [0.46, 0.54, 0.62, 0.71, 0.74]
    held = roofline.HeldOut(tuple(true), (0.5, 0.5, 0.6, 0.7, 0.7))
    low, high = held.spearman_within([0.05] * 5)
    assert low < held.spearman < high == pytest.approx(1.0)
    assert held.spearman_within([0.0] * 5) == pytest.approx((held.spearman, held.spearman))  # exact figures
    with pytest.raises(ValueError, match="one non-negative half width per model"):
        held.spearman_within([0.05] * 4)


def test_held_out_predictions_are_exact_when_the_device_is_a_roofline():
    models = synthetic_models()
    ridge, peak = 40.0, 2e11
    measured = [roofline.mac_equivalents(m, ridge) / peak for m in models]
    held = roofline.leave_one_out(models, measured, ridge_point=ridge)
    np.testing.assert_allclose(held.predicted_s, measured, rtol=1e-9)
    assert held.median_abs_pct_error < 1e-6 and held.spearman == pytest.approx(1.0)
    free = roofline.leave_one_out(models, measured)  # ridge refitted per fold too: still exact to its grid
    assert free.max_abs_pct_error < 1.0


def test_held_out_error_is_not_smaller_than_the_in_sample_one():
    """A prediction for a model the fit never saw cannot be better on average than the fit's own residual."""
    models = synthetic_models(10, seed=3)
    rng = np.random.default_rng(4)
    measured = [roofline.mac_equivalents(m, 40.0) / 2e11 * float(np.exp(rng.normal(0, 0.2))) for m in models]
    fit = roofline.fit_peak(models, measured, 40.0)
    in_sample = [abs(roofline.mac_equivalents(m, 40.0) / fit.peak_macs_per_s / t - 1) for m, t in zip(models, measured)]
    held = roofline.leave_one_out(models, measured, ridge_point=40.0)
    assert held.abs_pct_errors.mean() > 100 * np.mean(in_sample)
    with pytest.raises(ValueError, match="at least three models"):
        roofline.leave_one_out(models[:2], measured[:2], 40.0)


def test_an_estimate_is_never_shown_without_its_band():
    assert roofline.estimate_text({"ms": 3.956, "typical_error_pct": 12.4}) == "~3.96 ms, typically within ±12%"
    assert roofline.estimate_text({"ms": 3.956, "typical_error_pct": None}) == "~3.96 ms, error unknown"


def test_a_fixed_per_inference_overhead_is_recovered_and_validated():
    models = synthetic_models(9, seed=5)
    ridge, peak, overhead = 40.0, 2e11, 3e-3  # as large as the layers' time, as on an accelerator
    measured = [overhead + roofline.mac_equivalents(m, ridge) / peak for m in models]
    fit = roofline.fit_with_overhead(models, measured, ridge)
    assert fit.overhead_s == pytest.approx(overhead, rel=1e-6) and fit.peak_macs_per_s == pytest.approx(peak, rel=1e-6)
    held = roofline.leave_one_out(models, measured, ridge, overhead=True)
    assert held.max_abs_pct_error < 1e-4
    plain = roofline.leave_one_out(models, measured, ridge)  # the paper's roofline cannot express it
    assert plain.median_abs_pct_error > 1.0
    profile = DeviceProfile("d", "d", "npu", ridge_point=ridge, peak_macs_per_s=peak, overhead_s=overhead)
    assert roofline.estimate(models[0], profile).total_s == pytest.approx(measured[0])
    # no overhead in the data: the fit finds none (a negative one is clipped to zero)
    exact = [roofline.mac_equivalents(m, ridge) / peak for m in models]
    assert roofline.fit_with_overhead(models, exact, ridge).overhead_s == pytest.approx(0.0, abs=1e-12)


def test_a_padded_last_axis_moves_whole_aligned_lines():
    """The ANE pads each tensor's last axis to 64 bytes: an fp16 8x8 map moves 64 bytes per row, not
    16 (4x); a 32-wide one is already aligned. Weights, MACs and shapeless rows stay as they are."""
    from mnv4suite.reference_models.counting import LayerCost

    small = LayerCost("late", "conv", macs=10, weight_bytes=7, activation_bytes=2 * 2 * 384 * 64,
                      input_shapes=((1, 384, 8, 8),), output_shape=(1, 384, 8, 8))
    wide = LayerCost("early", "conv", macs=10, weight_bytes=7, activation_bytes=2 * 2 * 16 * 32 * 32,
                     input_shapes=((1, 16, 32, 32),), output_shape=(1, 16, 32, 32))
    hand_made = Layer("h", macs=1, weight_bytes=1, activation_bytes=1)
    ane = Runtime(last_axis_alignment_bytes=64)
    out = roofline.laid_out([small, wide, hand_made], 2, ane)
    assert out[0].activation_bytes == 4 * small.activation_bytes and out[1] == wide and out[2] == hand_made
    assert (out[0].macs, out[0].weight_bytes) == (10, 7)
    assert roofline.laid_out(out, 2, ane) == out  # counted from shapes: laying out twice changes nothing
    assert roofline.laid_out([small], 2, Runtime()) == [small]  # packed
    assert roofline.laid_out([small], 1, ane)[0].activation_bytes == 2 * 384 * 8 * 64  # int8: 8 bytes -> 64


def test_a_wide_depthwise_window_runs_the_general_kernel_timed_as_depthwise_unless_it_has_a_peak():
    small = Layer("dw3", macs=1e6, weight_bytes=1e3, activation_bytes=1e3, op="dwconv", kernel=3)
    large = Layer("dw7", macs=1e6, weight_bytes=1e3, activation_bytes=1e3, op="dwconv", kernel=roofline.LARGE_KERNEL)
    assert (roofline.op_class(small), roofline.op_class(large)) == ("depthwise", "general_depthwise")
    assert roofline.timed_class(large, ("depthwise",)) == "depthwise" and roofline.timed_class(large, ()) is None
    depthwise_slow = DeviceProfile("d", "d", "cpu", peak_macs_per_s=GIGA, bandwidth_bytes_per_s=GIGA,
                                   class_peaks=(("depthwise", GIGA / 4),))
    assert roofline.estimate([large], depthwise_slow).total_s == pytest.approx(4e-3)  # its parent's peak
    both = DeviceProfile("d", "d", "cpu", peak_macs_per_s=GIGA, bandwidth_bytes_per_s=GIGA,
                         class_peaks=(("depthwise", GIGA / 4), ("general_depthwise", GIGA / 20)))
    assert roofline.estimate([small, large], both).total_s == pytest.approx(4e-3 + 20e-3)


def _with_slow_class(n: int, seed: int, slowdown: float, ridge: float = 40.0, peak: float = 2e11):
    """Models whose every third one has a 'grouped' layer the device runs ``slowdown`` times slower."""
    models = synthetic_models(n, seed=seed)
    for i, layers in enumerate(models):
        if i % 3 == 0:
            layers.append(Layer(f"g{i}", macs=2e7 * (1 + i), weight_bytes=1e4, activation_bytes=1e4, op="gconv", kernel=3))
    measured = [sum(max(r.macs, ridge * r.bytes) / peak * (slowdown if r.op == "gconv" else 1) for r in layers)
                for layers in models]
    return models, measured


def test_a_slow_op_class_is_recovered_and_shrinkage_ties_it_to_the_shared_peak():
    models, measured = _with_slow_class(12, seed=7, slowdown=10.0)
    terms = roofline.cost_model_terms(models)
    assert "grouped" in terms.classes and terms.overhead and terms.dispatch
    free = roofline.fit_terms(models, measured, terms, 40.0, shrinkage=0.0)
    assert free.peak_macs_per_s == pytest.approx(2e11, rel=1e-4)
    assert dict(free.class_peaks)["grouped"] == pytest.approx(2e10, rel=1e-3)
    tied = roofline.fit_terms(models, measured, terms, 40.0, shrinkage=1e6)
    assert dict(tied.class_peaks)["grouped"] == pytest.approx(tied.peak_macs_per_s, rel=1e-2)
    chosen = roofline.choose_cost_model(models, measured, 40.0)  # the data say the class is slow: no pull
    assert chosen.shrinkage == 0.0 and chosen.held_out.max_abs_pct_error < 1e-3
    plain = roofline.leave_one_out(models, measured, 40.0)  # the paper's roofline, held out the same way
    assert plain.median_abs_pct_error > 10 * chosen.held_out.median_abs_pct_error


def test_a_class_only_one_fitted_model_has_is_timed_at_its_parent_or_the_shared_peak():
    models = synthetic_models(6, seed=8)
    models[0].append(Layer("g", macs=5e7, weight_bytes=1e4, activation_bytes=1e4, op="gconv", kernel=3))
    models[1].append(Layer("g", macs=5e7, weight_bytes=1e4, activation_bytes=1e4, op="gconv", kernel=3))
    measured = [roofline.mac_equivalents(m, 40.0) / 2e11 * (3.0 if i == 0 else 1.0) for i, m in enumerate(models)]
    assert "grouped" in roofline.cost_model_terms(models).classes  # two models have it
    design = roofline.Design(models, roofline.cost_model_terms(models), [40.0])
    g, x, _ = design.fit([0, 2, 3, 4, 5], np.asarray(measured))  # without model 1 only model 0 has it
    assert x[1 + design.terms.classes.index("grouped")] == pytest.approx(x[0])


def test_a_class_in_exactly_the_models_an_earlier_class_is_in_is_not_fitted_apart_from_it():
    """GELU beside 7x7 depthwise convs in the same models only: the rows cannot tell which is slow, so the
    conv class (first in OP_CLASSES) keeps a peak and GELU is timed at the shared one; a third model with
    GELU alone makes the two separable again."""
    models = synthetic_models(7, seed=10)
    for i in (0, 1, 2):
        models[i] += [Layer(f"dw{i}", macs=4e7, weight_bytes=1e4, activation_bytes=4e5, op="dwconv", kernel=7),
                      Layer(f"gelu{i}", macs=0, weight_bytes=0, activation_bytes=4e5, op="gelu")]
    models[3].append(Layer("gelu3", macs=0, weight_bytes=0, activation_bytes=4e5, op="gelu"))
    measured = np.array([roofline.mac_equivalents(m, 40.0) / 2e11 * (2.0 if i < 3 else 1.0) for i, m in enumerate(models)])
    design = roofline.Design(models, roofline.cost_model_terms(models), [40.0])
    column = {c: 1 + design.terms.classes.index(c) for c in ("general_depthwise", "gelu")}
    _, x, _ = design.fit([0, 1, 2, 4, 5, 6], measured)  # GELU only where the 7x7 convs are
    assert x[column["gelu"]] == pytest.approx(x[0]) and x[column["general_depthwise"]] > 2 * x[0]
    _, kept = design._merge([0, 1, 2, 3, 4, 5, 6])  # with model 3 they are told apart
    assert column["gelu"] in kept and column["general_depthwise"] in kept


def test_nested_leave_one_out_validates_the_choice_too():
    models, measured = _with_slow_class(12, seed=9, slowdown=6.0)
    nested = roofline.nested_leave_one_out(models, measured, 40.0)
    assert len(nested.fold_shrinkage) == 12 and set(nested.fold_shrinkage) <= set(roofline.SHRINKAGE_GRID)
    # every fold still has three or more grouped models: the slow class is learned without the held-out one
    assert nested.held_out.max_abs_pct_error < 1e-2 and nested.held_out.spearman == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least four"):
        roofline.nested_leave_one_out(models[:3], measured[:3], 40.0)


def _row(name: str, op: str = "conv", macs: float = 1e6) -> Layer:
    return Layer(name, macs=macs, weight_bytes=1e3, activation_bytes=1e3, op=op, kernel=3)


#: a delegate that hands channel-multiplier convs back to the CPU, as TFLite's GPU delegate does
GPU_DELEGATE = Runtime(delegate_rejects=("multiplier",))


def test_a_rejected_op_splits_the_graph_and_only_the_largest_piece_stays_on_the_accelerator():
    layers = [_row("a"), _row("m1", "mdwconv"), _row("b1"), _row("b2"), _row("b3"), _row("m2", "mdwconv"), _row("c")]
    on_cpu = roofline.left_to_cpu(layers, GPU_DELEGATE)
    assert [r.name for r, cpu in zip(layers, on_cpu) if not cpu] == ["b1", "b2", "b3"]
    assert roofline.left_to_cpu(layers, Runtime()) == [False] * 7 == \
        roofline.left_to_cpu(layers, Runtime(delegate_rejects=("attention",)))
    assert roofline.left_to_cpu([_row("m", "mdwconv")], GPU_DELEGATE) == [True]  # nothing is delegated
    assert roofline.row_classes(layers, ("cpu_fallback",), on_cpu) == \
        ["cpu_fallback"] * 2 + [None] * 3 + ["cpu_fallback"] * 2
    # without a peak of its own a fallback row is timed as its op's class: one split model fits no CPU speed
    assert roofline.row_classes(layers, ("multiplier",), on_cpu)[1] == "multiplier"


def test_an_estimate_times_what_the_delegate_leaves_to_the_cpu_at_the_cpu_peak_and_names_it():
    layers = [_row("a"), _row("m", "mdwconv"), _row("b1"), _row("b2")]
    gpu = DeviceProfile("g", "g", "gpu", peak_macs_per_s=GIGA, bandwidth_bytes_per_s=GIGA,
                        class_peaks=(("cpu_fallback", GIGA / 10),), runtime=GPU_DELEGATE)
    est = roofline.estimate(layers, gpu)
    assert est.cpu_layers == ("a", "m") and est.total_s == pytest.approx(2 * 10e-3 + 2 * 1e-3)
    everything_delegated = DeviceProfile("g", "g", "gpu", peak_macs_per_s=GIGA, bandwidth_bytes_per_s=GIGA,
                                         class_peaks=(("cpu_fallback", GIGA / 10),))
    assert roofline.estimate(layers, everything_delegated).cpu_layers == ()


def _split_by_a_rejected_op(n: int, seed: int, cpu_slowdown: float = 8.0, ridge: float = 40.0, peak: float = 2e11):
    """Synthetic models, every third with a channel-multiplier conv after its first four layers: the
    device runs what its delegate leaves to the CPU ``cpu_slowdown`` times slower."""
    models = synthetic_models(n, seed=seed)
    for i, layers in enumerate(models):
        if i % 3 == 0:
            layers.insert(4, Layer(f"m{i}", macs=1e6, weight_bytes=1e3, activation_bytes=1e3, op="mdwconv", kernel=7))
    measured = []
    for layers in models:
        on_cpu = roofline.left_to_cpu(layers, GPU_DELEGATE)
        measured.append(sum(max(r.macs, ridge * r.bytes) / peak * (cpu_slowdown if cpu else 1)
                            for r, cpu in zip(layers, on_cpu)))
    return models, measured


def test_the_cpu_fallback_speed_is_fitted_apart_and_never_pulled_toward_the_accelerators():
    models, measured = _split_by_a_rejected_op(12, seed=10)
    terms = roofline.cost_model_terms(models, GPU_DELEGATE)
    assert "cpu_fallback" in terms.classes and "multiplier" not in terms.classes  # it never runs on the accelerator
    for shrinkage in (0.0, 1e6):  # the pull ties op classes together, not the CPU to the accelerator
        fit = roofline.fit_terms(models, measured, terms, 40.0, shrinkage=shrinkage)
        assert dict(fit.class_peaks)["cpu_fallback"] == pytest.approx(2e11 / 8, rel=1e-3)
    nested = roofline.nested_leave_one_out(models, measured, 40.0, GPU_DELEGATE)
    assert nested.held_out.max_abs_pct_error < 1e-2
    # a cost model that knows no delegate can only make the multiplier conv a label for the slow models
    blind = roofline.nested_leave_one_out(models, measured, 40.0)
    assert blind.held_out.max_abs_pct_error > 5


def test_an_op_class_only_split_models_have_is_not_fitted_apart_from_their_cpu_time():
    """FastViT's 7x7 depthwise convs on a phone GPU: every model that has them is also split by the
    delegate, so a slow 7x7 class and a slow CPU would fit them equally; the class gets no peak of its own."""
    models, measured = _split_by_a_rejected_op(12, seed=11)
    for i in range(0, 12, 3):
        models[i].append(Layer(f"dw7_{i}", macs=5e6, weight_bytes=1e3, activation_bytes=1e3, op="dwconv", kernel=7))
    terms = roofline.cost_model_terms(models, GPU_DELEGATE)
    assert "general_depthwise" in terms.classes
    merge, kept = roofline.Design(models, terms, [40.0])._merge(list(range(12)))
    assert 1 + terms.classes.index("general_depthwise") not in kept and 1 + terms.classes.index("cpu_fallback") in kept


def test_classes_every_unsplit_model_has_are_fitted_apart_though_split_models_do_not_count_them():
    """Dense and depthwise convs in every model, a third of them split by the delegate: their classes
    count toward CPU_FALLBACK alone, yet the other models' differing shares of the two still tell the
    classes apart, as they would if no model were split."""
    models, measured = _split_by_a_rejected_op(12, seed=12)
    rng = np.random.default_rng(13)
    for i, layers in enumerate(models):
        layers += [Layer(f"d{i}", macs=float(rng.uniform(1e6, 5e7)), weight_bytes=1e4, activation_bytes=1e5, kernel=3),
                   Layer(f"dw{i}", macs=float(rng.uniform(1e5, 5e6)), weight_bytes=1e3, activation_bytes=1e5,
                         op="dwconv", kernel=3)]
    terms = roofline.cost_model_terms(models, GPU_DELEGATE)
    _, kept = roofline.Design(models, terms, [40.0])._merge(list(range(12)))
    assert {1 + terms.classes.index(c) for c in ("dense", "depthwise", "cpu_fallback")} <= set(kept)


def test_the_per_layer_dispatch_time_is_paid_by_launched_layers_not_by_fused_element_wise_ops():
    conv, gelu = _row("conv"), Layer("act", macs=0, weight_bytes=0, activation_bytes=1e5, op="gelu")
    assert roofline.launched(conv) and not roofline.launched(gelu)
    profile = DeviceProfile("d", "d", "gpu", peak_macs_per_s=GIGA, bandwidth_bytes_per_s=GIGA, dispatch_s=1e-3,
                            class_peaks=(("gelu", GIGA),))
    est = roofline.estimate([conv, gelu], profile)
    assert est.total_s == pytest.approx(1e-3 + 1e-3 + 1e-4)  # conv's compute, one dispatch, GELU's bytes
    models = [[_row(f"c{i}{j}", macs=1e6 * (1 + i)) for j in range(2 + i)] + [gelu] * i for i in range(6)]
    measured = [sum(r.macs for r in m) / GIGA + 1e-3 * sum(roofline.launched(r) for r in m) for m in models]
    fit = roofline.fit_terms(models, measured, roofline.Terms(dispatch=True, classes=("gelu",)), ridge_point=1.0)
    assert fit.dispatch_s == pytest.approx(1e-3, rel=1e-6)
    assert roofline.predict(models[5], fit) == pytest.approx(measured[5])
    assert dict(fit.class_peaks)["gelu"] == pytest.approx(roofline.FREE_PEAK)  # fused: its bytes cost nothing here
