"""Per model: PyTorch eager CPU latency next to its exports, and the int8 TFLite agreement.

    python benchmarks/bench_exports.py [--models mnv4-conv-s,...] [--weights DIR] [--runs 50]

Batch 1, median of `--runs` timed runs after warm-up, all in one process. The int8 model is
calibrated on photo-like procedural images (no dataset here) and compared with fp32 PyTorch on
other such images: top-1 agreement and mean cosine similarity of the logits. With `--weights DIR`
holding timm checkpoints (`mobilenetv4_conv_small.safetensors` or `.weights.safetensors`, ...) the models use real weights.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from mnv4suite.reference_models import create_model
from mnv4suite.reference_models.export import compare_logits, export_onnx, export_tflite, run_tflite, torch_logits
from mnv4suite.reference_models.keras_model import keras_from_torch
from mnv4suite.reference_models.probe_images import natural_images
from mnv4suite.reference_models.specs import TIMM_NAMES, get_model_def
from timing import median_ms  # benchmarks/timing.py, beside this script


def tflite_runner(export, x: np.ndarray):
    """One interpreter, reused: what a backend session does (quantize in, invoke, dequantize out)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(export.path), num_threads=2)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    nhwc = x.transpose(0, 2, 3, 1)

    def run():
        interpreter.set_tensor(inp["index"], export.input.quantize(nhwc))
        interpreter.invoke()
        return export.output.dequantize(interpreter.get_tensor(out["index"]))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mnv4-conv-s,mnv4-conv-m,mnv4-hybrid-m,mnv4-conv-l,mnv4-hybrid-l")
    parser.add_argument("--weights", type=Path, help="folder with timm .safetensors checkpoints")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--calibration", type=int, default=64)
    args = parser.parse_args()

    print(f"{'model':<14} {'torch ms':>9} {'onnxrt ms':>10} {'tflite fp32 ms':>15} {'int8 ms':>8} "
          f"{'int8 top-1 agree':>17} {'int8 cosine':>12}  weights")
    for model_id in args.models.split(","):
        res = get_model_def(model_id).resolution
        candidates = [args.weights / f"{TIMM_NAMES[model_id]}{suffix}" for suffix in (".safetensors", ".weights.safetensors")] if args.weights else []
        checkpoint = next((c for c in candidates if c.exists()), None)
        weights = checkpoint
        torch.manual_seed(0)
        module = create_model(model_id, weights=weights)
        x = natural_images(1, res, seed=1)
        calib, evaluation = natural_images(args.calibration, res, seed=2), natural_images(32, res, seed=3)
        with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
            t_torch = median_ms(lambda: module(torch.from_numpy(x)), args.runs)
            onnx_path = export_onnx(module, (1, 3, res, res), Path(tmp) / "m.onnx")
            import onnxruntime as ort

            sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            t_onnx = median_ms(lambda: sess.run(None, {"input": x}), args.runs)
            keras_model = keras_from_torch(module, model_id)
            fp32 = export_tflite(keras_model, Path(tmp) / "fp32.tflite", "fp32")
            int8 = export_tflite(keras_model, Path(tmp) / "int8.tflite", "int8", representative_data=calib)
            t_fp32 = median_ms(tflite_runner(fp32, x), args.runs)
            t_int8 = median_ms(tflite_runner(int8, x), args.runs)
            agreement = compare_logits(torch_logits(module, evaluation), run_tflite(int8.path, evaluation))
        print(f"{model_id:<14} {t_torch:>9.2f} {t_onnx:>10.2f} {t_fp32:>15.2f} {t_int8:>8.2f} "
              f"{agreement.top1_agreement * 100:>16.1f}% {agreement.mean_cosine:>12.3f}  "
              f"{'timm ' + checkpoint.name if weights else 'seeded random init'}")


if __name__ == "__main__":
    main()
