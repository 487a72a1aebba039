"""ONNX Runtime on the CPU and on NVIDIA GPUs (CUDA), running an ONNX export of the PyTorch reference model.

Both run the same fp32 file (one cache entry). The CUDA session records which execution provider
ORT assigned every node to, and reports the nodes left on the CPU in ``cpu_fallback_ops``: nothing
falls back silently.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mnv4suite.api import Artifact, Availability, Backend, PreparedModel, Session
from mnv4suite.errors import UnavailableError
from mnv4suite.plugins.onnxruntime import probes
from mnv4suite.reference_models.export import ONNX_OPSET, export_onnx, exporter_version

#: Session config keys (onnxruntime_session_options_config_keys.h).
RECORD_ASSIGNMENT = "session.record_ep_graph_assignment_info"
DISABLE_CPU_FALLBACK = "session.disable_cpu_ep_fallback"
CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def fp32_onnx_artifact(model: PreparedModel, cache, batch: int = 1) -> Artifact:
    """The fp32 ONNX export of the reference model at a fixed batch size, cached by everything it depends on."""
    shape = model.spec.input_shape(batch)
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
    return Artifact(kind="onnx", path=path, sha256=digest, cached=cached,
                    details={"opset": ONNX_OPSET, "input_shape": list(shape)})


def assigned_nodes(session: "ort.InferenceSession") -> dict[str, list[str]]:
    """Execution provider -> its nodes as "OpType (node name)", from ORT's recorded graph partitioning.

    Needs the session option ``session.record_ep_graph_assignment_info`` = "1"."""
    out: dict[str, list[str]] = {}
    for subgraph in session.get_provider_graph_assignment_info():
        out.setdefault(subgraph.ep_name, []).extend(f"{n.op_type} ({n.name})" for n in subgraph.get_nodes())
    return out


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
        self.threads = threads
        self.accelerator = f"CPU (ONNX Runtime {provider}, {threads} threads)"

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: inputs})[0]


class OnnxRuntimeCPUBackend(Backend):
    provider = CPU_EP

    def versions(self) -> dict[str, str]:
        import onnx

        return {"onnxruntime": ort.__version__, "onnx": onnx.__version__, **exporter_version()}

    def prepare(self, model: PreparedModel, cache, calibration=None) -> Artifact:
        return fp32_onnx_artifact(model, cache, self.batch)

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        return OnnxRuntimeSession(str(artifact.path), self.provider, threads=self.thread_count())


class OnnxRuntimeCPUInt8Backend(OnnxRuntimeCPUBackend):
    """The int8 QDQ model (quantize.py) on the CPU provider's integer kernels (VNNI/AMX where present)."""

    def prepare(self, model: PreparedModel, cache, calibration=None) -> Artifact:
        from .quantize import cpu_int8_artifact

        return cpu_int8_artifact(model, cache, calibration, self.spec.id, self.batch)

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        session = super().load(artifact, model)
        session.accelerator = session.accelerator.replace("threads)", "threads, int8 QDQ)")
        return session


# --------------------------------------------------------------------------- CUDA

#: fp32 means fp32: ORT's CUDA EP would otherwise run convolutions and GEMMs in TF32 on Ampere and later.
CUDA_OPTIONS = {"device_id": "0", "use_tf32": "0"}


def preload_cuda_libraries() -> None:
    """Let onnxruntime-gpu find CUDA/cuDNN from nvidia-* wheels (e.g. a CUDA torch's); harmless otherwise."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    with contextlib.redirect_stdout(sys.stderr):  # it prints hints; stdout carries the results table
        try:
            preload()
        except Exception:  # noqa: BLE001 - a failed preload shows up, precisely, when the session starts
            pass


def cuda_ep_devices() -> list:
    """GPU devices of a CUDA execution provider registered as a plugin EP (newer onnxruntime-gpu builds)."""
    if not hasattr(ort, "get_ep_devices"):
        return []
    return [d for d in ort.get_ep_devices() if d.ep_name == CUDA_EP and d.device.type == ort.OrtHardwareDeviceType.GPU]


def cuda_session(path: str, options: "ort.SessionOptions") -> "ort.InferenceSession":
    """A session whose first provider is CUDA; the classic provider, else the plugin EP; never the CPU in disguise."""
    if CUDA_EP in ort.get_available_providers():
        session = ort.InferenceSession(path, sess_options=options, providers=[(CUDA_EP, CUDA_OPTIONS)], enable_fallback=0)
    else:
        devices = cuda_ep_devices()
        if not devices:
            raise UnavailableError(
                f"onnxruntime {ort.__version__} offers no {CUDA_EP} (providers: {', '.join(ort.get_available_providers())}); "
                f"{probes.CUDA_INSTALL}"
            )
        options.add_provider_for_devices(devices[:1], CUDA_OPTIONS)
        session = ort.InferenceSession(path, sess_options=options, enable_fallback=0)
    used = session.get_providers()
    if not used or used[0] != CUDA_EP:
        raise UnavailableError(f"ONNX Runtime did not enable {CUDA_EP}; the session runs on {used}")
    return session


def _conv_probe_model(path: Path) -> None:
    """A one-Conv model: creating and running it on CUDA loads the CUDA runtime, cuBLAS and cuDNN."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "cuda_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


class CUDASession(Session):
    def __init__(self, path: str):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.add_session_config_entry(RECORD_ASSIGNMENT, "1")
        self.session = cuda_session(path, options)
        self.input_name = self.session.get_inputs()[0].name
        # ORT's CUDA EP deliberately keeps small shape computations on the CPU; anything it leaves there is
        # named here (and in the result), never hidden. The MNv4 exports have static shapes: expected empty.
        self.cpu_fallback_ops = tuple(assigned_nodes(self.session).get(CPU_EP, ()))
        gpus = probes.nvidia_gpu_names()
        name = gpus[int(CUDA_OPTIONS["device_id"])] if len(gpus) > int(CUDA_OPTIONS["device_id"]) else "NVIDIA GPU"
        fallback = f"; {len(self.cpu_fallback_ops)} node(s) on the CPU" if self.cpu_fallback_ops else ""
        self.accelerator = f"{name} (ONNX Runtime {CUDA_EP}, fp32, TF32 off{fallback})"

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: inputs})[0]


class OnnxRuntimeCUDABackend(OnnxRuntimeCPUBackend):
    """The fp32 export on ORT's CUDA EP.

    No stand-in when the GPU is missing: nothing here executes GPU numerics (cuDNN's algorithm
    choices), and the CPU provider's figures are already the onnxruntime-cpu backend's.
    """

    provider = CUDA_EP

    def versions(self) -> dict[str, str]:
        versions = super().versions()
        gpu = probes.distribution_version("onnxruntime-gpu")
        if gpu:
            versions["onnxruntime-gpu"] = gpu
        return versions

    def probe(self) -> Availability:
        cheap = probes.cuda_probe()
        if not cheap:
            return cheap
        preload_cuda_libraries()
        if CUDA_EP not in ort.get_available_providers() and not cuda_ep_devices():
            return Availability.missing(
                f"onnxruntime {ort.__version__} offers no {CUDA_EP} (it offers {', '.join(ort.get_available_providers())})"
            )
        with tempfile.TemporaryDirectory(prefix="mnv4suite-cuda-probe-") as tmp:
            path = Path(tmp) / "conv.onnx"
            try:
                _conv_probe_model(path)
                options = ort.SessionOptions()
                options.log_severity_level = 3
                session = cuda_session(str(path), options)
                session.run(None, {"x": np.ones((1, 3, 8, 8), dtype=np.float32)})
            except Exception as exc:  # noqa: BLE001 - e.g. libcudnn not found, driver too old, no device
                return Availability.missing(f"{CUDA_EP} could not run a convolution: {first_line(exc)}")
        return Availability.ok(*cheap.notes)

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        preload_cuda_libraries()
        return CUDASession(str(artifact.path))

    def stand_in(self, artifact: Artifact, model: PreparedModel) -> Session | None:
        return None
