"""Harness overhead: the suite's SingleStream mean latency over a bare loop of the same session.

    python benchmarks/bench_harness_overhead.py [--model mnv4-conv-s] [--backend pytorch-cpu] [--preset rapid]

In one process: build the model and session, time a bare `session.run` loop, run one LoadGen
SingleStream test through the harness, time the bare loop again. The ratio compares LoadGen's
mean with the mean of the two bare loops (target: under 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mnv4suite import harness
from mnv4suite.cache import ArtifactCache
from mnv4suite.models import prepare_model
from mnv4suite.registry import get_registry
from mnv4suite.run_rules import Seeds, get_preset


def bare_loop(session, dataset, seconds: float) -> list[float]:
    n = min(len(dataset), 64)
    times, deadline, i = [], time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline:
        x = dataset.get(i % n)
        start = time.perf_counter()
        session.run(x)
        times.append(time.perf_counter() - start)
        i += 1
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnv4-conv-s")
    parser.add_argument("--backend", default="pytorch-cpu")
    parser.add_argument("--task", default="imagenet")
    parser.add_argument("--preset", default="rapid")
    args = parser.parse_args()

    registry = get_registry()
    model_spec, backend_spec = registry.models.get(args.model), registry.backends.get(args.backend)
    task = registry.tasks.get(args.task).create()
    backend = backend_spec.create()
    model = prepare_model(model_spec)
    session = backend.load(backend.prepare(model, ArtifactCache()), model)
    dataset = task.dataset(model_spec, None)
    dataset.load(range(len(dataset)))
    seconds = get_preset(args.preset).min_duration_ms / 1000

    harness.measure_warmup(session, dataset, runs=20)  # the same warm-up the harness gives itself
    dataset.load(range(len(dataset)))
    before = bare_loop(session, dataset, seconds)
    with tempfile.TemporaryDirectory() as logs:
        settings = harness.HarnessSettings(scenario="SingleStream", mode="performance", preset=get_preset(args.preset),
                                           seeds=Seeds(), log_dir=Path(logs), progress=False)
        report = harness.run_test(session, dataset, lambda out, i: task.encode(out, i, dataset), settings)
    dataset.load(range(len(dataset)))  # LoadGen unloads its samples when the test ends
    after = bare_loop(session, dataset, seconds)

    bare_ms = statistics.fmean(before + after) * 1e3
    suite_ms = report.latency["mean_ms"]
    print(f"model {model_spec.id}, backend {backend_spec.id}, preset {args.preset}")
    print(f"bare loop mean      {bare_ms:8.3f} ms  (before {statistics.fmean(before) * 1e3:.3f}, "
          f"after {statistics.fmean(after) * 1e3:.3f}; {len(before) + len(after)} runs)")
    print(f"LoadGen SingleStream mean {suite_ms:8.3f} ms  (p90 {report.latency['p90_ms']:.3f}, "
          f"{report.latency['queries']} queries, {report.validity['result']})")
    print(f"harness overhead ratio {suite_ms / bare_ms:.3f}  (target < 1.05)")


if __name__ == "__main__":
    main()
