"""pytorch-cuda against a bare CUDA-graph loop of the same model, on an NVIDIA GPU.

    python benchmarks/bench_cuda.py [--models mnv4-conv-s,...] [--preset rapid] [--offline-batch 256]

Per model, in one process:
* SingleStream: the p50 of one LoadGen test through the harness on `pytorch-cuda`, against the
  p50 of a bare loop written here with plain torch calls (pinned host buffers, copy in, replay,
  copy out, synchronize: the same work a query needs, none of the suite's code), and the p50 of
  plain eager calls, the way the backend ran before it replayed graphs. Target: suite / bare
  under 1.15.
* Offline: samples/s of one LoadGen Offline test on `pytorch-cuda-fp16` at `--offline-batch`,
  against a bare batched replay loop of the same session. Target: suite / bare above 0.8.

Without a CUDA GPU it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mnv4suite import harness
from mnv4suite.cache import ArtifactCache
from mnv4suite.models import prepare_model
from mnv4suite.plugins.pytorch.backend import set_ieee_fp32
from mnv4suite.plugins.pytorch.optimize import optimize_for_inference
from mnv4suite.registry import get_registry
from mnv4suite.run_rules import Seeds, get_preset

MODELS = "mnv4-conv-s,mnv4-conv-m,mnv4-conv-l,mnv4-hybrid-m,mnv4-hybrid-l"


def p50_ms(fn, seconds: float, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def bare_graph_query(module: torch.nn.Module, shape: tuple[int, ...]):
    """One query's work written out with plain torch: the loop the backend must not be slower than."""
    device = torch.device("cuda")
    host_in = torch.empty(shape, pin_memory=True)
    dev_in = torch.zeros(shape, device=device)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(stream):
        for _ in range(3):
            module(dev_in.contiguous(memory_format=torch.channels_last))
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph, stream=stream):
        dev_out = module(dev_in.contiguous(memory_format=torch.channels_last))
    host_out = torch.empty(dev_out.shape, pin_memory=True)
    sample = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

    def query() -> np.ndarray:
        host_in.numpy()[...] = sample
        with torch.cuda.stream(stream):
            dev_in.copy_(host_in, non_blocking=True)
            graph.replay()
            host_out.copy_(dev_out, non_blocking=True)
        stream.synchronize()
        return host_out.numpy().copy()

    return query


def eager_query(module: torch.nn.Module, shape: tuple[int, ...]):
    sample = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

    def query() -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(sample).cuda().contiguous(memory_format=torch.channels_last)
            return module(x).cpu().numpy()

    return query


def harness_test(session, dataset, task, scenario: str, preset: str, batch: int = 1) -> harness.HarnessReport:
    harness.measure_warmup(session, dataset, runs=20, batch=batch)
    dataset.load(range(len(dataset)))
    with tempfile.TemporaryDirectory() as logs:
        settings = harness.HarnessSettings(scenario=scenario, mode="performance", preset=get_preset(preset),
                                           seeds=Seeds(), log_dir=Path(logs), progress=False, batch=batch)
        return harness.run_test(session, dataset, lambda out, i: task.encode(out, i, dataset), settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--preset", default="rapid")
    parser.add_argument("--offline-batch", type=int, default=256)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda}): nothing to measure")
        return 2

    registry = get_registry()
    task = registry.tasks.get("imagenet").create()
    seconds = get_preset(args.preset).min_duration_ms / 1000
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, preset {args.preset}")
    print(f"{'model':<14} {'eager p50':>10} {'bare graph':>11} {'suite p50':>10} {'suite/bare':>10}   "
          f"{'fp16 b' + str(args.offline_batch) + ' bare':>15} {'suite':>10} {'suite/bare':>10}")
    for name in args.models.split(","):
        spec = registry.models.get(name)
        model = prepare_model(spec)
        dataset = task.dataset(spec, None)
        dataset.load(range(len(dataset)))
        set_ieee_fp32()
        torch.backends.cudnn.benchmark = True
        module, _ = optimize_for_inference(model.module)
        module = module.cuda()
        eager = p50_ms(eager_query(module, spec.input_shape(1)), seconds)
        bare_before = p50_ms(bare_graph_query(module, spec.input_shape(1)), seconds)

        fp32 = registry.backends.get("pytorch-cuda").create()
        session = fp32.load(fp32.prepare(model, ArtifactCache()), model)
        single = harness_test(session, dataset, task, "SingleStream", args.preset)
        bare_after = p50_ms(bare_graph_query(module, spec.input_shape(1)), seconds)
        bare = statistics.fmean([bare_before, bare_after])
        suite = single.latency["p50_ms"]

        fp16 = registry.backends.get("pytorch-cuda-fp16").create()
        fp16.batch = args.offline_batch
        half = fp16.load(fp16.prepare(model, ArtifactCache()), model)
        batch_input = np.random.default_rng(0).standard_normal(spec.input_shape(args.offline_batch)).astype(np.float32)
        batch_ms = p50_ms(lambda: half.run(batch_input), seconds)
        offline = harness_test(half, dataset, task, "Offline", args.preset, batch=args.offline_batch)
        bare_rate = args.offline_batch / (batch_ms / 1e3)
        rate = offline.latency["samples_per_s"]
        print(f"{name:<14} {eager:8.3f}ms {bare:9.3f}ms {suite:8.3f}ms {suite / bare:10.3f}   "
              f"{bare_rate:13.0f}/s {rate:8.0f}/s {rate / bare_rate:10.3f}   "
              f"({single.validity['result']}, {offline.validity['result']})")
        del session, half, module
        torch.cuda.empty_cache()
    print("targets: SingleStream suite/bare < 1.15; Offline fp16 suite/bare > 0.8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
