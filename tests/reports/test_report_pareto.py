"""Pareto fronts: equal to the brute-force non-dominated set, ties included; accuracy provenance."""

from __future__ import annotations

import math
import random

import pytest

from mnv4suite.reports import pareto
from reportdata import make_result


def brute_force(pairs):
    placed = [i for i, (lat, acc) in enumerate(pairs) if lat is not None and acc is not None
              and not math.isnan(lat) and not math.isnan(acc)]
    return [i in placed and not any(pareto.dominates(pairs[j], pairs[i]) for j in placed if j != i)
            for i in range(len(pairs))]


def test_hand_made_points_with_ties():
    pairs = [
        (1.0, 70.0),  # fastest: front
        (1.0, 70.0),  # exact duplicate: neither dominates, both on the front
        (1.0, 69.0),  # same latency, less accurate: dominated
        (2.0, 70.0),  # slower, no more accurate: dominated
        (2.0, 75.0),  # front
        (3.0, 75.0),  # dominated by (2, 75)
        (4.0, 80.0),  # front
        (5.0, 79.0),  # dominated
        (None, 99.0),  # no latency: never on the front
        (0.5, None),  # no accuracy
        (0.1, float("nan")),
    ]
    flags = pareto.front_flags(pairs)
    assert flags == brute_force(pairs)
    assert [i for i, f in enumerate(flags) if f] == [0, 1, 4, 6]


@pytest.mark.parametrize("seed", range(300))
def test_random_points_equal_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(0, 25)
    grid = rng.choice([3, 6, 1000])  # small grids make many ties in latency, accuracy or both
    pairs = [(float(rng.randint(1, grid)), float(rng.randint(1, grid))) for _ in range(n)]
    assert pareto.front_flags(pairs) == brute_force(pairs)


def test_front_is_deterministic_whatever_the_input_order():
    pairs = [(float(i % 4), float((i * 7) % 5)) for i in range(20)]
    points = [pareto.Point("t", "h", "SingleStream", f"m{i}", "b", "fp32", lat, "measured", "p90", acc, "measured", "top1")
              for i, (lat, acc) in enumerate(pairs)]
    first = pareto.mark_front(points)
    again = pareto.mark_front(list(reversed(points)))
    assert [p.model for p in first] == [p.model for p in again]
    assert {p.model for p in pareto.front(points)} == {f"m{i}" for i, f in enumerate(brute_force(pairs)) if f}


def published(model_id, metric):
    return {"a": (75.0, "paper Table 6"), "b": (80.0, "paper Table 6")}.get(model_id)


def by_model(points):
    return {(p.model, p.backend): p for p in points}


def test_published_accuracy_only_where_nothing_is_measured_and_labelled():
    points = by_model(pareto.points_from_results([
        make_result("a", latency_ms=2.0),  # no accuracy anywhere for a: published
        make_result("b", backend="pytorch-cpu", latency_ms=1.0, accuracy=71.5, run_id="r1"),
        make_result("b", backend="onnxruntime-cpu", latency_ms=0.5, run_id="r2"),  # b measured elsewhere: borrowed
        make_result("c", latency_ms=3.0),  # no published figure either: not placed
    ], published))
    a = points[("a", "pytorch-cpu")]
    assert (a.accuracy, a.accuracy_kind) == (75.0, "published") and "paper Table 6" in a.accuracy_note
    own = points[("b", "pytorch-cpu")]
    assert (own.accuracy, own.accuracy_kind, own.accuracy_note) == (71.5, "measured", "")
    borrowed = points[("b", "onnxruntime-cpu")]
    assert (borrowed.accuracy, borrowed.accuracy_kind) == (71.5, "measured")
    assert "r1" in borrowed.accuracy_note and "pytorch-cpu" in borrowed.accuracy_note
    c = points[("c", "pytorch-cpu")]
    assert c.accuracy is None and c.accuracy_kind is None and not c.placed


def test_a_borrowed_accuracy_comes_from_the_same_backend_and_weights_first():
    """int8 accuracy depends on the converter and its calibration: a TFLite int8 latency run takes the
    TFLite int8 accuracy run's figure, not an earlier ONNX Runtime int8 one's."""
    points = by_model(pareto.points_from_results([
        make_result("b", backend="onnxruntime-cpu-int8", latency_ms=1.0, accuracy=72.1, precision="int8", run_id="r1"),
        make_result("b", backend="tflite-int8", latency_ms=2.0, accuracy=73.0, precision="int8", run_id="r2"),
        make_result("b", backend="tflite-int8", latency_ms=0.5, precision="int8", run_id="r3"),
        make_result("b", backend="coreml-ane", latency_ms=0.4, precision="int8", run_id="r4"),
    ], published))
    lent = [p for p in points.values() if p.run_id == "r3"][0]
    assert lent.accuracy == 73.0 and "run r2 on tflite-int8" in lent.accuracy_note
    other = points[("b", "coreml-ane")]  # no run of its own backend: the earliest complete one
    assert other.accuracy == 72.1 and "run r1 on onnxruntime-cpu-int8" in other.accuracy_note


def test_measured_accuracy_of_another_precision_is_not_borrowed():
    points = by_model(pareto.points_from_results([
        make_result("b", latency_ms=1.0, accuracy=79.0, precision="fp32"),
        make_result("b", backend="tflite-int8", latency_ms=0.5, precision="int8"),
    ], published))
    int8 = points[("b", "tflite-int8")]
    assert (int8.accuracy, int8.accuracy_kind) == (80.0, "published")


def test_latency_kinds_and_partial_status():
    [measured, estimated, partial] = pareto.points_from_results([
        make_result("a", latency_ms=2.0, accuracy=70.0),
        make_result("a", backend="npu", hardware="pixel8_edgetpu", estimate_ms=0.7, accuracy=70.0),
        make_result("b", latency_ms=3.0, accuracy=60.0, status="partial"),
    ])
    assert (measured.latency_kind, measured.latency_ms) == ("measured", 2.0)
    assert (estimated.latency_kind, estimated.latency_ms) == ("estimated", 0.7)
    assert partial.status == "partial" and "skipped" in partial.accuracy_note


def test_groups_per_task_hardware_and_scenario():
    groups = pareto.groups(pareto.points_from_results([
        make_result("a", latency_ms=2.0, accuracy=70.0),
        make_result("b", latency_ms=1.0, accuracy=60.0),
        make_result("a", backend="npu", hardware="pixel8_edgetpu", estimate_ms=0.7, accuracy=70.0),
        make_result("a", latency_ms=5.0, accuracy=70.0, scenario="Offline"),
    ]))
    assert [(g.hardware, g.scenario, len(g.points)) for g in groups] == [
        ("host-cpu", "Offline", 1), ("host-cpu", "SingleStream", 2), ("pixel8_edgetpu", "SingleStream", 1)]
    assert [p.model for p in groups[1].front] == ["b", "a"]


def test_a_machine_class_measured_on_two_machines_gets_two_fronts():
    """A lab sweep measures host-cpu on several nodes: their CPUs never share a front."""
    one_cpu = [make_result("a", latency_ms=5.0, accuracy=70.0, cpu="Xeon"),
               make_result("b", backend="onnxruntime-cpu", latency_ms=3.0, accuracy=70.0, cpu="Xeon")]
    assert {p.hardware for p in pareto.points_from_results(one_cpu)} == {"host-cpu"}  # one machine: as before
    two_cpus = one_cpu + [make_result("c", latency_ms=1.0, accuracy=75.0, cpu="Ampere Altra"),
                          make_result("d", backend="tflite-edgetpu", hardware="pixel8_edgetpu", estimate_ms=2.0,
                                      accuracy=70.0)]
    groups = {g.hardware: g for g in pareto.groups(pareto.points_from_results(two_cpus))}
    assert set(groups) == {"host-cpu (Xeon)", "host-cpu (Ampere Altra)", "pixel8_edgetpu"}
    # c (1 ms, 75%) would dominate both Xeon points on a shared front
    assert {p.model for p in groups["host-cpu (Xeon)"].front} == {"b"}
