"""Batched Offline: the harness's throughput against a bare batched loop of the same session.

    python benchmarks/bench_offline.py [--model mnv4-conv-s] [--backend onnxruntime-cpu] [--batch 8]

In one process: the backend's session prepared for `--batch`, a bare loop of batched `session.run`
calls on pre-loaded samples (samples/s), one LoadGen Offline test through the harness at that batch,
the bare loop again. The ratio compares LoadGen's samples/s with the mean of the two bare loops
(target: above 0.9). The batch-1 samples/s from a bare loop is printed beside it, so the gain from
batching is visible in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mnv4suite import harness
from mnv4suite.cache import ArtifactCache
from mnv4suite.models import prepare_model
from mnv4suite.registry import get_registry
from mnv4suite.run_rules import Seeds, get_preset


def bare_samples_per_s(session, dataset, batch: int, seconds: float) -> float:
    n = min(len(dataset), 64)
    inputs = [np.concatenate([dataset.get((i + j) % n) for j in range(batch)]) for i in range(0, n, batch)]
    done, i, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(inputs[i % len(inputs)])
        done, i = done + batch, i + 1
    return done / (time.perf_counter() - start)


def session_for(backend_spec, model, batch: int):
    backend = backend_spec.create()
    backend.batch = batch
    calibration = None
    if backend_spec.precision == "int8":  # calibrated as a run without --data would be: on generated images
        from mnv4suite.api import CalibrationSet
        from mnv4suite.reference_models.probe_images import natural_images

        images = natural_images(32, model.spec.resolution, seed=2)
        calibration = CalibrationSet(source="photo-like procedural images (seed 2)", synthetic=True,
                                     samples=list(images[:, None]))
    return backend.load(backend.prepare(model, ArtifactCache(), calibration), model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnv4-conv-s")
    parser.add_argument("--backend", default="onnxruntime-cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--preset", default="rapid")
    args = parser.parse_args()

    registry = get_registry()
    model_spec, backend_spec = registry.models.get(args.model), registry.backends.get(args.backend)
    model = prepare_model(model_spec)
    task = registry.tasks.get("imagenet").create()
    dataset = task.dataset(model_spec, None)
    dataset.load(range(len(dataset)))
    seconds = get_preset(args.preset).min_duration_ms / 1000

    single = bare_samples_per_s(session_for(backend_spec, model, 1), dataset, 1, seconds)
    session = session_for(backend_spec, model, args.batch)
    harness.measure_warmup(session, dataset, runs=10, batch=args.batch)
    dataset.load(range(len(dataset)))
    before = bare_samples_per_s(session, dataset, args.batch, seconds)
    with tempfile.TemporaryDirectory() as logs:
        settings = harness.HarnessSettings(scenario="Offline", mode="performance", preset=get_preset(args.preset),
                                           seeds=Seeds(), log_dir=Path(logs), progress=False, batch=args.batch)
        report = harness.run_test(session, dataset, lambda out, i: task.encode(out, i, dataset), settings)
    dataset.load(range(len(dataset)))
    after = bare_samples_per_s(session, dataset, args.batch, seconds)

    bare = statistics.fmean([before, after])
    suite = report.latency["samples_per_s"]
    print(f"model {model_spec.id}, backend {backend_spec.id}, batch {args.batch}, preset {args.preset}")
    print(f"bare loop, batch 1          {single:9.1f} samples/s")
    print(f"bare loop, batch {args.batch:<3}        {bare:9.1f} samples/s  (before {before:.1f}, after {after:.1f})")
    print(f"LoadGen Offline, batch {args.batch:<3}  {suite:9.1f} samples/s  ({report.validity['result']})")
    print(f"harness / bare batched loop {suite / bare:.3f}  (target > 0.9); batch {args.batch} / batch 1 "
          f"{bare / single:.2f}x")


if __name__ == "__main__":
    main()
