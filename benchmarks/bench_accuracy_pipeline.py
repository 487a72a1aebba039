"""Accuracy-mode throughput of the whole pipeline, as a fraction of inference alone.

    python benchmarks/bench_accuracy_pipeline.py [--images 1000] [--model mnv4-conv-s] [--backend onnxruntime-cpu]

Generates an ImageNet val folder of photo-sized JPEGs (500x375, the val set's typical size) with a
1000-class label file, then runs, each in a fresh process (LoadGen allows one test per process):

* cold: an empty input cache: check, decode, resize and crop every image, then infer and score;
* warm: the same run again, with the input cache the cold run left.

Each times dataset build + LoadGen Offline accuracy test (load, inference, encode) + top-1/top-5
metric and, in the same process just before and just after, inference alone: a bare `session.run`
loop over the same pre-processed inputs. Throughput ratio = inference-alone time (mean of the two
loops, which brackets the machine's drift) / pipeline time (target > 0.9 warm). The breakdown shows
where the rest went. Model building and conversion happen before the clock starts (cached artifacts).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 500, 375


def make_imagenet_val(root: Path, images: int, seed: int = 0) -> Path:
    """A flat val folder (ILSVRC2012_val_*.JPEG + val_map.txt), labels spread over the 1000 classes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    lines = []
    for i in range(1, images + 1):
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = ((xx / WIDTH) * rng.uniform(0.2, 1) + (yy / HEIGHT) * rng.uniform(0.2, 1))[..., None] / 2
        pixels = a * (1 - t) + b * t + rng.normal(0, 12, (HEIGHT, WIDTH, 3))  # gradient + sensor noise
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name, quality=90)
        lines.append(f"{name} {(i * 7919) % 1000}")
    (root / "val_map.txt").write_text("\n".join(lines) + "\n")
    return root


def measure(args) -> dict:
    """One process: prepare the session (untimed), then the timed pipeline, then inference alone."""
    from mnv4suite import harness
    from mnv4suite.cache import ArtifactCache
    from mnv4suite.models import prepare_model
    from mnv4suite.registry import get_registry
    from mnv4suite.run_rules import Seeds, get_preset

    registry = get_registry()
    model_spec, backend_spec = registry.models.get(args.model), registry.backends.get(args.backend)
    task = registry.tasks.get("imagenet").create()
    backend = backend_spec.create()
    model = prepare_model(model_spec)
    session = backend.load(backend.prepare(model, ArtifactCache(args.artifacts)), model)

    spent = {"load": 0.0, "run": 0.0, "encode": 0.0}

    def timed(name, fn):
        def wrapper(*a):
            t = time.perf_counter()
            try:
                return fn(*a)
            finally:
                spent[name] += time.perf_counter() - t
        return wrapper

    def bare_loop() -> float:
        """Inference alone over every sample (inputs prepared first, outside the clock)."""
        probe = task.dataset(model_spec, Path(args.data), None, "stop", None if args.measure == "cold" else Path(args.cache))
        probe.load(range(len(probe)))
        inputs = [probe.get(i) for i in range(len(probe))]
        start = time.perf_counter()
        for x in inputs:
            session.run(x)
        return time.perf_counter() - start

    before = bare_loop() if args.measure == "warm" else None  # the cold run must decode in the pipeline
    start = time.perf_counter()
    dataset = task.dataset(model_spec, Path(args.data), None, "stop", Path(args.cache))
    built = time.perf_counter()
    cache = dataset.cache.describe()  # before the test: the cold run leaves a warm pack behind
    with tempfile.TemporaryDirectory() as logs:
        settings = harness.HarnessSettings(scenario=args.scenario, mode="accuracy", preset=get_preset("rapid"),
                                           seeds=Seeds(), log_dir=Path(logs), progress=False)
        dataset.load = timed("load", dataset.load)
        timed_session = type("Timed", (), {"run": staticmethod(timed("run", session.run)),
                                           "accelerator": session.accelerator})()
        encode = timed("encode", lambda out, i: task.encode(out, i, dataset))
        report = harness.run_test(timed_session, dataset, encode, settings)
        tested = time.perf_counter()
        metrics = task.metric(report.payloads, dataset)
    done = time.perf_counter()

    after = bare_loop()
    inference = (before + after) / 2 if before is not None else after
    return {"samples": metrics["samples"], "dataset_s": built - start, "loadgen_s": tested - built,
            "metric_s": done - tested, "pipeline_s": done - start, "inference_s": inference,
            "cache": cache, **{f"{k}_s": v for k, v in spent.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--model", default="mnv4-conv-s")
    parser.add_argument("--backend", default="onnxruntime-cpu")
    parser.add_argument("--scenario", default="Offline", choices=("Offline", "SingleStream"))
    parser.add_argument("--measure", choices=("cold", "warm"), help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--artifacts", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        data = make_imagenet_val(tmp / "val", args.images)
        print(f"generated {args.images} JPEGs of {WIDTH}x{HEIGHT} in {time.perf_counter() - start:.1f} s")
        print(f"model {args.model}, backend {args.backend}, LoadGen {args.scenario} accuracy mode\n")
        print(f"{'run':<6}{'dataset s':>10}{'LoadGen s':>10}{'metric s':>9}{'pipeline s':>11}{'inference s':>12}"
              f"{'img/s':>8}{'ratio':>7}  cache")
        for run in ("cold", "warm"):
            child = [sys.executable, __file__, "--measure", run, "--data", str(data), "--cache", str(tmp / "inputs"),
                     "--artifacts", str(tmp / "artifacts"), "--model", args.model, "--backend", args.backend,
                     "--scenario", args.scenario]
            out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            ratio = r["inference_s"] / r["pipeline_s"]
            print(f"{run:<6}{r['dataset_s']:>10.2f}{r['loadgen_s']:>10.2f}{r['metric_s']:>9.3f}{r['pipeline_s']:>11.2f}"
                  f"{r['inference_s']:>12.2f}{r['samples'] / r['pipeline_s']:>8.1f}{ratio:>7.3f}  "
                  f"{'warm pack' if r['cache']['warm'] else 'decoded'}")
            print(f"      inside LoadGen: load {r['load_s']:.2f} s, inference {r['run_s']:.2f} s "
                  f"({r['run_s'] / r['pipeline_s']:.0%} of the pipeline), "
                  f"encode {r['encode_s']:.3f} s, LoadGen itself {r['loadgen_s'] - r['load_s'] - r['run_s'] - r['encode_s']:.2f} s")
        print("\nratio = inference alone / whole pipeline (target > 0.9 with a warm cache)")


if __name__ == "__main__":
    main()
