"""From the PyTorch reference to a cached .tflite file: Keras twin -> TF SavedModel -> TFLiteConverter.

The conversion itself is ``reference_models.export.export_tflite`` on the Keras twin
(``keras_model.keras_from_torch``); this module adds what a backend needs around it:

* a **static batch of 1**: ``export_tflite`` hands Keras' exporter no input signature, so the file
  gets a dynamic batch (shape signature ``[-1, H, W, 3]``). ``edgetpu_compiler`` refuses such graphs
  ("Attempting to use a delegate that only supports static-sized tensors with a graph that has
  dynamic-sized tensors") and the GPU and Hexagon delegates want static shapes too. ``StaticBatch``
  gives the exporter the signature ``[1, H, W, 3]``; every session here runs batch 1 (SingleStream);
* the **artifact cache** key: model id, weight checksum, precision, input shape, converter versions
  (tensorflow, keras), the twin's own source, and for int8 the calibration set's digest;
* the **artifact details**: input/output dtype and quantization, the ops in the file, the calibration.

TensorFlow and Keras are imported only when a file is actually converted; a cache hit needs neither.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mnv4suite.api import Artifact, CalibrationSet, PreparedModel
from mnv4suite.errors import UserError
from mnv4suite.reference_models.detectors import DETECTOR_DEFS
from mnv4suite.reference_models.specs import MODEL_DEFS

#: Bump when the recipe below changes in a way that changes the files (it is part of every cache key).
RECIPE = 1
BATCH = 1
#: Source files whose code decides what the converted file holds.
TWIN_SOURCES = (
    "mnv4suite.reference_models.keras_model",
    "mnv4suite.reference_models.keras_blocks",
    "mnv4suite.reference_models.specs",
    "mnv4suite.reference_models.export",
    "mnv4suite.reference_models.keras_retinanet",
    "mnv4suite.reference_models.detectors",
)
#: Distributions whose versions are looked up for the converter (the first installed name counts).
CONVERTER_DISTRIBUTIONS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly", "tensorflow-intel"),
    "keras": ("keras", "keras-nightly"),
}
RUNTIME_DISTRIBUTION = "ai-edge-litert"
#: What each precision means for the file, recorded in the artifact details.
PRECISION_NOTES = {
    "fp32": "float32 weights and activations, float32 input/output",
    "fp16": "float16 weights (dequantized to float32 by CPU kernels; GPU delegates compute in fp16), float32 input/output",
    "int8": "full integer: int8 weights (per channel) and activations, int8 input and output",
}


def distribution_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def converter_versions() -> dict[str, str]:
    """tensorflow and keras versions from package metadata (importing TensorFlow takes seconds)."""
    return {key: distribution_version(*names) or "not installed" for key, names in CONVERTER_DISTRIBUTIONS.items()}


def runtime_version() -> str:
    return distribution_version(RUNTIME_DISTRIBUTION) or "not installed"


def twin_source_digest() -> str:
    """sha256 over the source of the Keras twin, its block specs and the exporter, read without importing them."""
    h = hashlib.sha256()
    for module in TWIN_SOURCES:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin:
            raise UserError(f"{module} is missing from this installation of mnv4suite (reinstall the package)")
        h.update(module.encode())
        h.update(Path(spec.origin).read_bytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- which models


def twin_models() -> tuple[str, ...]:
    """Models with a Keras twin: the five MobileNetV4s and their RetinaNet detectors (the V1/V2/V3
    baselines have none yet)."""
    return (*MODEL_DEFS, *DETECTOR_DEFS)


def require_twin(model_id: str, backend_id: str) -> None:
    supported = twin_models()
    if model_id not in supported:
        raise UserError(
            f"{backend_id} converts models to TFLite through their Keras twin, which exists only for "
            f"{', '.join(supported)}; '{model_id}' has none. Run '{model_id}' on pytorch-cpu or onnxruntime-cpu, "
            f"or pick one of those models"
        )


def require_calibration(calibration: CalibrationSet | None, model: PreparedModel, backend_id: str) -> CalibrationSet:
    if calibration is None or not calibration.samples:
        raise UserError(
            f"{backend_id} quantizes {model.spec.id} to full int8 and needs a calibration set of pre-processed "
            f"images from the task's data (mnv4suite run passes one; calling prepare() directly, pass "
            f"calibration=CalibrationSet(...)); int8 is never calibrated on random noise"
        )
    expected = model.spec.input_shape(1)
    shapes = {tuple(np.shape(s)) for s in calibration.samples}
    if shapes != {expected}:
        raise UserError(
            f"calibration samples for {model.spec.id} must be NCHW float32 {expected}; got {sorted(shapes)} "
            f"from {calibration.source}"
        )
    return calibration


# --------------------------------------------------------------------------- conversion


class StaticBatch:
    """A Keras model as ``export_tflite`` sees it, exported with a static batch of ``batch``.

    ``export_tflite`` reads ``.inputs`` and calls ``.export(path, format=..., verbose=...)``; this
    adds Keras' ``input_signature`` so that the SavedModel, and with it the .tflite file, has the
    static input shape [batch, H, W, 3] instead of [None, H, W, 3].
    """

    def __init__(self, model, batch: int = BATCH):
        import keras

        self.model = model
        self.inputs = model.inputs
        shape = (batch, *tuple(model.inputs[0].shape[1:]))
        self.input_signature = [keras.InputSpec(shape=shape, dtype="float32", name="input")]

    def export(self, filepath, format="tf_saved_model", verbose=None, **kwargs):  # noqa: A002 - Keras' name
        kwargs.setdefault("input_signature", self.input_signature)
        return self.model.export(filepath, format=format, verbose=verbose, **kwargs)


@contextlib.contextmanager
def native_stderr_held_back():
    """Hold back what native code writes to stderr (TensorFlow's start-up and converter chatter, which no
    environment variable silences in TF 2.21); replay it only when the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, errors="replace")  # for the user: progress
    held = tempfile.TemporaryFile()
    os.dup2(held.fileno(), 2)
    failed = False
    try:
        yield terminal
    except BaseException:
        failed = True
        raise
    finally:
        sys.stderr.flush()
        terminal.close()
        os.dup2(saved, 2)
        os.close(saved)
        if failed:
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace")[-20000:])
            sys.stderr.flush()
        held.close()


def cache_key(model: PreparedModel, precision: str, calibration: CalibrationSet | None) -> dict[str, Any]:
    h = w = model.spec.resolution
    key: dict[str, Any] = {
        "model": model.spec.id,
        "weights": model.checksum,
        "precision": precision,
        "format": "tflite",
        "input_shape": [BATCH, h, w, 3],  # NHWC, static
        "recipe": RECIPE,
        "converter": converter_versions(),
        "twin_source": twin_source_digest(),
    }
    if precision == "int8":
        key["calibration"] = calibration.digest
        key["calibration_samples"] = len(calibration.samples)
    return key


def convert(model: PreparedModel, precision: str, path: Path, calibration: CalibrationSet | None) -> dict[str, float]:
    """Write the .tflite file for ``model`` at ``path``, each step shown as it goes; returns its seconds."""
    from mnv4suite.progress import Steps

    with native_stderr_held_back() as terminal:
        steps = Steps(f"{precision} TFLite of {model.spec.id}", terminal)
        with steps.step("TensorFlow import and Keras twin"):
            from mnv4suite.reference_models.export import export_tflite
            from mnv4suite.reference_models.keras_model import keras_from_torch

            twin = keras_from_torch(model.module, model.spec.id)
        samples = calibration.samples if precision == "int8" else None
        try:
            export_tflite(StaticBatch(twin), path, precision, samples, layout="NCHW", steps=steps)
        except ValueError as exc:  # the exporter's checks of the calibration data
            raise UserError(f"cannot convert {model.spec.id} to {precision} TFLite: {exc}") from exc
    return {re.sub(r"\W+", "_", name.lower()).strip("_") + "_s": seconds for name, seconds in steps.seconds.items()}


# --------------------------------------------------------------------------- what is in a file


def tensor_info(quant) -> dict[str, Any]:
    return {"name": quant.name, "shape": list(quant.shape), "dtype": quant.dtype, "scale": quant.scale,
            "zero_point": quant.zero_point, "quantized": quant.quantized}


def op_census(path: Path) -> dict[str, int]:
    """How many ops of each type the file holds (read with the builtin kernels, no delegate applied)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path), num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops = interpreter._get_ops_details()  # noqa: SLF001 - the only op listing LiteRT's Python API has
    return dict(Counter(op["op_name"] for op in ops))


def tflite_artifact(model: PreparedModel, cache, precision: str, backend_id: str,
                    calibration: CalibrationSet | None = None) -> Artifact:
    """The cached .tflite file of ``model`` at ``precision`` (int8: calibrated on ``calibration``)."""
    require_twin(model.spec.id, backend_id)
    if precision == "int8":
        calibration = require_calibration(calibration, model, backend_id)
    key = cache_key(model, precision, calibration)
    timings: dict[str, float] = {}

    def build(tmp: Path) -> None:
        timings.update(convert(model, precision, tmp, calibration))

    path, digest, cached = cache.fetch_or_build(key, ".tflite", build)
    from mnv4suite.reference_models.export import tflite_io

    inp, out = tflite_io(path)
    details: dict[str, Any] = {
        "format": "tflite",
        "precision": precision,
        "quantization": PRECISION_NOTES[precision],
        "converter": "keras_from_torch twin -> Keras export (tf_saved_model, static batch 1) -> tf.lite.TFLiteConverter",
        "converter_versions": key["converter"],
        "twin_source_sha256": key["twin_source"],
        "layout": "NHWC file; the session transposes the suite's NCHW input",
        "input": tensor_info(inp),
        "output": tensor_info(out),
        "size_bytes": path.stat().st_size,
        "ops": op_census(path),
    }
    if timings:
        details["build_seconds"] = timings
    if precision == "int8":
        details["calibration"] = calibration.describe()
    return Artifact(kind="tflite", path=path, sha256=digest, cached=cached, details=details)
