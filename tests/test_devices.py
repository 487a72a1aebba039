"""Device profiles: registration, provenance, Table 6 matching, and the stored fits against a re-fit."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from mnv4suite import roofline
from mnv4suite.api import ModelSpec
from mnv4suite.plugin_manager import create_plugin_manager
from mnv4suite.plugins import devices
from mnv4suite.registry import build_registry

PAPER_RIDGES = {"pixel6_cpu": 31.2, "s23_cpu": 39.7, "pixel4_hexagon": 347.3, "pixel8_edgetpu": 433.8}

def test_plugin_registers_all_eight_profiles_with_sources():
    registry = build_registry(create_plugin_manager(load_entrypoints=False))
    ids = {"host-cpu", *devices.TARGETS}
    assert len(ids) == 8 and ids <= set(registry.devices.items)
    for device_id in ids:
        profile = registry.devices.get(device_id)
        assert profile.source and profile.name
        assert registry.devices.providers[device_id] == "mnv4suite.plugins.devices"


def test_host_cpu_is_registered_unmeasured():
    profile = devices.PROFILES["host-cpu"]
    assert profile.peak_macs_per_s is None and "measured on demand" in profile.source


@pytest.mark.parametrize("device", list(devices.TARGETS))
def test_paper_profiles_carry_their_provenance(device):
    profile, fitted = devices.PROFILES[device], devices.FITS[device]
    assert profile.ridge_point == fitted.ridge_point > 0
    assert profile.peak_macs_per_s == fitted.peak_macs_per_s > 0
    assert profile.bandwidth_bytes_per_s == pytest.approx(profile.peak_macs_per_s / profile.ridge_point)
    provenance = fitted.provenance()
    assert provenance["peak_macs_per_s"].startswith("fitted") and provenance["bandwidth_bytes_per_s"].startswith("derived")
    if device in PAPER_RIDGES:
        assert fitted.ridge_from == "published" and fitted.ridge_point == PAPER_RIDGES[device]
        assert provenance["ridge_point"].startswith("published")
    else:
        assert fitted.ridge_from == "fitted" and provenance["ridge_point"].startswith("fitted")
    assert len(fitted.rows) >= 3 and all(ms > 0 for _, ms in fitted.rows)
    assert all(name in profile.notes for name, _ in fitted.rows)  # the notes name the rows it was fitted to
    # every estimate carries the held-out (leave-one-out) error of its profile
    assert profile.typical_error_pct == fitted.held_out_median_ape and 0 < fitted.held_out_median_ape < 100
    assert fitted.held_out_median_ape <= fitted.held_out_max_ape and -1 <= fitted.held_out_spearman <= 1
    assert profile.held_out_spearman == fitted.held_out_spearman and "Held out (nested leave-one-out)" in profile.notes


def test_the_cost_model_notes_say_which_terms_each_profile_keeps():
    for device, fitted in devices.FITS.items():
        profile = devices.PROFILES[device]
        assert (profile.overhead_s, profile.dispatch_s, profile.class_peaks) == (
            fitted.overhead_s, fitted.dispatch_s, fitted.class_peaks)
        cost_model = roofline.cost_model_text(fitted.terms)
        assert f"cost model {cost_model}, each op class's peak pulled toward the shared one with shrinkage" \
            in profile.notes
        assert fitted.shrinkage in roofline.SHRINKAGE_GRID and 1 <= fitted.folds_choosing_shrinkage <= len(fitted.rows)
        for op_class, peak in fitted.class_peaks:
            assert op_class in roofline.OP_CLASSES and peak > 0 and f"{op_class} at" in profile.notes
    assert devices.PROFILES["pixel4_hexagon"].unsupported_ops == ("attention", "gelu", "layernorm")


def test_the_phone_gpus_leave_what_their_delegate_rejects_and_its_smaller_pieces_to_the_cpu():
    """FastViT on the TFLite GPU delegate: its channel-multiplier convs (one per stage and one before the
    head) are rejected, only the longest piece between them (stage 3's blocks) is delegated, and the
    rest runs at the fitted CPU speed, far below the GPU's."""
    pytest.importorskip("torch")
    from mnv4suite.reports.paper import paper_results

    fastvit = devices.model_layers(devices.costed_rows(paper_results())["FastViT-S12"], 2)
    for device in ("pixel7_gpu", "s23_gpu"):
        profile = devices.PROFILES[device]
        assert profile.runtime == devices.TARGETS[device].runtime and profile.runtime.delegate_rejects == ("multiplier",)
        assert "a CPU peak for what the delegate does not take (multiplier rejected)" in profile.notes
        peaks = dict(profile.class_peaks)
        assert peaks["cpu_fallback"] < profile.peak_macs_per_s / 3 and "multiplier" not in peaks
        estimate = roofline.estimate(fastvit, profile)
        delegated = [n for n in estimate.names if n not in estimate.cpu_layers]
        assert delegated and all(n.startswith("stages.2.") for n in delegated)
        assert "stages.1.0.0" in estimate.cpu_layers and "head" in estimate.cpu_layers
    assert all(not devices.PROFILES[d].runtime.delegate_rejects for d in devices.TARGETS if d not in ("pixel7_gpu", "s23_gpu"))


def _stored_rows(device):
    """The stored fit's models, costed as the device moves them, and their Table 6 latencies in seconds."""
    from mnv4suite.reports.paper import paper_results

    fitted = devices.FITS[device]
    matched = devices.costed_rows(paper_results())
    models = [devices.device_layers(matched[name], device) for name, _ in fitted.rows]
    return models, [ms / 1e3 for _, ms in fitted.rows]


#: Nested leave-one-out Spearman (estimate vs Table 6) the stored fits reached; the issue asks for 0.97 on
#: every device. Below it: Hexagon (13 rows; MNv4-Conv-S runs faster there than any op class explains),
#: the Pixel 7 GPU (MultiHardware-MAX runs slower than AVG there alone, with fewer MACs and layers) and
#: the ANE (18 rows, five sets of ties).
NESTED_SPEARMAN = {"pixel6_cpu": 0.997, "s23_cpu": 0.986, "pixel4_hexagon": 0.922, "pixel8_edgetpu": 0.973,
                   "pixel7_gpu": 0.964, "s23_gpu": 0.99, "iphone13_ane": 0.969}


@pytest.mark.parametrize("device", list(devices.TARGETS))
def test_held_out_figures_are_recomputed_by_nested_leave_one_out(device):
    """The figures every estimate carries, re-derived from the package's own Table 6 copy: each model
    predicted by a fit that chose its shrinkage and fitted its weights without it; the cost model beats
    the paper's plain roofline held out, and the median error meets the issue's 15% everywhere."""
    pytest.importorskip("torch")
    fitted = devices.FITS[device]
    models, measured = _stored_rows(device)
    nested = devices.nested_held_out(device, models, measured)
    held = nested.held_out
    assert held.median_abs_pct_error == pytest.approx(fitted.held_out_median_ape, abs=0.2)
    assert held.max_abs_pct_error == pytest.approx(fitted.held_out_max_ape, abs=0.2)
    assert held.spearman == pytest.approx(fitted.held_out_spearman, abs=2e-3)
    assert fitted.held_out_spearman == NESTED_SPEARMAN[device]
    assert sum(k == fitted.shrinkage for k in nested.fold_shrinkage) == fitted.folds_choosing_shrinkage
    rounding = [devices.printed_half_step(ms) / 1e3 for _, ms in fitted.rows]
    assert held.spearman_within(rounding) == pytest.approx(fitted.held_out_spearman_within_rounding, abs=5e-3)
    from mnv4suite.reports.paper import paper_results

    matched = devices.costed_rows(paper_results())
    plain = devices.paper_roofline_held_out(device, [matched[name] for name, _ in fitted.rows], measured)
    assert plain.median_abs_pct_error == pytest.approx(fitted.plain_held_out_median_ape, abs=0.2)
    assert held.mean_abs_log_error < plain.mean_abs_log_error and held.spearman > plain.spearman
    assert fitted.held_out_median_ape <= 15


@pytest.mark.parametrize("device", list(devices.TARGETS))
def test_held_out_error_does_not_hinge_on_which_models_are_held_out_together(device):
    """Random 5- and 3-fold partitions (folds of the test's choosing), the whole procedure nested in
    each, give errors like leave-one-out's, the phone GPUs' included now that their FastViT slowness
    has a cause (the delegate's CPU fallback) that holds across folds."""
    pytest.importorskip("torch")
    import numpy as np

    fitted = devices.FITS[device]
    models, measured = _stored_rows(device)
    for seed, k in ((11, 5), (12, 3)):
        order = np.random.default_rng(seed).permutation(len(measured))
        folds = [[int(i) for i in order[j::k]] for j in range(k)]
        held = devices.nested_held_out(device, models, measured, folds).held_out
        assert held.median_abs_pct_error <= max(20.0, 1.6 * fitted.held_out_median_ape), (seed, k)
        assert held.spearman >= 0.9, (seed, k)
        # no model predicted from a class its fold's training rows could not pin down (before a class
        # needed a measurable share, EfficientViT's one LayerNorm set ConvNeXt's: 58x over, S23 CPU)
        assert held.max_abs_pct_error <= max(200.0, 2 * fitted.held_out_max_ape), (seed, k)


def test_the_ane_is_fitted_and_estimates_on_activations_laid_out_as_it_pads_them():
    """Only the ANE pads (its buffers' last axis to 64 bytes); the fit, the comparison and a user's run
    through the worker all cost its rows that way, and the result says so. The paper's plain roofline,
    the baseline, keeps the paper's packed counts."""
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from mnv4suite.reports.paper import paper_results
    from mnv4suite.worker import roofline_estimate

    assert [d for d, t in devices.TARGETS.items() if t.runtime.last_axis_alignment_bytes] == ["iphone13_ane"]
    assert devices.PROFILES["iphone13_ane"].runtime.last_axis_alignment_bytes == 64
    spec = devices.costed_rows(paper_results())["MNv4-Conv-S"]
    packed, padded = devices.model_layers(spec, 2), devices.device_layers(spec, "iphone13_ane")
    assert sum(r.activation_bytes for r in padded) > 1.2 * sum(r.activation_bytes for r in packed)
    assert devices.device_layers(spec, "s23_gpu") == packed
    with torch.device("meta"):
        module = spec.build()
    model = SimpleNamespace(module=module, spec=spec)
    estimate = roofline_estimate(model, "fp16", devices.PROFILES["iphone13_ane"])
    compared = devices.compare("iphone13_ane", {"MNv4-Conv-S": 0.6})
    assert estimate["ms"] == pytest.approx(compared.estimated_ms[0], rel=1e-9)
    assert "padded to 64 bytes" in estimate["cost_model"]


def test_list_devices_shows_the_held_out_error(suite_env):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "mnv4suite", "list", "devices"], env=suite_env, capture_output=True,
                         text=True, timeout=120).stdout
    assert "held-out error" in out
    edgetpu = devices.FITS["pixel8_edgetpu"]
    low, high = edgetpu.held_out_spearman_within_rounding
    assert f"±{edgetpu.held_out_median_ape:.0f}% median, Spearman {edgetpu.held_out_spearman:.3f} " \
        f"({low:.3f}-{high:.3f} within the published rounding)" in out


def test_the_held_out_spearman_carries_the_band_table6s_rounding_leaves_it():
    """Table 6 prints one decimal (0.45 two): a latency printed 0.5 may be anything from 0.45 to 0.55, so
    a device with many small ties (the ANE, the EdgeTPU) has a Spearman the table decides only to +-0.01."""
    assert [devices.printed_half_step(ms) for ms in (2.4, 0.45, 17.0, 186.5)] == \
        pytest.approx([0.05, 0.005, 0.05, 0.05])
    for device, fitted in devices.FITS.items():
        low, high = fitted.held_out_spearman_within_rounding
        assert low <= high and fitted.spearman_text() in devices.PROFILES[device].notes
    ane, cpu = devices.FITS["iphone13_ane"], devices.FITS["s23_cpu"]  # 0.45-0.7 ms ties; 1.8-69 ms, few ties
    assert ane.held_out_spearman_within_rounding[1] - ane.held_out_spearman_within_rounding[0] > 0.01
    assert cpu.held_out_spearman_within_rounding[1] - cpu.held_out_spearman_within_rounding[0] < 0.005


def test_bytes_per_element_follows_the_papers_precision():
    bpe = {d: devices.bytes_per_element(p) for d, p in devices.PROFILES.items()}
    assert bpe == {"host-cpu": 4, "cuda-gpu": 4, "pixel6_cpu": 1, "s23_cpu": 1, "pixel4_hexagon": 1, "pixel8_edgetpu": 1,
                   "pixel7_gpu": 2, "s23_gpu": 2, "iphone13_ane": 2}


def test_discovery_imports_neither_torch_nor_yaml():
    code = "import sys, mnv4suite.plugins.devices; print([m for m in ('torch', 'yaml', 'scipy') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"


RESULTS = {
    "devices": ["pixel6_cpu", "pixel8_edgetpu", "iphone13_coreml", "pixel4_hexagon", "pixel7_gpu", "s23_cpu", "s23_gpu"],
    "imagenet": [
        {"model": "MobileNet-V2-1.5x", "top1": 76.8, "params_m": 6.8, "latency_ms": [9.3, 0.9, 1.0, 5.6, 16.4, 7.3, 3.3]},
        {"model": "MNv4-Hybrid-M", "top1": 80.7, "params_m": 10.5,
         "latency_ms": [14.3, 1.5, None, "failed", 17.9, 10.8, 5.9]},
        {"model": "MobileNet-V3L-0.5x", "top1": 69.2, "params_m": 2.7, "latency_ms": [2.4, 0.8, 0.45, 3.5, 9.9, 2.0, 2.1]},
    ],
}


def test_table6_leaves_out_failed_and_missing_entries():
    latencies = devices.table6_latencies(RESULTS)
    assert latencies["iphone13_ane"] == {"MobileNet-V2-1.5x": 1.0, "MobileNet-V3L-0.5x": 0.45}
    assert "MNv4-Hybrid-M" not in latencies["pixel4_hexagon"]
    assert latencies["s23_gpu"]["MNv4-Hybrid-M"] == 5.9


def _spec(model_id, aliases=(), **published):
    return ModelSpec(id=model_id, builder="x:y", resolution=224, aliases=aliases, published=published)


def test_catalog_entries_join_table6_by_name_alias_or_published_figures():
    specs = [
        _spec("mnv2-1.5", row="MobileNet-V2-1.5x"),  # named outright
        _spec("mobilenet-v3-large-0.5x"),  # read as (family, width)
        _spec("hybrid", top1=80.7, params_m=10.5),  # matched by its published figures
        _spec("mnv3l-1.0", aliases=("mobilenetv3_large_100",)),  # a width Table 6 does not have
    ]
    matched = devices.implemented_rows(RESULTS, specs)
    assert {name: spec.id for name, spec in matched.items()} == {
        "MobileNet-V2-1.5x": "mnv2-1.5",
        "MobileNet-V3L-0.5x": "mobilenet-v3-large-0.5x",
        "MNv4-Hybrid-M": "hybrid",
    }
    by_alias = devices.match_table6(["MobileNet-V2-0.5x"], [_spec("x", aliases=("mobilenetv2_050",))])
    assert by_alias["MobileNet-V2-0.5x"].id == "x"


def test_emitted_block_reproduces_the_stored_fits():
    namespace = {"DeviceFit": devices.DeviceFit}
    exec(devices.emit(devices.FITS), namespace)
    assert namespace["FITS"] == devices.FITS


# --------------------------------------------------------------------------- with torch: costs and estimates


#: The paper's roofline ranked its own rows no better than this on any device (Table 16: 0.962-0.973).
PAPER_LOWEST_SPEARMAN = 0.962


@pytest.mark.parametrize("device", list(devices.TARGETS))
def test_stored_profiles_rank_models_like_the_paper(device):
    """In sample (the profiles' own rows): Spearman 0.968 (Pixel 7 GPU) to 0.997 (Pixel 6 CPU), within or
    above the paper's own roofline (Table 16: 0.962-0.973), above MACs alone and above the nested figure
    each profile carries."""
    pytest.importorskip("torch")
    cmp = devices.compare(device)
    assert len(cmp.models) == len(devices.FITS[device].rows)  # every fitted row is still costed
    print(f"{device}: Spearman roofline {cmp.spearman_roofline:.3f}, MACs {cmp.spearman_macs:.3f} over {len(cmp.models)}")
    assert cmp.spearman_roofline >= max(PAPER_LOWEST_SPEARMAN, NESTED_SPEARMAN[device]) > cmp.spearman_macs
    ratios = {name: est / meas for name, est, meas in zip(cmp.models, cmp.estimated_ms, cmp.measured_ms)}
    # the worst in sample: FastViT-SA24/36 on the phone GPUs, about 2x slower than their ops cost
    assert all(0.4 < r < 1.4 for r in ratios.values()), ratios
    assert sum(0.7 < r < 1.3 for r in ratios.values()) >= len(ratios) - 3, ratios


@pytest.mark.slow
def test_stored_fits_match_a_refit_from_the_paper():
    """The whole selection (every candidate term, leave-one-out, every device) again: about a minute."""
    pytest.importorskip("torch")
    from mnv4suite.reports.paper import paper_results

    results = paper_results()
    table6 = devices.table6_latencies(results)
    for device, fitted in devices.FITS.items():
        assert dict(fitted.rows) == {n: table6[device][n] for n, _ in fitted.rows}  # copied faithfully
    refit = devices.refit(results)
    for device, fitted in devices.FITS.items():
        assert refit[device].agrees_with(fitted), (device, refit[device], fitted)


def test_hexagon_fails_exactly_the_models_table6_lists_as_failed():
    """The ops marked unsupported predict Table 6's "Failed" entries: no more, no fewer."""
    pytest.importorskip("torch")
    from mnv4suite.reports.paper import paper_results

    results = paper_results()
    column = results["devices"].index("pixel4_hexagon")
    profile = devices.PROFILES["pixel4_hexagon"]
    for name, model in devices.costed_rows(results).items():
        entry = next(r for r in results["imagenet"] if r["model"] == name)["latency_ms"][column]
        if entry is not None:  # null: not benchmarked there
            assert bool(roofline.unsupported_ops(devices.model_layers(model), profile)) == (entry == "failed"), name


def test_a_result_names_the_layers_the_gpu_delegate_leaves_to_the_cpu():
    """What a user's own model with a channel-multiplier conv gets on a phone GPU it cannot reach: the
    estimate counts those layers at the CPU's speed and the result lists them."""
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from test_results import sample_result

    from mnv4suite import results
    from mnv4suite.worker import roofline_estimate

    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
        torch.nn.Conv2d(16, 32, 3, padding=1, groups=16),  # channel multiplier 2: rejected by the delegate
        *[torch.nn.Conv2d(32, 32, 1) for _ in range(4)],
    )
    model = SimpleNamespace(module=module, spec=SimpleNamespace(id="mine", resolution=32))
    adreno = devices.PROFILES["s23_gpu"]
    estimate = roofline_estimate(model, "fp16", adreno)
    assert estimate["cpu_fallback_layers"] == ["0", "1"] and "delegate does not take" in estimate["cost_model"]
    gpu_only = roofline_estimate(model, "fp16", replace(adreno, runtime=replace(adreno.runtime, delegate_rejects=())))
    assert estimate["ms"] > gpu_only["ms"] and gpu_only["cpu_fallback_layers"] == []
    result = sample_result() | {"schema_version": results.SCHEMA_VERSION, "estimate": estimate}
    results.validate(result)
