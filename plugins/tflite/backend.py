"""TensorFlow Lite / LiteRT backends: the CPU (XNNPACK), the GPU delegate, the Edge TPU and the Hexagon DSP.

Every backend converts the model's Keras twin to a .tflite file at its precision (``convert``) and
caches it; the int8 file is calibrated on the task's data. Hardware delegates are loaded with
``ai_edge_litert.interpreter.load_delegate``; whatever a delegate hands back to the CPU is reported.

Where the hardware is missing, each stands in with the nearest faithful executor of the same file,
for accuracy only (the worker never reports a stand-in's latency as the device's):

* ``tflite-edgetpu`` and ``tflite-hexagon``: the int8 file on LiteRT's CPU kernels. The arithmetic is
  the same integer arithmetic the accelerators implement (TFLite's int8 quantization spec: int32
  accumulation, fixed-point requantization), so the logits match theirs up to the rounding of the
  requantization step. For the Edge TPU it is the int8 file *before* ``edgetpu_compiler``, which
  repackages those ops for the TPU without changing their quantization.
* ``tflite-gpu``: the fp16 file on the CPU. Its weights are the GPU's exactly (fp16 values), but the
  CPU widens them to fp32 and computes in fp32, while the GPU delegate computes in fp16; the label
  says so. Measured on MNv4-Conv-S with the timm weights and 64 photo-like generated images: fp16
  arithmetic throughout (PyTorch ``.half()``) agrees with fp32 at logit cosine 0.99998 and top-1
  64/64, and with this stand-in at cosine 0.99996, top-1 64/64 (on another 8 images, one whose two
  best fp32 logits were 0.0055 apart flipped). That residue is far below the int8 stand-ins' error
  and moves top-1 only on near-ties; only the GPU itself would measure it exactly.
"""

from __future__ import annotations

import ctypes
import shutil
from pathlib import Path

from mnv4suite.api import Artifact, Availability, Backend, CalibrationSet, PreparedModel, Session
from mnv4suite.errors import UnavailableError
from mnv4suite.plugins.tflite import edgetpu, probes
from mnv4suite.plugins.tflite.convert import (
    converter_versions,
    distribution_version,
    runtime_version,
    tflite_artifact,
)
from mnv4suite.plugins.tflite.session import LiteRTSession, cpu_threads


def load_delegate(library: str | None, label: str, options: dict[str, str] | None = None):
    """``ai_edge_litert``'s load_delegate, with a message that names the library and what went wrong.

    LiteRT loads a delegate through the external-delegate ABI (``tflite_plugin_create_delegate``);
    a library without it (e.g. a GPU delegate built only for C++ linking) is named as such here,
    before LiteRT's own loader fails on it less clearly.
    """
    if not library:
        raise UnavailableError(f"{label}: no delegate library found")
    try:
        handle = ctypes.CDLL(library)
    except OSError as exc:
        raise UnavailableError(f"{label}: cannot load {library} ({exc})") from exc
    if not hasattr(handle, "tflite_plugin_create_delegate"):
        raise UnavailableError(f"{label}: {library} does not export tflite_plugin_create_delegate, so it is not an "
                               "external-delegate build, which LiteRT's load_delegate needs")
    from ai_edge_litert.interpreter import load_delegate as _load

    try:
        return _load(library, options)
    except (ValueError, RuntimeError, OSError, AttributeError) as exc:
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise UnavailableError(f"{label}: cannot load {library} ({last})") from exc


class TFLiteBackend(Backend):
    """The shared part: the .tflite file at the spec's precision, cached; the CPU interpreter."""

    def versions(self) -> dict[str, str]:
        versions = {"ai-edge-litert": runtime_version(), **converter_versions()}
        torch = distribution_version("torch")
        if torch:
            versions["torch"] = torch  # the twin's weights come from the PyTorch module
        return versions

    def prepare(self, model: PreparedModel, cache, calibration: CalibrationSet | None = None) -> Artifact:
        return tflite_artifact(model, cache, self.spec.precision, self.spec.id, calibration)

    def cpu_session(self, path: Path, what: str = "") -> LiteRTSession:
        session = LiteRTSession(path, threads=self.thread_count(), batch=self.batch)
        session.accelerator = session.describe_cpu("; ".join(n for n in (what, session.batch_note) if n))
        return session


class TFLiteCPUBackend(TFLiteBackend):
    """The spec's precision (fp32, or full int8) on the host CPU through XNNPACK, one thread per core
    this process may use."""

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        return self.cpu_session(artifact.path)


# --------------------------------------------------------------------------- GPU


class TFLiteGPUBackend(TFLiteBackend):
    """fp16 file on the TFLite GPU delegate (OpenCL / OpenGL ES); stands for the Pixel 7's GPU."""

    def probe(self) -> Availability:
        cheap = self.spec.probe()
        if not cheap:
            return cheap
        try:
            load_delegate(probes.gpu_delegate_library(), "TFLite GPU delegate")
        except UnavailableError as exc:
            return Availability.missing(str(exc))
        return cheap

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        library = probes.gpu_delegate_library()
        delegate = load_delegate(library, "TFLite GPU delegate")
        session = LiteRTSession(artifact.path, delegate=delegate, delegate_label=f"the GPU delegate ({library})")
        session.accelerator = session.describe_delegate(f"GPU (TFLite GPU delegate {Path(library).name}, fp16 model)")
        return session

    def stand_in(self, artifact: Artifact, model: PreparedModel) -> Session | None:
        return self.cpu_session(artifact.path, "the fp16 file, its weights widened to fp32 and computed in fp32; "
                                               "the GPU computes in fp16")


# --------------------------------------------------------------------------- Edge TPU


class TFLiteEdgeTPUBackend(TFLiteBackend):
    """Full-int8 file compiled by ``edgetpu_compiler``, run through libedgetpu on a Coral Edge TPU.

    Stands for the Pixel 8's EdgeTPU (``pixel8_edgetpu``), the paper's Edge TPU column. The toolchain
    here is Coral's, the public one; a Coral device measured here is a Coral, and the accelerator
    string says which device ran. Without the compiler, prepare() stops at the int8 file "ready for
    edgetpu_compiler" and the artifact details say what to run.
    """

    def versions(self) -> dict[str, str]:
        versions = super().versions()
        compiler = probes.edgetpu_compiler()
        if compiler:
            try:
                versions["edgetpu_compiler"] = edgetpu.compiler_version(compiler)
            except UnavailableError:
                versions["edgetpu_compiler"] = "unknown"
        return versions

    def probe(self) -> Availability:
        cheap = self.spec.probe()
        if not cheap:
            return cheap
        try:
            load_delegate(probes.edgetpu_library(), "Edge TPU runtime")
        except UnavailableError as exc:
            return Availability.missing(str(exc))
        return cheap

    def prepare(self, model: PreparedModel, cache, calibration: CalibrationSet | None = None) -> Artifact:
        int8 = super().prepare(model, cache, calibration)
        compiler = probes.edgetpu_compiler()
        details = dict(int8.details)
        if compiler is None:
            details["edgetpu"] = {
                "compiled": False,
                "compiler": "missing",
                "status": "int8 .tflite ready for edgetpu_compiler; the compile step is missing here",
                "reason": probes.edgetpu_compiler_missing(),
                "command": edgetpu.command_line(int8.path, "."),
                "note": "the Edge TPU runs only the compiled model (<name>_edgetpu.tflite); compile it where "
                        "edgetpu_compiler is installed (x86-64 Debian/Ubuntu)",
            }
            return Artifact(kind="tflite", path=int8.path, sha256=int8.sha256, cached=int8.cached, details=details)
        return self._compiled(int8, compiler, cache, details)

    def _compiled(self, int8: Artifact, compiler: str, cache, details: dict) -> Artifact:
        version = edgetpu.compiler_version(compiler)
        key = {"format": "tflite-edgetpu", "source_sha256": int8.sha256, "compiler": version,
               "flags": list(edgetpu.COMPILE_FLAGS)}
        made: dict = {}

        def run_compiler():
            if "compilation" not in made:
                made["compilation"], made["folder"] = edgetpu.compile_model(compiler, int8.path)
            return made["compilation"]

        try:
            log_path, _, _ = cache.fetch_or_build({**key, "file": "compiler-log"}, ".log",
                                                  lambda tmp: Path(tmp).write_text(run_compiler().log))
            path, digest, cached = cache.fetch_or_build(key, ".tflite",
                                                        lambda tmp: shutil.copyfile(run_compiler().compiled, tmp))
        finally:
            if "folder" in made:
                made["folder"].cleanup()
        report = edgetpu.parse_log(Path(log_path).read_text())
        details["edgetpu"] = {
            "compiled": True,
            "command": edgetpu.command_line(int8.path, ".", compiler),
            "log": str(log_path),
            **report.to_dict(),
        }
        details["int8_tflite"] = {"path": str(int8.path), "sha256": int8.sha256, "cached": int8.cached}
        details["cpu_fallback_ops"] = report.cpu_fallback_ops()
        return Artifact(kind="tflite-edgetpu", path=path, sha256=digest, cached=cached, details=details)

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        if artifact.kind != "tflite-edgetpu":
            command = artifact.details.get("edgetpu", {}).get("command", "edgetpu_compiler")
            raise UnavailableError(
                "the Edge TPU is here but the model is not compiled for it (edgetpu_compiler is missing); it would "
                f"run entirely on the CPU. Run: {command}"
            )
        library = probes.edgetpu_library()
        delegate = load_delegate(library, "Edge TPU runtime")
        session = LiteRTSession(artifact.path, delegate=delegate, delegate_label=f"the Edge TPU runtime ({library})")
        compiled = artifact.details.get("edgetpu", {})
        if session.placement is None:  # cannot check the runtime: report what the compiler left on the CPU
            session.cpu_fallback_ops = tuple(compiled.get("cpu_fallback_ops", ()))
        else:
            untaken = [op for op in session.placement.leftover if op.lower().startswith("edgetpu-custom-op")]
            if untaken or session.placement.partitions == 0:
                raise UnavailableError(f"libedgetpu did not take the compiled Edge TPU op(s) "
                                       f"({', '.join(untaken) or 'no delegate partition'}): the TPU would run nothing")
            session.cpu_fallback_ops = tuple(session.placement.leftover)
        devices = ", ".join(probes.edgetpu_devices()) or "Edge TPU"
        cpu = f"; {len(session.cpu_fallback_ops)} op(s) on the CPU" if session.cpu_fallback_ops else ""
        session.accelerator = (
            f"Coral Edge TPU ({devices}; libedgetpu, edgetpu_compiler {compiled.get('compiler_version', '?')}: "
            f"{compiled.get('ops_on_edgetpu', '?')} of {compiled.get('total_ops', '?')} ops mapped to the TPU{cpu})"
        )
        return session

    def stand_in(self, artifact: Artifact, model: PreparedModel) -> Session | None:
        path = Path(artifact.details["int8_tflite"]["path"]) if artifact.kind == "tflite-edgetpu" else artifact.path
        return self.cpu_session(path, "the int8 file before edgetpu_compiler, same int8 arithmetic")


# --------------------------------------------------------------------------- Hexagon DSP


class TFLiteHexagonBackend(TFLiteBackend):
    """Full-int8 file on the TFLite Hexagon delegate (hexagon_nn on the Snapdragon's DSP); stands for the Pixel 4.

    The delegate runs on Android only and covers the Hexagon 680-690 DSPs (Snapdragon 835-865; the
    Pixel 4 has an 855); Qualcomm's newer route to the same hardware is QNN (``onnxruntime-qnn``).
    LiteRT ships no Python build of it: it has to be an external-delegate build (probes.py).
    """

    def probe(self) -> Availability:
        cheap = self.spec.probe()
        if not cheap:
            return cheap
        library = probes.find_library(probes.HEXAGON_DELEGATE_NAMES, probes.HEXAGON_DELEGATE_ENV)
        try:
            load_delegate(library, "TFLite Hexagon delegate")
        except UnavailableError as exc:
            return Availability.missing(str(exc))
        return cheap

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        library = probes.find_library(probes.HEXAGON_DELEGATE_NAMES, probes.HEXAGON_DELEGATE_ENV)
        delegate = load_delegate(library, "TFLite Hexagon delegate")
        session = LiteRTSession(artifact.path, delegate=delegate, delegate_label=f"the Hexagon delegate ({library})")
        device = f"Hexagon DSP (TFLite Hexagon delegate {Path(library).name}, int8)"
        session.accelerator = session.describe_delegate(device)
        return session

    def stand_in(self, artifact: Artifact, model: PreparedModel) -> Session | None:
        return self.cpu_session(artifact.path, "the same int8 file, same int8 arithmetic")
