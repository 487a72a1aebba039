"""Device profiles: registration, provenance, Table 6 matching, and the stored fits against a re-fit."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from mnv4suite.api import ModelSpec
from mnv4suite.plugin_manager import create_plugin_manager
from mnv4suite.plugins import devices
from mnv4suite.registry import build_registry

PAPER_RIDGES = {"pixel6_cpu": 31.2, "s23_cpu": 39.7, "pixel4_hexagon": 347.3, "pixel8_edgetpu": 433.8}

#: Spearman (roofline estimate vs the paper's Table 6 latency) of the stored profiles over the rows they
#: were fitted to, measured when they were fitted: pixel6_cpu 0.982, s23_cpu 0.961, pixel4_hexagon 0.900,
#: pixel8_edgetpu 0.889, pixel7_gpu 0.945, s23_gpu 0.948, iphone13_ane 0.929. Floors sit just below.
SPEARMAN_FLOOR = {
    "pixel6_cpu": 0.96,
    "s23_cpu": 0.94,
    "pixel4_hexagon": 0.88,
    "pixel8_edgetpu": 0.87,
    "pixel7_gpu": 0.92,
    "s23_gpu": 0.93,
    "iphone13_ane": 0.91,
}


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
    assert profile.held_out_spearman == fitted.held_out_spearman and "Held out (leave-one-out)" in profile.notes


def test_an_overhead_term_is_kept_only_where_it_lowers_the_held_out_error():
    for device, fitted in devices.FITS.items():
        if fitted.overhead_s:
            assert fitted.held_out_median_ape < fitted.plain_held_out_median_ape * (1 - devices.OVERHEAD_GAIN)
            assert devices.PROFILES[device].overhead_s == fitted.overhead_s and "ms per inference" in devices.PROFILES[device].notes
        else:
            assert fitted.held_out_median_ape == fitted.plain_held_out_median_ape
    assert devices.FITS["pixel8_edgetpu"].overhead_s > 0  # 0.7 ms for models from 0.5 to 2 GMACs: mostly fixed cost
    assert not devices.FITS["pixel6_cpu"].overhead_s


def test_held_out_stats_are_recomputed_from_the_stored_rows():
    """Leave-one-out on the rows of the stored fit, from the package's own data (no shared/ needed)."""
    pytest.importorskip("torch")
    fitted = devices.FITS["pixel6_cpu"]
    specs = devices.match_table6(dict(fitted.rows))
    again = devices.fit_device("pixel6_cpu", dict(fitted.rows), specs)
    assert again.agrees_with(fitted), (again, fitted)


def test_list_devices_shows_the_held_out_error(suite_env):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "mnv4suite", "list", "devices"], env=suite_env, capture_output=True,
                         text=True, timeout=120).stdout
    assert "held-out error" in out
    assert f"±{devices.FITS['pixel8_edgetpu'].held_out_median_ape:.0f}% median" in out


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


@pytest.mark.parametrize("device", list(devices.TARGETS))
def test_stored_profiles_rank_models_like_the_paper(device):
    pytest.importorskip("torch")
    cmp = devices.compare(device)
    assert len(cmp.models) == len(devices.FITS[device].rows)  # every fitted row is still in the catalog
    print(f"{device}: Spearman roofline {cmp.spearman_roofline:.3f}, MACs {cmp.spearman_macs:.3f} over {len(cmp.models)}")
    assert cmp.spearman_roofline >= SPEARMAN_FLOOR[device]
    assert all(0.3 < est / meas < 3 for est, meas in zip(cmp.estimated_ms, cmp.measured_ms))


def test_stored_fits_match_a_refit_from_the_paper(shared_dir):
    pytest.importorskip("torch")
    results = devices.load_results(shared_dir / devices.RESULTS_FILE)
    table6 = devices.table6_latencies(results)
    stored_rows = {d: [name for name, _ in c.rows] for d, c in devices.FITS.items()}
    for device, fitted in devices.FITS.items():
        assert dict(fitted.rows) == {n: table6[device][n] for n in stored_rows[device]}  # copied faithfully
    refit = devices.refit(results, only_rows=stored_rows)
    for device, fitted in devices.FITS.items():
        assert refit[device].agrees_with(fitted), (device, refit[device], fitted)
    implemented = devices.implemented_rows(results)
    newer = {d: sorted(set(table6[d]) & set(implemented) - set(stored_rows[d])) for d in table6}
    newer = {d: rows for d, rows in newer.items() if rows}
    if newer:
        warnings.warn(
            f"the catalog now implements Table 6 rows the stored fits predate {newer}: "
            "run `python benchmarks/bench_roofline.py --emit` and update FITS in plugins/devices.py",
            stacklevel=1,
        )
