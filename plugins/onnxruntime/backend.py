"""ONNX Runtime on the CPU, running an ONNX export of the PyTorch reference model."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from mnv4suite.api import Artifact, Backend, PreparedModel, Session
from mnv4suite.reference_models.export import ONNX_OPSET, export_onnx, exporter_version


class OnnxRuntimeSession(Session):
    def __init__(self, path: str, provider: str, threads: int):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, sess_options=options, providers=[provider])
        used = self.session.get_providers()
        if provider not in used:  # never let ONNX Runtime silently pick another provider
            raise RuntimeError(f"ONNX Runtime did not enable {provider}; it offered {used}")
        self.input_name = self.session.get_inputs()[0].name
        self.accelerator = f"CPU (ONNX Runtime {provider}, {threads} threads)"

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: inputs})[0]


class OnnxRuntimeCPUBackend(Backend):
    provider = "CPUExecutionProvider"

    def versions(self) -> dict[str, str]:
        import onnx

        return {"onnxruntime": ort.__version__, "onnx": onnx.__version__, **exporter_version()}

    def prepare(self, model: PreparedModel, cache, calibration=None) -> Artifact:
        shape = model.spec.input_shape(1)
        key = {
            "model": model.spec.id,
            "weights": model.checksum,
            "precision": "fp32",
            "format": "onnx",
            "opset": ONNX_OPSET,
            "input_shape": shape,
            **exporter_version(),
        }
        path, digest, cached = cache.fetch_or_build(key, ".onnx", lambda tmp: export_onnx(model.module, shape, tmp))
        return Artifact(kind="onnx", path=path, sha256=digest, cached=cached, details={"opset": ONNX_OPSET})

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        return OnnxRuntimeSession(str(artifact.path), self.provider, threads=os.cpu_count() or 1)
