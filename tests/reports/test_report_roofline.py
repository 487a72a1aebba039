"""The roofline report (paper Figures 2 and 3) against the roofline engine it is built on."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("torch")

from mnv4suite import roofline  # noqa: E402
from mnv4suite.api import DeviceProfile  # noqa: E402
from mnv4suite.plugins import devices  # noqa: E402
from mnv4suite.reference_models.catalog import classifier_specs  # noqa: E402
from mnv4suite.reports import pareto, ridge  # noqa: E402

SUBSET = ("mnv4-conv-s", "mnv4-conv-m", "mnv2-1.0", "mnv3l-0.5", "mnv3l-1.0")


@pytest.fixture(scope="module")
def specs():
    return [s for s in classifier_specs() if s.id in SUBSET]


@pytest.fixture(scope="module")
def rep(specs):
    return ridge.sweep_report(specs, layer_model="mnv4-conv-m")


def test_swept_latency_equals_the_roofline_estimate_at_that_ridge_point(rep, specs):
    peak = 1e11
    for model, spec in zip(rep["models"], specs):
        layers = devices.model_layers(spec, 1)
        for k in (1, 31, 200, 434, 500):
            ridge_point = rep["ridge_points"][k]
            profile = DeviceProfile("test", "test", "cpu", ridge_point=ridge_point, peak_macs_per_s=peak,
                                    bandwidth_bytes_per_s=peak / ridge_point)
            assert model["mac_equivalents"][k] / peak == pytest.approx(roofline.estimate(layers, profile).total_s, rel=1e-12)
        assert model["mac_equivalents"][0] == model["macs"]


def test_device_ridges_reproduce_each_devices_estimate(specs):
    spec = specs[0]
    for device, ridge_point in ridge.device_ridges().items():
        # the sweep is the paper's roofline, ranked by ridge point alone: the profile without the op-class and
        # per-layer terms its cost model may add; its fixed per-inference overhead adds to every model
        profile = dataclasses.replace(devices.PROFILES[device], class_peaks=(), dispatch_s=0.0)
        est = roofline.estimate(devices.model_layers(spec, devices.bytes_per_element(profile)), profile)
        swept = roofline.mac_equivalents(devices.model_layers(spec, 1), ridge_point) / profile.peak_macs_per_s
        assert swept + profile.overhead_s == pytest.approx(est.total_s, rel=2e-3), device  # ridge stored to 0.1


def test_fronts_per_ridge_point_are_the_non_dominated_sets(rep):
    models = rep["models"]
    top1 = [m["published_top1"] for m in models]
    for k in (0, 31, 250, 500):
        pairs = [(m["mac_equivalents"][k], t) for m, t in zip(models, top1)]
        expected = {m["id"] for m, f in zip(models, pareto.front_flags(pairs)) if f}
        on_front = {m["id"] for m in models for a, b in m["on_front_at"] if a <= rep["ridge_points"][k] <= b}
        assert on_front == expected
    assert next(m for m in models if m["id"] == "mnv3l-1.0")["on_front_at"] == []  # no published top-1
    for panel in rep["panels"]:
        assert set(panel["front"]) == {p["model"] for p in panel["points"] if p["on_front"]}


def test_layer_costs_at_low_and_high_ridge(rep, specs):
    layers = rep["layers"]
    assert layers["model"] == "mnv4-conv-m"
    low, high = list(layers["ridge_points"])[1:]
    rows = layers["rows"]
    assert sum(r["cost"][list(layers["ridge_points"])[0]] for r in rows) == sum(r["macs"] for r in rows)
    assert sum(r["memory_bound"][high] for r in rows) >= sum(r["memory_bound"][low] for r in rows)
    spec = next(s for s in specs if s.id == "mnv4-conv-m")
    assert layers["totals"][high] == pytest.approx(roofline.mac_equivalents(devices.model_layers(spec, 1), 433.8))
    assert sum(b["layers"] for b in ridge.by_block(layers)) == len(rows)
