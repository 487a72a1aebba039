"""Latency of each MNv4 model on every backend available here, side by side.

    python benchmarks/bench_backends.py [--models mnv4-conv-s,mnv4-conv-m] [--backends ...] [--seconds 3]

For each model: median batch-1 latency of every available backend's session (the object LoadGen
times), each backend's ratio to the fastest, and our `pytorch-cpu` against a plain eager PyTorch
loop on the same weights (target: faster than plain eager). Sessions are timed in one process,
interleaved in rounds, so machine noise hits all of them alike. Unavailable backends are listed
with the reason; their latency is never measured here.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from mnv4suite.api import Session
from mnv4suite.cache import ArtifactCache
from mnv4suite.models import prepare_model
from mnv4suite.registry import get_registry
from mnv4suite.worker import calibration_set


class PlainEager(Session):
    """What a user writes without the suite: the module, no_grad, NCHW."""

    accelerator = "plain eager"

    def __init__(self, module):
        self.module = module

    def run(self, inputs):
        with torch.no_grad():
            return self.module(torch.from_numpy(inputs)).numpy()


def time_rounds(sessions: dict[str, Session], x: np.ndarray, seconds: float, rounds: int = 5) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():  # warm-up
        for _ in range(5):
            session.run(x)
    for _ in range(rounds):
        for name, session in sessions.items():
            deadline = time.perf_counter() + seconds / rounds
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                session.run(x)
                times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mnv4-conv-s,mnv4-conv-m,mnv4-conv-l,mnv4-hybrid-m,mnv4-hybrid-l")
    parser.add_argument("--backends", default="", help="default: every backend available here")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per session and model")
    args = parser.parse_args()

    registry = get_registry()
    wanted = [b for b in args.backends.split(",") if b] or [b.id for b in registry.backends]
    available, missing = [], {}
    for backend_id in wanted:
        spec = registry.backends.get(backend_id)
        found = spec.probe()
        (available.append(spec) if found else missing.__setitem__(backend_id, found.explain()))
    for backend_id, why in missing.items():
        print(f"not measured: {backend_id}: {why}")

    task = registry.tasks.get("imagenet").create()
    cache = ArtifactCache()
    for model_id in args.models.split(","):
        model_spec = registry.models.get(model_id)
        model = prepare_model(model_spec)
        x = np.random.default_rng(0).standard_normal(model_spec.input_shape(1)).astype(np.float32)
        sessions: dict[str, Session] = {"plain eager (reference)": PlainEager(model.module)}
        for spec in available:
            backend = spec.create()
            if not backend.probe():
                continue
            calibration = calibration_set(task, model_spec, None, "imagenet") if spec.precision == "int8" else None
            try:
                sessions[spec.id] = backend.load(backend.prepare(model, cache, calibration), model)
            except Exception as exc:  # noqa: BLE001 - a benchmark reports and goes on
                print(f"{model_id} on {spec.id}: {type(exc).__name__}: {exc}")
        medians = {name: statistics.median(t) * 1e3 for name, t in time_rounds(sessions, x, args.seconds * len(sessions)).items()}
        fastest = min(v for k, v in medians.items() if k != "plain eager (reference)")
        print(f"\n{model_id} ({model_spec.resolution}px, {model_spec.macs / 1e9:.3f} GMACs)")
        print(f"  {'backend':<26} {'median ms':>10} {'x fastest':>10}")
        for name, ms in sorted(medians.items(), key=lambda kv: kv[1]):
            print(f"  {name:<26} {ms:>10.2f} {ms / fastest:>10.2f}")
        if "pytorch-cpu" in medians:
            ratio = medians["pytorch-cpu"] / medians["plain eager (reference)"]
            print(f"  pytorch-cpu / plain eager = {ratio:.3f}  (target < 1: faster than plain eager)")


if __name__ == "__main__":
    main()
