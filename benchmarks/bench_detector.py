"""RetinaNet-MNv4 detectors: params and GMACs next to the paper's Table 7, the split into backbone /
FPN / heads, and how closely the ONNX and TFLite exports follow PyTorch.

    python benchmarks/bench_detector.py [--exports retinanet-mnv4-conv-m,...] [--backbone-weights DIR]
                                        [--calibration 32] [--runs 10]

Counts come from shapes on torch's meta device (80 classes, 384 px). "Table 7 convention" is the
same model counted the way the paper's Table 7 counts it (``counting.table7_convention``: Keras
weights of the TF Model Garden model, with its unused 960/1280 convs, BN moving statistics and a
91-class predictor).

No trained detector exists, so the export checks use trained-like random weights: BatchNorm
statistics measured on photo-like procedural images, predictor weights N(0, 0.02), softer attention
queries; with ``--backbone-weights DIR`` holding timm checkpoints (``mobilenetv4_conv_medium.safetensors``
or ``.weights.safetensors``...) the backbone is the real ImageNet one and only FPN and heads are random.
int8 is calibrated on ``--calibration`` such images and compared on 16 others. Correlations are
Pearson's (the raw cosine of logits near the prior's -4.6 is ~0.99 for any output). Latency: batch 1,
median of ``--runs`` runs after warm-up, on this machine's CPU.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from mnv4suite.reference_models import catalog
from mnv4suite.reference_models.counting import detector_costs, table7_convention
from mnv4suite.reference_models.detectors import DETECTOR_DEFS
from mnv4suite.reference_models.probe_images import natural_images
from mnv4suite.reference_models.probe_weights import trained_like_detector
from mnv4suite.reference_models.retinanet import create_detector, load_backbone_weights
from mnv4suite.reference_models.specs import TIMM_NAMES
from timing import median_ms  # benchmarks/timing.py, beside this script


def counts_table() -> None:
    print(f"{'detector':<24} {'params':>10} {'GMACs':>7}   {'Table 7':>14}   {'diff':>14}   "
          f"{'Table 7 convention':>19}")
    for detector_id in DETECTOR_DEFS:
        costs = detector_costs(detector_id)
        params_m, gmacs = costs.report.params / 1e6, costs.report.macs / 1e9
        published = catalog.PUBLISHED_DETECTORS.get(detector_id)
        if published:
            paper = f"{published['params_m']:.2f}M {published['gmacs']:.2f}G"
            diff = f"{params_m / published['params_m'] - 1:+.1%} {gmacs / published['gmacs'] - 1:+.1%}"
            conv = table7_convention(detector_id)
            convention = f"{conv.table7_params / 1e6:.3f}M {conv.table7_macs / 1e9:.3f}G"
        else:
            paper, diff, convention = "-", "-", "-"
        print(f"{detector_id:<24} {params_m:>9.3f}M {gmacs:>7.3f}   {paper:>14}   {diff:>14}   {convention:>19}")

    print(f"\n{'detector':<24} {'backbone params / GMACs':>25} {'FPN params / GMACs':>22} {'heads params / GMACs':>22}")
    for detector_id in DETECTOR_DEFS:
        parts = detector_costs(detector_id).parts
        cells = [f"{p / 1e6:.3f}M / {m / 1e9:.3f}" for p, m in (parts[k] for k in ("backbone", "fpn", "head"))]
        print(f"{detector_id:<24} {cells[0]:>25} {cells[1]:>22} {cells[2]:>22}")

    conv = table7_convention("retinanet-mnv4-conv-m")
    print("\nWhat Table 7's count adds (Conv-M), params / MACs:")
    for item, (params, macs) in conv.items.items():
        print(f"  {item:<68} {params:>10,} {macs / 1e9:>8.4f} G")


def export_checks(detector_id: str, backbone_weights: Path | None, calibration: int, runs: int) -> None:
    import onnxruntime as ort

    from mnv4suite.api import CalibrationSet, PreparedModel
    from mnv4suite.plugins.tflite.convert import convert
    from mnv4suite.reference_models.export import compare_detections, export_onnx, run_onnx, run_tflite, torch_logits

    det = DETECTOR_DEFS[detector_id]
    model = create_detector(detector_id)
    checkpoint = None
    if backbone_weights:
        names = [f"{TIMM_NAMES[det.backbone]}{s}" for s in (".safetensors", ".weights.safetensors")]
        checkpoint = next((backbone_weights / n for n in names if (backbone_weights / n).exists()), None)
    if checkpoint:
        load_backbone_weights(model, checkpoint)
    trained_like_detector(model, seed=0, backbone=checkpoint is None)
    spec = next(s for s in catalog.model_specs() if s.id == detector_id)
    prepared = PreparedModel(spec=spec, module=model, weights="randomised", checksum="0" * 64)
    res = det.resolution
    images = natural_images(16, res, seed=3)
    x = images[:1]
    reference = torch_logits(model, images)
    print(f"\n{detector_id} (backbone: {checkpoint or 'random'})")
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        folder = Path(tmp)
        rows = [("pytorch fp32", median_ms(lambda: model(torch.from_numpy(x)), runs), None)]
        onnx_path = export_onnx(model, (1, 3, res, res), folder / "m.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        rows.append(("onnxruntime fp32", median_ms(lambda: session.run(None, {"input": x}), runs),
                     compare_detections(reference, run_onnx(onnx_path, images))))
        samples = list(natural_images(calibration, res, seed=2)[:, None])
        for precision in ("fp32", "int8"):
            path = folder / f"{precision}.tflite"
            calib = CalibrationSet("procedural images", True, samples) if precision == "int8" else None
            convert(prepared, precision, path, calib)
            agreement = compare_detections(reference, run_tflite(path, images))
            rows.append((f"tflite {precision}", tflite_ms(path, x, runs), agreement))
    for label, ms, agreement in rows:
        line = f"  {label:<17} {ms:8.1f} ms"
        print(line + (f"   {agreement.describe()}" if agreement else ""))


def tflite_ms(path: Path, x: np.ndarray, runs: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    from mnv4suite.reference_models.export import tflite_io

    interpreter = Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    qin, _ = tflite_io(path)
    nhwc = qin.quantize(x.transpose(0, 2, 3, 1))

    def run():
        interpreter.set_tensor(inp["index"], nhwc)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return median_ms(run, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exports", default="retinanet-mnv4-conv-m,retinanet-mnv4-hybrid-m",
                        help="detectors whose exports are checked (comma-separated; empty: none)")
    parser.add_argument("--backbone-weights", type=Path, help="folder with timm .safetensors classifier checkpoints")
    parser.add_argument("--calibration", type=int, default=32)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per latency (0: no timing)")
    args = parser.parse_args()

    counts_table()
    for detector_id in filter(None, args.exports.split(",")):
        export_checks(detector_id, args.backbone_weights, args.calibration, args.runs)


if __name__ == "__main__":
    main()
