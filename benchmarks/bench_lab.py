"""Lab overhead: wall time per job of a sweep through Ray over the same sweep run locally.

    python benchmarks/bench_lab.py [--model mnv4-conv-s] [--backend onnxruntime-cpu,pytorch-cpu] [--rounds 2]

One process, one machine: a private one-node Ray lab (`--ray local`) against the local executor, on
the same plan (rapid preset, SingleStream and Offline, every job in its own worker process either
way), alternating local and Ray sweeps so that drift on a shared machine hits both. An untimed local
sweep first warms the artifact cache for both paths. What the ratio measures is what Ray adds per
job: scheduling, the task around the worker process, and the results coming home. A one-node lab
builds artifacts in place (there is nowhere to ship them), so the cost of shipping one, the ONNX file
through the object store into a node's cache with its sha256 checked, is timed apart, as is starting
the lab (once per sweep, not per job). Target: under 1.10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from mnv4suite import runner
from mnv4suite.config import RunConfig
from mnv4suite.registry import get_registry


def sweep(config: RunConfig, executor=None, where=None) -> tuple[float, int]:
    plan = runner.plan(config, get_registry(), where)
    start = time.perf_counter()
    outcomes = runner.execute(plan, log=lambda message: None, executor=executor)
    elapsed = time.perf_counter() - start
    failed = [o.error["message"] for o in outcomes if not o.ok]
    assert not failed, failed
    return elapsed, len(outcomes)


def shipping_ms(artifact: Path, cache_root: Path, repeats: int = 5) -> float:
    """Median time to send one artifact to a Ray task that installs it into a cache (sha256 checked)."""
    import hashlib

    import ray

    from mnv4suite.cache import ArtifactCache
    from mnv4suite.lab.node import install_artifacts

    @ray.remote(num_cpus=0)
    def receive(built, root):
        assert not install_artifacts(built, ArtifactCache(Path(root)))

    data = artifact.read_bytes()
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        built = {"entries": [{"key": {"bench": i}, "suffix": ".onnx", "sha256": hashlib.sha256(data).hexdigest(),
                              "data": data}]}
        ray.get(receive.remote(built, str(cache_root)))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnv4-conv-s")
    parser.add_argument("--backend", default="onnxruntime-cpu,pytorch-cpu")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from mnv4suite.lab import executor as lab

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MNV4SUITE_CACHE"] = str(Path(tmp) / "cache")  # the lab's node reads it too
        config = RunConfig(backend=args.backend, model=args.model, preset="rapid",
                           scenario=["SingleStream", "Offline"], out=str(Path(tmp) / "out"))
        warm, jobs = sweep(config)
        print(f"{jobs} jobs per sweep ({args.model} on {args.backend}, SingleStream and Offline, rapid); "
              f"untimed warm-up sweep {warm:.1f} s")
        start = time.perf_counter()
        lab.connect("local", get_registry().backends)
        the_lab = lab.discover()
        print(f"starting the one-node Ray lab: {time.perf_counter() - start:.1f} s (once per sweep, not per job)")
        local_s, ray_s = [], []
        try:
            for i in range(args.rounds):
                local_s.append(sweep(config)[0] / jobs)
                ray_s.append(sweep(config, lab.RayExecutor(the_lab, get_registry()), the_lab)[0] / jobs)
                print(f"round {i + 1}: local {local_s[-1]:.2f} s/job, Ray {ray_s[-1]:.2f} s/job, "
                      f"ratio {ray_s[-1] / local_s[-1]:.3f}")
            [onnx] = Path(tmp, "cache").rglob("artifact.onnx")
            print(f"shipping one artifact ({onnx.stat().st_size / 1e6:.1f} MB ONNX) through the object store into "
                  f"a node's cache, sha256 checked: {shipping_ms(onnx, Path(tmp) / 'shipped'):.0f} ms (median of 5)")
        finally:
            lab.shutdown()
    local, ray_path = statistics.mean(local_s), statistics.mean(ray_s)
    print(f"mean: local {local:.2f} s/job, Ray {ray_path:.2f} s/job; Ray / local = {ray_path / local:.3f} "
          f"({ray_path - local:+.2f} s per job; target under 1.10)")


if __name__ == "__main__":
    main()
