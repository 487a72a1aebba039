"""ONNX Runtime with Qualcomm's QNN execution provider: the int8 model on the Hexagon NPU (HTP backend).

The artifact is an int8 QDQ ONNX model made from the fp32 export with
``onnxruntime.quantization.quantize_static`` (QDQ format, settings from
``get_qnn_qdq_config``: uint8 asymmetric activations, int8 symmetric per-channel weights for Conv and
Gemm, per-tensor where QNN wants it, MinMax ranges over the task's calibration set). It is cached by
everything it depends on, the calibration set's digest included.

The QNN EP comes from the ``onnxruntime-qnn`` wheel, a *plugin* execution provider: its library is
registered with ``onnxruntime.register_execution_provider_library`` and a session selects it with
``SessionOptions.add_provider_for_devices`` over the ``OrtEpDevice`` entries the EP enumerates.
Sessions run with ``session.disable_cpu_ep_fallback`` = "1", so every node runs on the HTP or the
session is not created; in that case the error names the nodes the HTP would not take.

On x86-64 the wheel's ``libQnnHtp.so`` is Qualcomm's HTP emulator: there is no Hexagon here, so
``probe()`` says so and ``stand_in()`` runs the same QDQ graph on the emulator, for accuracy only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mnv4suite.api import Artifact, Availability, Backend, CalibrationSet, PreparedModel, Session
from mnv4suite.errors import UnavailableError, UserError
from mnv4suite.plugins.onnxruntime import probes
from mnv4suite.plugins.onnxruntime.backend import (
    CPU_EP,
    DISABLE_CPU_FALLBACK,
    RECORD_ASSIGNMENT,
    assigned_nodes,
    first_line,
    fp32_onnx_artifact,
)
from mnv4suite.plugins.onnxruntime.quantize import quiet_root_logger, reader
from mnv4suite.reference_models.export import ONNX_OPSET, exporter_version

QNN_EP = "QNNExecutionProvider"

#: How the int8 model is made; part of the artifact's cache key and recorded in the result.
QUANTIZATION = {
    "format": "QDQ",
    "tool": "onnxruntime.quantization.quantize_static with get_qnn_qdq_config",
    "activations": "QUInt8 (asymmetric, per tensor)",
    "weights": "QInt8 (symmetric, per channel for Conv/Gemm)",
    "per_channel": True,
    "calibrate_method": "MinMax",
    "qnn_preprocess": True,
}
#: Q/DQ and layout ops are not "compute" when looking for nodes the quantizer left in float.
NON_COMPUTE = {"QuantizeLinear", "DequantizeLinear", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
               "Shape", "Gather", "Concat", "Slice", "Identity", "Constant", "Split"}


# --------------------------------------------------------------------------- quantization


def quantize_qdq(fp32_path: Path, out_path: Path, samples: list[np.ndarray]) -> None:
    """The int8 QDQ model for QNN's HTP from an fp32 ONNX file, calibrated on ``samples``."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

    if not samples:
        raise UserError("int8 quantization for QNN needs calibration samples; the calibration set is empty")
    with tempfile.TemporaryDirectory(prefix="mnv4suite-qnn-") as tmp:
        source = Path(fp32_path)
        preprocessed = Path(tmp) / "preprocessed.onnx"
        if qnn_preprocess_model(str(source), str(preprocessed)):  # fuses e.g. Erf chains into Gelu, when present
            source = preprocessed
        input_name = onnx.load(str(source), load_external_data=False).graph.input[0].name
        config = get_qnn_qdq_config(
            str(source),
            reader(input_name, samples),
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
        with quiet_root_logger():
            quantize_static(
                str(source),
                str(out_path),
                config.calibration_data_reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=config.op_types_to_quantize,
                per_channel=config.per_channel,
                activation_type=config.activation_type,
                weight_type=config.weight_type,
                nodes_to_exclude=config.nodes_to_exclude,
                use_external_data_format=False,
                calibrate_method=config.calibrate_method,
                # MinMax calibration keeps only per-tensor min/max per sample (ReduceMin/ReduceMax outputs), so
                # 128 samples of a 384 px model fit in memory. (Not "CalibMaxIntermediateOutputs": onnxruntime
                # 1.32 discards each full chunk instead of merging its ranges.)
                extra_options=config.extra_options,
            )


def float_compute_nodes(path: Path) -> list[str]:
    """Compute nodes the quantizer left in float (the HTP runs 8/16-bit fixed point): those with a float
    activation input that no DequantizeLinear produced, or an output that no QuantizeLinear takes."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    graph_outputs = {o.name for o in model.graph.output}
    producers = {out: node.op_type for node in model.graph.node for out in node.output}
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    found = []
    for node in model.graph.node:
        if node.op_type in NON_COMPUTE:
            continue
        activations = [i for i in node.input if i and i not in initializers and producers.get(i) != "Constant"]
        float_in = any(producers.get(i) != "DequantizeLinear" for i in activations)
        float_out = any(
            o in graph_outputs or not consumers.get(o) or any(c != "QuantizeLinear" for c in consumers[o])
            for o in node.output if o
        )
        if float_in or float_out:
            found.append(f"{node.op_type} ({node.name})")
    return found


# --------------------------------------------------------------------------- the plugin execution provider


@contextlib.contextmanager
def _native_stdout_to_stderr():
    """QNN's libraries print a banner on the C stdout when they load; the results table owns stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (e.g. a captured stream without a descriptor)
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            import ctypes

            ctypes.CDLL(None).fflush(None)  # flush C stdio buffers while they still point at stderr
        except (OSError, AttributeError):
            pass
        os.dup2(saved, 1)
        os.close(saved)


def qnn_module():
    try:
        import onnxruntime_qnn
    except ImportError as exc:
        raise UnavailableError(f"the QNN execution provider is not installed ({probes.QNN_INSTALL}): {exc}") from exc
    return onnxruntime_qnn


def register_qnn_ep():
    """Register the onnxruntime-qnn plugin EP library with ONNX Runtime (once per process)."""
    qnn = qnn_module()
    try:
        with _native_stdout_to_stderr():
            ort.register_execution_provider_library(QNN_EP, qnn.get_library_path())
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail type
        if "already registered" not in str(exc).lower():
            raise UnavailableError(f"ONNX Runtime could not load the QNN EP library {qnn.get_library_path()}: "
                                   f"{first_line(exc)}") from exc
    return qnn


def qnn_ep_devices(npu_only: bool) -> list:
    devices = [d for d in ort.get_ep_devices() if d.ep_name == QNN_EP]
    if npu_only:
        devices = [d for d in devices if d.device.type == ort.OrtHardwareDeviceType.NPU]
    return devices


def describe_devices(devices) -> str:
    return ", ".join(f"{d.device.type.name} (vendor {d.device.vendor or d.device.vendor_id})" for d in devices) or "none"


def qnn_versions() -> dict[str, str]:
    qnn = qnn_module()
    info = getattr(qnn, "build_and_package_info", None)
    versions = {"onnxruntime-qnn": getattr(qnn, "__version__", "unknown")}
    if info is not None and getattr(info, "qnn_version", None):
        versions["qnn-sdk"] = info.qnn_version
    return versions


def _session_options(fallback: bool, devices, provider_options: dict[str, str]) -> "ort.SessionOptions":
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry(RECORD_ASSIGNMENT, "1")
    if not fallback:
        options.add_session_config_entry(DISABLE_CPU_FALLBACK, "1")
    options.add_provider_for_devices(devices, provider_options)
    return options


def rejected_nodes(path: str, devices, provider_options: dict[str, str]) -> list[str] | Exception:
    """Diagnosis only (never used to run): which nodes ORT would hand to the CPU EP, or the error when even
    that session cannot be built. The graph I/O (de)quantization stays on the QNN side, as in the real session."""
    try:
        session = ort.InferenceSession(path, sess_options=_session_options(True, devices, provider_options),
                                       enable_fallback=0)
    except Exception as exc:  # noqa: BLE001
        return exc
    return assigned_nodes(session).get(CPU_EP, [])


class QNNSession(Session):
    """The QDQ model on QNN's HTP backend with CPU fallback disabled: every node on the HTP, or no session."""

    def __init__(self, path: str, emulator: bool):
        qnn = register_qnn_ep()
        devices = qnn_ep_devices(npu_only=not emulator)
        if not devices:
            everything = qnn_ep_devices(npu_only=False)
            raise UnavailableError(f"the QNN execution provider found no Hexagon NPU (it enumerated: {describe_devices(everything)})")
        provider_options = {
            "backend_path": qnn.get_qnn_htp_path(),
            # keep the graph's input quantization and output dequantization on the HTP, not on the CPU EP
            "offload_graph_io_quantization": "0",
        }
        if not emulator:
            provider_options["htp_performance_mode"] = "burst"
        devices = devices[:1]
        try:
            with _native_stdout_to_stderr():
                self.session = ort.InferenceSession(
                    path, sess_options=_session_options(False, devices, provider_options), enable_fallback=0
                )
        except Exception as exc:  # noqa: BLE001 - diagnosed below, then reported as unavailable
            with _native_stdout_to_stderr():
                message = self._explain(path, devices, provider_options, exc)
            raise UnavailableError(message) from exc
        placement = assigned_nodes(self.session)
        leftover = [n for ep, nodes in placement.items() if ep != QNN_EP for n in nodes]
        if leftover:  # cannot happen with fallback disabled; refuse rather than report a mixed run as the HTP's
            raise UnavailableError(f"ONNX Runtime placed {len(leftover)} node(s) outside the QNN EP: {', '.join(leftover)}")
        self.htp_nodes = len(placement.get(QNN_EP, []))
        self.cpu_fallback_ops = ()
        self.input_name = self.session.get_inputs()[0].name
        versions = qnn_versions()
        where = ("Qualcomm QNN HTP emulator on x86-64" if emulator
                 else f"Qualcomm Hexagon NPU ({describe_devices(devices)}), QNN HTP backend")
        self.accelerator = (
            f"{where} (onnxruntime-qnn {versions.get('onnxruntime-qnn')}, QNN SDK {versions.get('qnn-sdk', '?')}; "
            f"int8 QDQ, all {self.htp_nodes} nodes on the HTP, CPU fallback disabled)"
        )

    @staticmethod
    def _explain(path: str, devices, provider_options: dict[str, str], exc: Exception) -> str:
        rejected = rejected_nodes(path, devices, provider_options)
        head = f"the QNN HTP backend cannot run this model with CPU fallback disabled ({first_line(exc)})"
        if isinstance(rejected, list) and rejected:
            ops = sorted({n.split(" ", 1)[0] for n in rejected})
            return (f"{head}: the HTP does not take {len(rejected)} node(s), op types {', '.join(ops)}: "
                    f"{', '.join(rejected)}. This backend never falls back to the CPU silently; change the model "
                    "(or run it on a backend whose delegate supports these ops).")
        floats = float_compute_nodes(Path(path))
        if floats:
            return (f"{head}. The quantizer left {len(floats)} node(s) in float, which the HTP does not run: "
                    f"{', '.join(floats)}")
        detail = f"; with CPU fallback allowed it fails too: {first_line(rejected)}" if isinstance(rejected, Exception) else ""
        return f"{head}{detail}"

    def run(self, inputs: np.ndarray) -> np.ndarray:
        # The QDQ graph takes and returns float: its input QuantizeLinear and output DequantizeLinear run on the HTP.
        return self.session.run(None, {self.input_name: np.ascontiguousarray(inputs, dtype=np.float32)})[0]


# --------------------------------------------------------------------------- the backend


class OnnxRuntimeQNNBackend(Backend):
    def versions(self) -> dict[str, str]:
        import onnx

        versions = {"onnxruntime": ort.__version__, "onnx": onnx.__version__, **exporter_version()}
        try:
            versions.update(qnn_versions())
        except UnavailableError:
            pass
        return versions

    def probe(self) -> Availability:
        cheap = probes.qnn_probe()
        if not cheap:
            return cheap
        try:
            register_qnn_ep()
        except UnavailableError as exc:
            return Availability.missing(str(exc))
        npus = qnn_ep_devices(npu_only=True)
        if not npus:
            return Availability.missing(
                f"the QNN execution provider found no Hexagon NPU (it enumerated: {describe_devices(qnn_ep_devices(False))})"
            )
        return Availability.ok(f"QNN EP devices: {describe_devices(npus)}")

    def artifact_key(self, model: PreparedModel, fp32: Artifact, calibration: CalibrationSet) -> dict:
        return {
            "model": model.spec.id,
            "weights": model.checksum,
            "precision": "int8",
            "format": "onnx-qdq",
            "target": "qnn-htp",
            "opset": ONNX_OPSET,
            "input_shape": model.spec.input_shape(1),
            "fp32_onnx_sha256": fp32.sha256,
            "quantization": QUANTIZATION,
            "quantizer": {"onnxruntime": ort.__version__},
            "calibration": calibration.digest,
            **exporter_version(),
        }

    def prepare(self, model: PreparedModel, cache, calibration: CalibrationSet | None = None) -> Artifact:
        if calibration is None or not calibration.samples:
            raise UserError(f"{self.spec.id} quantizes to int8 and needs a calibration set from the task's data")
        fp32 = fp32_onnx_artifact(model, cache)
        key = self.artifact_key(model, fp32, calibration)
        path, digest, cached = cache.fetch_or_build(
            key, ".onnx", lambda tmp: quantize_qdq(fp32.path, tmp, calibration.samples)
        )
        return Artifact(
            kind="onnx-qdq-int8",
            path=path,
            sha256=digest,
            cached=cached,
            details={
                "opset": ONNX_OPSET,
                "quantization": QUANTIZATION,
                "calibration": {"source": calibration.source, "samples": len(calibration.samples),
                                "synthetic": calibration.synthetic, "sha256": calibration.digest},
                "fp32_onnx": {"path": str(fp32.path), "sha256": fp32.sha256},
                "float_nodes": float_compute_nodes(path),
            },
        )

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        return QNNSession(str(artifact.path), emulator=False)

    def stand_in(self, artifact: Artifact, model: PreparedModel) -> Session | None:
        """The same QDQ graph on Qualcomm's x86-64 HTP emulator (QNN's HTP op implementations, int8).

        Faithful for accuracy; its speed is an emulation and never reported. Elsewhere (no emulator) None."""
        if not probes.qnn_emulator_here():
            return None
        return QNNSession(str(artifact.path), emulator=True)
