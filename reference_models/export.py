"""Exporting the reference models for other runtimes, and checking each export against PyTorch.

* ONNX comes straight from the PyTorch module (``torch.onnx`` dynamo exporter, opset 18).
* TFLite comes from the Keras twin (``keras_model.keras_from_torch``): Keras -> TF SavedModel ->
  ``TFLiteConverter``, in fp32, fp16 (fp16 weights, float I/O) or full int8 (int8 weights and
  activations, int8 input and output, as EdgeTPU and DSP delegates need). The int8 model is
  calibrated on data the caller passes; there is deliberately no default, because calibrating on
  random noise gives a model that looks fine and is quietly wrong on images.
* ``verify_onnx`` / ``verify_tflite`` run the file (onnxruntime / ``ai_edge_litert``) and compare
  its logits with the PyTorch module's: max abs diff, top-1 agreement, mean cosine similarity.
  ``verify_detector_onnx`` / ``verify_detector_tflite`` do the same for a detector's raw
  [n, anchors, 4 + classes] output (``compare_detections``: boxes and logits apart, correlations,
  top-k overlap of the highest logits).

Inputs are given as the suite's pre-processing makes them: float32 NCHW, ImageNet-normalised
(``layout="NHWC"`` accepts channels-last arrays too). The TFLite files themselves are NHWC.
Every framework is imported inside the function that needs it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The lowest opset torch.onnx's exporter implements natively; asking for 17 triggers a lossy down-conversion.
ONNX_OPSET = 18
TFLITE_PRECISIONS = ("fp32", "fp16", "int8")
LAYOUTS = ("NCHW", "NHWC")


def exporter_version() -> dict[str, str]:
    import torch

    return {"torch": torch.__version__}


def tflite_converter_version() -> dict[str, str]:
    """What produced a .tflite file (part of an artifact's cache key, like ``exporter_version``)."""
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__}


# --------------------------------------------------------------------------- comparing logits


@dataclass(frozen=True)
class Agreement:
    """How closely an export's logits follow the reference's over ``n`` inputs."""

    n: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float  # fraction of inputs with the same arg-max class
    top1_in_top5: float  # fraction whose reference arg-max is among the candidate's 5 largest logits
    mean_cosine: float  # mean over inputs of the cosine similarity of the two logit vectors
    min_cosine: float

    def describe(self, label: str = "") -> str:
        prefix = f"{label}: " if label else ""
        return (
            f"{prefix}n={self.n} max|diff|={self.max_abs_diff:.3g} mean|diff|={self.mean_abs_diff:.3g} "
            f"top1 agreement={self.top1_agreement:.1%} (in top5 {self.top1_in_top5:.1%}) "
            f"cosine mean={self.mean_cosine:.5f} min={self.min_cosine:.5f}"
        )


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    got = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
    if ref.shape != got.shape:
        raise ValueError(f"logit shapes differ: reference {ref.shape}, candidate {got.shape}")
    diff = np.abs(ref - got)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    cosine = np.sum(ref * got, axis=1) / np.maximum(norms, 1e-30)
    top5 = np.argsort(-got, axis=1)[:, :5]
    return Agreement(
        n=len(ref),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        top1_agreement=float(np.mean(ref.argmax(1) == got.argmax(1))),
        top1_in_top5=float(np.mean(np.any(top5 == ref.argmax(1)[:, None], axis=1))),
        mean_cosine=float(cosine.mean()),
        min_cosine=float(cosine.min()),
    )


@dataclass(frozen=True)
class DetectionAgreement:
    """How closely an export's raw detector output [n, anchors, 4 + classes] follows the reference's.

    Correlations are Pearson's (cosine after removing each image's mean): raw class logits all sit
    near the prior's -4.6, which would make a plain cosine close to 1 for any output at all.
    """

    n: int
    max_abs_diff: float  # over the whole output
    box_max_abs_diff: float
    logit_max_abs_diff: float
    logit_correlation: float  # mean over images
    logit_min_correlation: float
    box_correlation: float  # mean over images
    top_k: int
    top_k_overlap: float  # mean fraction of the reference's k highest (anchor, class) logits among the candidate's k

    def describe(self, label: str = "") -> str:
        prefix = f"{label}: " if label else ""
        return (
            f"{prefix}n={self.n} max|diff|={self.max_abs_diff:.3g} (boxes {self.box_max_abs_diff:.3g}, "
            f"logits {self.logit_max_abs_diff:.3g}) logit correlation mean={self.logit_correlation:.5f} "
            f"min={self.logit_min_correlation:.5f} box correlation={self.box_correlation:.5f} "
            f"top-{self.top_k} overlap={self.top_k_overlap:.1%}"
        )


def _correlations(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    ref = ref - ref.mean(axis=1, keepdims=True)
    got = got - got.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    return np.sum(ref * got, axis=1) / np.maximum(norms, 1e-30)


def compare_detections(
    reference: np.ndarray, candidate: np.ndarray, box_size: int = 4, top_k: int = 100
) -> DetectionAgreement:
    """Compare raw detector outputs [n, anchors, box_size + classes] (boxes first, then class logits)."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(candidate, dtype=np.float64)
    if ref.shape != got.shape or ref.ndim != 3 or ref.shape[2] <= box_size:
        raise ValueError(
            f"detector outputs must both be [n, anchors, {box_size} + classes]; got {ref.shape} and {got.shape}"
        )
    n = len(ref)
    ref_box, got_box = ref[..., :box_size].reshape(n, -1), got[..., :box_size].reshape(n, -1)
    ref_cls, got_cls = ref[..., box_size:].reshape(n, -1), got[..., box_size:].reshape(n, -1)
    logit_corr = _correlations(ref_cls, got_cls)
    k = min(top_k, ref_cls.shape[1])
    overlap = [
        len(np.intersect1d(np.argpartition(-r, k - 1)[:k], np.argpartition(-g, k - 1)[:k])) / k
        for r, g in zip(ref_cls, got_cls)
    ]
    return DetectionAgreement(
        n=n,
        max_abs_diff=float(np.abs(ref - got).max()),
        box_max_abs_diff=float(np.abs(ref_box - got_box).max()),
        logit_max_abs_diff=float(np.abs(ref_cls - got_cls).max()),
        logit_correlation=float(logit_corr.mean()),
        logit_min_correlation=float(logit_corr.min()),
        box_correlation=float(_correlations(ref_box, got_box).mean()),
        top_k=k,
        top_k_overlap=float(np.mean(overlap)),
    )


def print_agreement(agreement: Agreement, label: str = "") -> Agreement:
    print(agreement.describe(label))
    return agreement


def torch_logits(module, inputs: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """The reference: the PyTorch module's float32 logits for NCHW ``inputs``."""
    import torch

    module = module.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            out.append(module(torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size]))).numpy())
    return np.concatenate(out)


def _as_batch(inputs, layout: str, to: str) -> np.ndarray:
    """A float32 batch in layout ``to`` from ``inputs`` (array or iterable of arrays) in ``layout``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got '{layout}'")
    if hasattr(inputs, "shape"):  # one numpy array or torch tensor
        arrays = [np.asarray(inputs)]
    else:
        arrays = [np.asarray(a) for a in inputs]
    arrays = [a[None] if a.ndim == 3 else a for a in arrays]
    if not arrays or any(a.ndim != 4 for a in arrays):
        raise ValueError("inputs must be a non-empty array (or iterable of arrays) of images, rank 3 or 4")
    batch = np.concatenate(arrays).astype(np.float32, copy=False)
    if len(batch) == 0:
        raise ValueError("inputs hold no images")
    if layout != to:
        batch = batch.transpose(0, 2, 3, 1) if to == "NHWC" else batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch)


# --------------------------------------------------------------------------- ONNX


def export_onnx(
    module, input_shape: tuple[int, ...], path: Path, opset: int = ONNX_OPSET, dynamic_batch: bool = False
) -> Path:
    """Export `module` to a single self-contained ONNX file (weights inside, no external data)."""
    import logging
    import warnings

    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # its per-op chatter drowns the run's progress
    example = torch.zeros(input_shape, dtype=torch.float32)
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            module.eval(),
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=dynamic_shapes,
            external_data=False,
            verbose=False,
        )
    program.save(str(path), external_data=False)
    return Path(path)


def run_onnx(path: str | os.PathLike, inputs, layout: str = "NCHW", threads: int | None = None) -> np.ndarray:
    """Logits of an ONNX file on onnxruntime's CPU provider; a static batch-1 model is fed one by one."""
    import onnxruntime as ort

    batch = _as_batch(inputs, layout, "NCHW")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    step = len(batch) if not isinstance(spec.shape[0], int) else spec.shape[0]
    return np.concatenate(
        [session.run(None, {spec.name: batch[i : i + step]})[0] for i in range(0, len(batch), step)]
    )


def verify_onnx(module, path: str | os.PathLike, inputs, layout: str = "NCHW") -> Agreement:
    """onnxruntime's logits for ``path`` against the PyTorch ``module``'s."""
    batch = _as_batch(inputs, layout, "NCHW")
    return compare_logits(torch_logits(module, batch), run_onnx(path, batch))


# --------------------------------------------------------------------------- TFLite


@dataclass(frozen=True)
class TensorQuant:
    """One model input or output as the converter produced it; scale 0 means a float tensor."""

    name: str
    shape: tuple[int, ...]  # shape signature: -1 marks a dynamic (batch) dimension
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float -> this tensor's dtype (affine int8/uint8 quantization when quantized)."""
        dtype = np.dtype(self.dtype)
        if not self.quantized:
            return np.asarray(x, dtype=dtype)
        info = np.iinfo(dtype)
        q = np.round(np.asarray(x, dtype=np.float32) / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return np.asarray(q, dtype=np.float32)
        return ((np.asarray(q, dtype=np.float32) - self.zero_point) * self.scale).astype(np.float32)

    @classmethod
    def from_details(cls, d: dict[str, Any]) -> "TensorQuant":
        scale, zero_point = d["quantization"]
        return cls(
            name=d["name"],
            shape=tuple(int(s) for s in d.get("shape_signature", d["shape"])),
            dtype=np.dtype(d["dtype"]).name,
            scale=float(scale),
            zero_point=int(zero_point),
        )


@dataclass(frozen=True)
class TFLiteExport:
    """A converted model and what a caller needs to feed it: I/O dtypes and quantization."""

    path: Path
    precision: str
    input: TensorQuant
    output: TensorQuant
    seconds: float  # SavedModel export + conversion
    calibration_samples: int = 0
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def tflite_io(path: str | os.PathLike) -> tuple[TensorQuant, TensorQuant]:
    """(input, output) of a single-input, single-output .tflite file."""
    interpreter = _interpreter(path, num_threads=1)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    return TensorQuant.from_details(inp), TensorQuant.from_details(out)


def export_tflite(
    keras_model,
    path: str | os.PathLike,
    precision: str = "fp32",
    representative_data: Iterable[np.ndarray] | np.ndarray | None = None,
    layout: str = "NCHW",
    steps=None,
) -> TFLiteExport:
    """Convert a Keras model (e.g. ``keras_from_torch(module)``) to a .tflite file.

    ``precision``: "fp32"; "fp16" (fp16 weights, float32 input/output; CPUs dequantize the
    weights, GPU delegates compute in fp16); "int8" (full integer: int8 weights, activations,
    input and output). "int8" needs ``representative_data``: pre-processed images as the model
    will see them, float32, ``layout`` "NCHW" (the suite's pre-processing, default) or "NHWC",
    as one array [N, ...] or an iterable of arrays / single images. A few hundred real images are
    typical; every one is used. The returned ``TFLiteExport`` records the input/output dtypes and
    quantization parameters (``.input.quantize(x)``, ``.output.dequantize(y)``). ``steps``
    (``mnv4suite.progress.Steps``) shows each stage and the calibration sample count as they go.
    """
    import tensorflow as tf

    if precision not in TFLITE_PRECISIONS:
        raise ValueError(f"precision must be one of {TFLITE_PRECISIONS}, got '{precision}'")
    calibration = None
    if precision == "int8":
        if representative_data is None:
            raise ValueError(
                "int8 conversion needs representative_data: pre-processed images like the ones the model "
                "will run on (random noise gives wrong activation ranges)"
            )
        calibration = _as_batch(representative_data, layout, "NHWC")
        expected = tuple(keras_model.inputs[0].shape[1:])
        if calibration.shape[1:] != expected:
            raise ValueError(
                f"representative_data images are {calibration.shape[1:]} (after {layout} -> NHWC), "
                f"the model takes {expected}"
            )

    step = (lambda name, total=None: steps.step(name, total)) if steps is not None else _no_step
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mnv4-savedmodel-") as saved:
        with step("SavedModel export"):
            keras_model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if precision == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            # builtin int8 kernels only: a float fallback op would leave the model unusable on EdgeTPU/DSP
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        label = "conversion and int8 calibration, samples" if precision == "int8" else "conversion"
        with step(label, len(calibration) if calibration is not None else None) as running:
            if calibration is not None:
                def representative():
                    for sample in calibration:
                        yield [sample[None]]
                        running.advance()
                converter.representative_dataset = representative
            flatbuffer = converter.convert()
    seconds = time.perf_counter() - start
    path = Path(path)
    path.write_bytes(flatbuffer)
    inp, out = tflite_io(path)
    return TFLiteExport(
        path=path,
        precision=precision,
        input=inp,
        output=out,
        seconds=seconds,
        calibration_samples=0 if calibration is None else len(calibration),
        versions=tflite_converter_version(),
    )


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def _no_step(name: str, total: int | None = None):
    yield _Silent()


def _interpreter(path: str | os.PathLike, num_threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter  # tf.lite.Interpreter is deprecated

    interpreter = Interpreter(model_path=str(path), num_threads=num_threads or os.cpu_count() or 1)
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(path: str | os.PathLike, inputs, layout: str = "NCHW", num_threads: int | None = None) -> np.ndarray:
    """Float logits of a .tflite file for float ``inputs``: quantizes in and dequantizes out as needed.

    Runs with batch 1, one image at a time (the SingleStream shape every delegate supports).
    """
    batch = _as_batch(inputs, layout, "NHWC")
    interpreter = _interpreter(path, num_threads)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    qin, qout = TensorQuant.from_details(inp), TensorQuant.from_details(out)
    if tuple(inp["shape"][1:]) != batch.shape[1:]:
        raise ValueError(f"inputs are {batch.shape[1:]} (NHWC), the model takes {tuple(inp['shape'][1:])}")
    logits = []
    for image in batch:
        interpreter.set_tensor(inp["index"], qin.quantize(image[None]))
        interpreter.invoke()
        logits.append(qout.dequantize(interpreter.get_tensor(out["index"])))
    return np.concatenate(logits)


def verify_tflite(module, path: str | os.PathLike, inputs, layout: str = "NCHW") -> Agreement:
    """A .tflite file's (dequantized) logits against the PyTorch ``module``'s on the same inputs."""
    batch = _as_batch(inputs, layout, "NCHW")
    return compare_logits(torch_logits(module, batch), run_tflite(path, batch, layout="NCHW"))


def verify_detector_onnx(module, path: str | os.PathLike, inputs, layout: str = "NCHW") -> DetectionAgreement:
    """onnxruntime's raw detector output for ``path`` against the PyTorch detector ``module``'s."""
    batch = _as_batch(inputs, layout, "NCHW")
    return compare_detections(torch_logits(module, batch), run_onnx(path, batch))


def verify_detector_tflite(module, path: str | os.PathLike, inputs, layout: str = "NCHW") -> DetectionAgreement:
    """A .tflite detector's (dequantized) raw output against the PyTorch detector ``module``'s."""
    batch = _as_batch(inputs, layout, "NCHW")
    return compare_detections(torch_logits(module, batch), run_tflite(path, batch, layout="NCHW"))
