"""Precision on the host CPU: the best fp32, int8 and bf16 backend per model, side by side.

    python benchmarks/bench_precision.py [--models mnv4-conv-m,mnv4-conv-l] [--runs 50]

In one process, per model: trained-like weights (reference_models/probe_weights.py: measured BN
statistics, so every map is O(1) as in a trained network), each backend prepared exactly as a run
prepares it (the int8 backends calibrated on 128 photo-like procedural images), then the median of
`--runs` batch-1 inferences after warm-up. Agreement with fp32 PyTorch on 64 other photo-like
images: top-1 agreement and mean cosine of the logits. Target: the best int8 backend at least 2x
faster than the best fp32 one on Conv-M and Conv-L.

Then every latency against the host roofline's floor at its precision (mnv4suite.hostprobe: the
fastest GEMM of any library here, the best copy bandwidth), measured after the backends, in the same
process: a latency below its floor means the host profile is wrong; otherwise the share of the
ceiling each backend reaches.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from mnv4suite import hostprobe
from mnv4suite.api import CalibrationSet
from mnv4suite.cache import ArtifactCache
from mnv4suite.models import prepare_model
from mnv4suite.plugins.devices import model_layers
from mnv4suite.roofline import BYTES_PER_ELEMENT
from mnv4suite.reference_models.export import compare_logits
from mnv4suite.reference_models.probe_images import natural_images
from mnv4suite.reference_models.probe_weights import trained_like
from mnv4suite.registry import get_registry
from timing import median_ms  # benchmarks/timing.py, beside this script

BACKENDS = {
    "fp32": ("pytorch-cpu", "onnxruntime-cpu", "tflite-cpu"),
    "int8": ("onnxruntime-cpu-int8", "tflite-cpu-int8"),
    "bf16": ("pytorch-cpu-bf16",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mnv4-conv-m,mnv4-conv-l")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    registry = get_registry()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = ArtifactCache(Path(tmp))
        for model_id in args.models.split(","):
            spec = registry.models.get(model_id)
            model = prepare_model(spec)
            trained_like(model.module, spec.resolution, seed=0)
            model = type(model)(spec=model.spec, module=model.module, weights="trained-like (seed 0)",
                                checksum=f"trained-like-{model_id}")
            calibration = CalibrationSet(source="photo-like procedural images (seed 2)", synthetic=True,
                                         samples=list(natural_images(128, spec.resolution, seed=2)[:, None]))
            x, evaluation = natural_images(1, spec.resolution, seed=1), natural_images(64, spec.resolution, seed=3)
            with torch.inference_mode():
                reference = model.module(torch.from_numpy(evaluation)).numpy()
            found = {}
            for precision, backend_ids in BACKENDS.items():
                for backend_id in backend_ids:
                    backend = registry.backends.get(backend_id).create()
                    try:
                        artifact = backend.prepare(model, cache, calibration if precision == "int8" else None)
                    except RuntimeError as exc:  # the backend's own check refused its model: say so, go on
                        print(f"  {model_id} {backend_id}: refused by its export check: {exc}", flush=True)
                        continue
                    session = backend.load(artifact, model)
                    ms = median_ms(lambda: session.run(x), args.runs)
                    logits = np.concatenate([session.run(evaluation[i:i + 1]) for i in range(len(evaluation))])
                    found[backend_id] = (precision, ms, compare_logits(reference, logits))
                    print(f"  {model_id} {backend_id}: {ms:.2f} ms", flush=True)
            rows.append((model_id, found))

    print(f"\n{'model':<14} {'precision':<9} {'best backend':<22} {'ms':>7} {'fp32 / this':>12} "
          f"{'top-1 agree':>12} {'cosine':>8}")
    for model_id, found in rows:
        best = {p: min(((ms, b, a) for b, (q, ms, a) in found.items() if q == p)) for p in BACKENDS
                if any(q == p for q, _, _ in found.values())}
        fp32_ms = best["fp32"][0]
        for precision, (ms, backend_id, agreement) in best.items():
            print(f"{model_id:<14} {precision:<9} {backend_id:<22} {ms:>7.2f} {fp32_ms / ms:>11.2f}x "
                  f"{agreement.top1_agreement * 100:>11.1f}% {agreement.mean_cosine:>8.4f}")
    print("\nhost roofline floor (measured after the backends; its peaks and bandwidth):")
    figures = hostprobe.measure()
    for precision, macs, library in figures.peaks:
        print(f"  {precision}: {macs / 1e9:.0f} GMACs/s ({library})")
    print(f"  bandwidth {figures.bandwidth_bytes_per_s / 1e9:.1f} GB/s (best copy; "
          f"{figures.dram_bandwidth_bytes_per_s / 1e9:.1f} beyond the caches)")
    wrong = 0
    for model_id, found in rows:
        spec = registry.models.get(model_id)
        for backend_id, (precision, ms, _) in found.items():
            check = hostprobe.floor_check(model_layers(spec, BYTES_PER_ELEMENT[precision]), ms,
                                          hostprobe.measure_profile(precision))
            wrong += check.below_floor
            print(f"  {model_id} {backend_id}: {check.text()}")
    print("every latency is above its floor" if not wrong else f"{wrong} latencies below their floor: the profile is wrong")
    print("\nevery backend (ms, top-1 agreement with fp32 PyTorch):")
    for model_id, found in rows:
        print(f"  {model_id}: " + ", ".join(f"{b} {ms:.2f} ({a.top1_agreement * 100:.0f}%)"
                                            for b, (_, ms, a) in found.items()))


if __name__ == "__main__":
    main()
