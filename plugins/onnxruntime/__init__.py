"""Built-in plugin: ONNX Runtime backends. Declares specs only; `backend` holds the implementation."""

from mnv4suite.api import BackendSpec, Requirement, hookimpl

INSTALL = "pip install 'mnv4suite[onnx]' -c constraints.txt"
REQUIRES = (
    Requirement("onnxruntime", INSTALL),
    Requirement("onnx", INSTALL),
    Requirement("onnxscript", INSTALL),  # torch.onnx's exporter needs it
    Requirement("torch", INSTALL),  # the ONNX model is exported from the PyTorch reference
)


@hookimpl
def register_backends():
    return [
        BackendSpec(
            id="onnxruntime-cpu",
            framework="onnxruntime",
            delegate="cpu",
            precision="fp32",
            hardware="host-cpu",
            implementation="mnv4suite.plugins.onnxruntime.backend:OnnxRuntimeCPUBackend",
            requires=REQUIRES,
            summary="ONNX Runtime CPUExecutionProvider on a torch.onnx export (cached by content hash)",
        )
    ]
