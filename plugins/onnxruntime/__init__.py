"""Built-in plugin: ONNX Runtime backends. Declares specs only; the implementations are imported on use:
`backend` (CPU, CUDA) and `qnn` (Qualcomm Hexagon through the QNN plugin execution provider).

The probes (`probes`) look at installed wheels, shared libraries and device nodes; none imports
onnxruntime.
"""

from mnv4suite.api import BackendSpec, Requirement, hookimpl, install_command
from mnv4suite.plugins.onnxruntime import probes

INSTALL = install_command("onnx")
REQUIRES = (
    Requirement("onnxruntime", INSTALL),
    Requirement("onnx", INSTALL),
    Requirement("onnxscript", INSTALL),  # torch.onnx's exporter needs it
    Requirement("torch", INSTALL),  # the ONNX model is exported from the PyTorch reference
)
# The int8 QDQ model is made with onnxruntime.quantization (in onnxruntime); the stand-in needs the plugin EP.
QNN_REQUIRES = REQUIRES + (Requirement("onnxruntime_qnn", probes.QNN_INSTALL),)


@hookimpl
def register_backends():
    cpu = BackendSpec(
        id="onnxruntime-cpu",
        framework="onnxruntime",
        delegate="cpu",
        precision="fp32",
        hardware="host-cpu",
        implementation="mnv4suite.plugins.onnxruntime.backend:OnnxRuntimeCPUBackend",
        requires=REQUIRES,
        offline_batch=8,  # the export is made at the batch size (int8: the batch-8 export, quantized)
        summary="ONNX Runtime CPUExecutionProvider on a torch.onnx export (cached by content hash)",
    )
    return [
        cpu,
        cpu.variant("int8", implementation="mnv4suite.plugins.onnxruntime.backend:OnnxRuntimeCPUInt8Backend",
                    summary="ONNX Runtime CPUExecutionProvider on an int8 QDQ model (U8S8, per-channel, calibrated "
                            "on the task's data): MLAS integer kernels, VNNI/AMX where the CPU has them"),
        BackendSpec(
            id="onnxruntime-cuda",
            framework="onnxruntime",
            delegate="gpu",
            precision="fp32",
            hardware="cuda-gpu",
            implementation="mnv4suite.plugins.onnxruntime.backend:OnnxRuntimeCUDABackend",
            requires=REQUIRES,
            offline_batch=64,
            probe_hook=probes.cuda_probe,
            summary="ONNX Runtime CUDAExecutionProvider (onnxruntime-gpu), strict fp32 (TF32 off); ops ORT "
                    "leaves on the CPU are reported",
        ),
        BackendSpec(
            id="onnxruntime-qnn",
            framework="onnxruntime",
            delegate="dsp",  # the Hexagon DSP/NPU (HTP), as the pixel4_hexagon profile calls it
            precision="int8",
            hardware="pixel4_hexagon",
            implementation="mnv4suite.plugins.onnxruntime.qnn:OnnxRuntimeQNNBackend",
            requires=QNN_REQUIRES,
            probe_hook=probes.qnn_probe,
            summary="Qualcomm Hexagon NPU via the QNN execution provider (onnxruntime-qnn plugin EP, HTP backend): "
                    "int8 QDQ model, CPU fallback disabled",
        ),
    ]
