"""int8 QDQ models from the fp32 ONNX export, calibrated on the task's data.

Two recipes share the calibration reader: QNN's (``qnn.py``: ``get_qnn_qdq_config``, what the Hexagon HTP
accepts) and the host CPU's (here): uint8 asymmetric activations and int8 symmetric per-channel weights
(U8S8), MinMax ranges, every op the quantizer knows except the stem conv. ONNX Runtime fuses the Q/DQ pairs around Conv, MatMul
and Gemm into integer kernels from MLAS, which use AVX-512 VNNI or AMX int8 where the CPU has them. On
x86-64 CPUs without VNNI, U8S8 can saturate in the 16-bit intermediate sums of the AVX2 kernels; the
artifact records the recipe and the fp32-vs-int8 agreement is measured by ``benchmarks/bench_precision.py``.

The stem conv stays fp32: with 3 input channels MLAS's int8 im2col path is about 2.7x slower than its
fp32 conv there (1.05 vs 0.39 ms for MNv4-Conv-M at 256 px, 2 cores), and the first layer is where int8
loses the most accuracy.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mnv4suite.api import Artifact, CalibrationSet, PreparedModel
from mnv4suite.errors import UserError
from mnv4suite.reference_models.export import ONNX_OPSET, exporter_version

#: How the host-CPU int8 model is made; part of its cache key and recorded in the result.
CPU_QUANTIZATION = {
    "format": "QDQ",
    "tool": "onnxruntime.quantization.quantize_static after quant_pre_process",
    "activations": "QUInt8 (asymmetric, per tensor)",
    "weights": "QInt8 (symmetric, per channel)",
    "per_channel": True,
    "reduce_range": False,
    "calibrate_method": "MinMax",
    "kept_fp32": "the stem conv (the one reading the image)",
}


class SamplesReader:
    """An onnxruntime ``CalibrationDataReader`` over the calibration set's NCHW float32 samples, in
    batches of ``batch`` (the model's fixed batch size; the last batch repeats its final sample,
    which leaves MinMax ranges unchanged)."""

    def __init__(self, input_name: str, samples: list[np.ndarray], batch: int = 1):
        self.input_name = input_name
        self.samples = samples
        self.batch = batch
        self.index = 0

    def get_next(self):
        if self.index >= len(self.samples):
            return None
        chunk = [s if s.ndim == 4 else s[None] for s in self.samples[self.index:self.index + self.batch]]
        chunk += chunk[-1:] * (self.batch - len(chunk))
        self.index += self.batch
        return {self.input_name: np.ascontiguousarray(np.concatenate(chunk), dtype=np.float32)}

    def rewind(self) -> None:
        self.index = 0


def reader(input_name: str, samples: list[np.ndarray], batch: int = 1):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(SamplesReader, CalibrationDataReader):
        pass

    return Reader(input_name, samples, batch)


@contextlib.contextmanager
def quiet_root_logger():
    """quantize_static logs a generic "consider pre-processing" warning on the root logger for every model."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_cpu(fp32_path: Path, out_path: Path, samples: list[np.ndarray], batch: int = 1) -> None:
    """The host CPU's int8 QDQ model (CPU_QUANTIZATION) from an fp32 ONNX file."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not samples:
        raise UserError("int8 quantization needs calibration samples; the calibration set is empty")
    with tempfile.TemporaryDirectory(prefix="mnv4suite-int8-") as tmp:
        source = Path(tmp) / "preprocessed.onnx"
        with quiet_root_logger():
            quant_pre_process(str(fp32_path), str(source), skip_symbolic_shape=True)
            graph = onnx.load(str(source), load_external_data=False).graph
            input_name = graph.input[0].name
            stem = [n.name for n in graph.node if n.op_type == "Conv" and input_name in n.input][:1]
            quantize_static(
                str(source), str(out_path), reader(input_name, samples, batch),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                use_external_data_format=False, nodes_to_exclude=stem,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )


def cpu_int8_artifact(model: PreparedModel, cache, calibration: CalibrationSet | None, backend_id: str,
                      batch: int = 1) -> Artifact:
    """The int8 model at a fixed batch size (batched Offline quantizes the batch-N export)."""
    from .backend import fp32_onnx_artifact

    if calibration is None or not calibration.samples:
        raise UserError(f"{backend_id} quantizes to int8 and needs a calibration set from the task's data")
    fp32 = fp32_onnx_artifact(model, cache, batch)
    key = {
        "model": model.spec.id,
        "weights": model.checksum,
        "precision": "int8",
        "format": "onnx-qdq",
        "target": "cpu",
        "opset": ONNX_OPSET,
        "input_shape": model.spec.input_shape(batch),
        "fp32_onnx_sha256": fp32.sha256,
        "quantization": CPU_QUANTIZATION,
        "quantizer": {"onnxruntime": ort.__version__},
        "calibration": calibration.digest,
        **exporter_version(),
    }
    path, digest, cached = cache.fetch_or_build(key, ".onnx", lambda tmp: quantize_cpu(fp32.path, tmp, calibration.samples, batch))
    return Artifact(kind="onnx-qdq-int8", path=path, sha256=digest, cached=cached,
                    details={"opset": ONNX_OPSET, "quantization": CPU_QUANTIZATION,
                             "calibration": calibration.describe(),
                             "fp32_onnx": {"path": str(fp32.path), "sha256": fp32.sha256}})
