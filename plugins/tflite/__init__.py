"""Built-in plugin: TensorFlow Lite / LiteRT backends. Declares specs only; ``backend`` holds the implementation.

| backend | precision | delegate | stands for |
|---|---|---|---|
| ``tflite-cpu`` | fp32 | XNNPACK (LiteRT's CPU delegate) | this machine's CPU |
| ``tflite-gpu`` | fp16 | TFLite GPU delegate | ``pixel7_gpu``: the paper's mobile GPU run through this delegate in fp16 |
| ``tflite-edgetpu`` | int8 | libedgetpu after ``edgetpu_compiler`` | ``pixel8_edgetpu`` |
| ``tflite-hexagon`` | int8 | TFLite Hexagon delegate | ``pixel4_hexagon`` |

Every backend converts the model's Keras twin (so only models that have one: the five MNv4
classifiers and the five RetinaNet-MNv4 detectors). The int8 backends calibrate on the task's
data. ``tflite-hexagon`` is named after the TFLite delegate it
uses, not "dsp": the Hexagon delegate is one specific runtime (hexagon_nn), distinct from the QNN route
that ``onnxruntime-qnn`` takes to the same DSP, and other vendors' DSPs would need other delegates.

The probes (``probes``) look at shared libraries, device nodes and ``$PATH``; none imports a framework.
"""

from dataclasses import replace

from mnv4suite.api import BackendSpec, Requirement, hookimpl, install_command
from mnv4suite.plugins.tflite import probes

INSTALL = install_command("torch", "tf")
#: Seconds of a cold conversion per model on a 2-core machine (measured 2026-12-01: TensorFlow import, Keras
#: twin, SavedModel export, converter; int8 with 4 synthetic calibration samples, classifiers to RetinaNet
#: detectors; 128 real samples, which a run with --data takes, add up to three minutes for the largest).
FP_CONVERSION_S = (20.0, 45.0)
INT8_CONVERSION_S = (25.0, 75.0)
#: To prepare (convert, quantize) and to stand in: the converter, the twin's Keras, the interpreter,
#: and torch (the twin takes its weights from the PyTorch reference module).
REQUIRES = (
    Requirement("tensorflow", INSTALL),
    Requirement("keras", INSTALL),
    Requirement("ai_edge_litert", INSTALL),
    Requirement("torch", INSTALL),
)
IMPL = "mnv4suite.plugins.tflite.backend"


def keras_twin(model) -> str | None:
    """TFLite models come from the Keras twin, which exists for the MNv4 classifiers and detectors only."""
    from mnv4suite.plugins.tflite.convert import twin_models  # framework-free

    supported = twin_models()
    if model.id in supported:
        return None
    return f"no Keras twin for '{model.id}' (TFLite converts the twin; it exists for {', '.join(supported)})"


@hookimpl
def register_backends():
    cpu = BackendSpec(
        id="tflite-cpu",
        framework="ai-edge-litert",
        delegate="cpu",
        precision="fp32",
        hardware="host-cpu",
        implementation=f"{IMPL}:TFLiteCPUBackend",
        requires=REQUIRES,
        supports=keras_twin,
        offline_batch=8,  # the batch-1 file's input resized at load
        cold_prepare_s=FP_CONVERSION_S,
        summary="LiteRT interpreter with XNNPACK on the host CPU (one thread per core), fp32 .tflite "
                "from the Keras twin (cached)",
    )
    return [
        cpu,
        replace(cpu.variant("int8", summary="LiteRT interpreter with XNNPACK on the host CPU, full-int8 .tflite "
                                            "calibrated on the task's data (the same file the Edge TPU and Hexagon "
                                            "backends use)"), cold_prepare_s=INT8_CONVERSION_S),
        BackendSpec(
            id="tflite-gpu",
            framework="ai-edge-litert",
            delegate="gpu",
            precision="fp16",
            hardware="pixel7_gpu",
            implementation=f"{IMPL}:TFLiteGPUBackend",
            requires=REQUIRES,
            supports=keras_twin,
            probe_hook=probes.gpu_probe,
            cold_prepare_s=FP_CONVERSION_S,
            summary="TFLite GPU delegate (OpenCL) on an fp16 .tflite; ops it leaves on the CPU are reported",
        ),
        BackendSpec(
            id="tflite-edgetpu",
            framework="ai-edge-litert",
            delegate="edgetpu",
            precision="int8",
            hardware="pixel8_edgetpu",
            implementation=f"{IMPL}:TFLiteEdgeTPUBackend",
            requires=REQUIRES,
            supports=keras_twin,
            probe_hook=probes.edgetpu_probe,
            cold_prepare_s=INT8_CONVERSION_S,
            summary="Edge TPU via libedgetpu: full-int8 .tflite calibrated on the task's data, compiled by "
                    "edgetpu_compiler (ops left on the CPU reported)",
        ),
        BackendSpec(
            id="tflite-hexagon",
            framework="ai-edge-litert",
            delegate="dsp",
            precision="int8",
            hardware="pixel4_hexagon",
            implementation=f"{IMPL}:TFLiteHexagonBackend",
            requires=REQUIRES,
            supports=keras_twin,
            probe_hook=probes.hexagon_probe,
            cold_prepare_s=INT8_CONVERSION_S,
            summary="TFLite Hexagon delegate (hexagon_nn, Android on Snapdragon): full-int8 .tflite calibrated "
                    "on the task's data",
        ),
    ]
