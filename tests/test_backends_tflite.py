"""TFLite / LiteRT backends: probes, the Edge TPU compiler step, conversion and caching, runs end to end.

Conversions take seconds each on two cores, so the default run converts MNv4-Conv-S twice: the fp32
file (shared through one artifact cache by every fp32 test and the measured `tflite-cpu` run) and the
int8 file of the `tflite-edgetpu` end-to-end run. The other precisions and backends are marked slow.
No probe test depends on this machine: each points the probes at a folder it fills itself.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mnv4suite import results
from mnv4suite.api import Artifact, CalibrationSet, ModelSpec, PreparedModel
from mnv4suite.errors import UnavailableError, UserError
from mnv4suite.plugins.tflite import edgetpu, probes
from mnv4suite.reference_models.probe_images import natural_images  # photo-like inputs, never white noise

CONV_S_WEIGHTS = "mobilenetv4_conv_small.weights.safetensors"  # in the timm_fixtures folder
CONV_S_IO = "mobilenetv4_conv_small.io.safetensors"
MNV4 = ("mnv4-conv-s", "mnv4-conv-m", "mnv4-conv-l", "mnv4-hybrid-m", "mnv4-hybrid-l")

needs_tflite = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("tensorflow", "keras", "ai_edge_litert", "torch")),
    reason="needs tensorflow, keras, ai_edge_litert and torch (pip install 'mnv4suite[torch,tf]')",
)


def backend(backend_id: str):
    from mnv4suite.registry import get_registry

    return get_registry().backends.get(backend_id).create()


def calibration_of(batch: np.ndarray, source: str) -> CalibrationSet:
    return CalibrationSet(source=source, synthetic=False, samples=[batch[i : i + 1] for i in range(len(batch))])


def result_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))


# --------------------------------------------------------------------------- probes (no framework, no device)


@pytest.fixture
def bare_machine(tmp_path, monkeypatch):
    """Probes pointed at an empty fake machine under tmp_path: no libraries, devices or compiler."""
    root = tmp_path / "machine"
    for sub in ("lib", "bin", "dev/dri", "usb", "opencl"):
        (root / sub).mkdir(parents=True)
    monkeypatch.setattr(probes, "LIBRARY_DIRS", (str(root / "lib"),))
    monkeypatch.setattr(probes, "ldconfig_cache", lambda: {})
    monkeypatch.setattr(probes, "EDGETPU_PCIE_GLOB", str(root / "dev" / "apex_*"))
    monkeypatch.setattr(probes, "USB_DEVICES", str(root / "usb"))
    monkeypatch.setattr(probes, "GPU_NODE_GLOBS", (str(root / "dev" / "dri" / "renderD*"),))
    monkeypatch.setattr(probes, "OPENCL_ICD_GLOBS", (str(root / "opencl" / "*.icd"),))
    monkeypatch.setattr(probes, "FASTRPC_NODES", (str(root / "dev" / "cdsprpc-smd"),))
    for var in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "ADSP_LIBRARY_PATH", probes.GPU_DELEGATE_ENV,
                probes.EDGETPU_LIBRARY_ENV, probes.EDGETPU_COMPILER_ENV, probes.HEXAGON_DELEGATE_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(root / "bin"))
    return root


def executable(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_edgetpu_probe_names_runtime_device_and_compiler(bare_machine):
    found = probes.edgetpu_probe()
    assert not found
    runtime, device, compiler = found.reasons
    assert "libedgetpu.so.1 not found" in runtime and "libedgetpu1-std" in runtime
    assert "/dev/apex_*" in device and "1a6e:089a" in device and "18d1:9302" in device
    assert "edgetpu_compiler is not on $PATH" in compiler


@pytest.mark.parametrize("device", ["pcie", "usb"])
def test_edgetpu_probe_finds_a_coral(bare_machine, device):
    (bare_machine / "lib" / "libedgetpu.so.1").write_bytes(b"\x7fELF")
    executable(bare_machine / "bin" / "edgetpu_compiler", "#!/bin/sh\n")
    if device == "pcie":
        (bare_machine / "dev" / "apex_0").touch()
    else:
        port = bare_machine / "usb" / "2-1"
        port.mkdir()
        (port / "idVendor").write_text("18d1\n")
        (port / "idProduct").write_text("9302\n")
    found = probes.edgetpu_probe()
    assert found, found.reasons
    assert ("apex_0" if device == "pcie" else "USB 18d1:9302 (2-1)") in found.notes[0]


def test_a_google_usb_device_that_is_not_a_coral_is_not_an_edge_tpu(bare_machine):
    port = bare_machine / "usb" / "1-4"
    port.mkdir()
    (port / "idVendor").write_text("18d1\n")
    (port / "idProduct").write_text("4ee7\n")  # a Pixel phone over USB
    assert probes.edgetpu_usb_devices(str(bare_machine / "usb")) == []


def test_override_that_points_nowhere_says_so(bare_machine, monkeypatch):
    monkeypatch.setenv(probes.EDGETPU_LIBRARY_ENV, "/nowhere/libedgetpu.so.1")
    monkeypatch.setenv(probes.EDGETPU_COMPILER_ENV, "/nowhere/edgetpu_compiler")
    reasons = " | ".join(probes.edgetpu_probe().reasons)
    assert "$MNV4SUITE_EDGETPU_LIBRARY is set to /nowhere/libedgetpu.so.1, which is not a file" in reasons
    assert "$MNV4SUITE_EDGETPU_COMPILER is set to /nowhere/edgetpu_compiler" in reasons


def test_gpu_probe_names_delegate_gpu_and_opencl(bare_machine):
    found = probes.gpu_probe()
    delegate, gpu, opencl = found.reasons
    assert "libtensorflowlite_gpu_delegate.so not found" in delegate and probes.GPU_DELEGATE_ENV in delegate
    assert "no GPU" in gpu and "renderD*" in gpu
    assert "OpenCL" in opencl and ".icd" in opencl
    (bare_machine / "lib" / "libtensorflowlite_gpu_delegate.so").write_bytes(b"\x7fELF")
    (bare_machine / "dev" / "dri" / "renderD128").touch()
    (bare_machine / "opencl" / "vendor.icd").write_text("libvendor_opencl.so\n")
    found = probes.gpu_probe()
    assert found and "renderD128" in found.notes[0]


def test_hexagon_probe_names_platform_dsp_and_libraries(bare_machine, monkeypatch):
    monkeypatch.setattr(probes, "machine", lambda: "x86_64")
    found = probes.hexagon_probe()
    text = " | ".join(found.reasons)
    assert found.reasons[0].startswith("no Hexagon DSP: this is x86_64")
    assert "FastRPC" in text and "libtensorflowlite_hexagon_delegate.so" in text
    assert "libhexagon_interface.so" in text and "libhexagon_nn_skel" in text
    # an arm64 Linux board that is not Android is named as such
    monkeypatch.setattr(probes, "machine", lambda: "aarch64")
    monkeypatch.setattr(probes, "is_android", lambda: False)
    assert probes.hexagon_probe().reasons[0].startswith("not Android")


def test_a_library_that_is_not_an_external_delegate_is_named(tmp_path):
    import ctypes.util

    from mnv4suite.plugins.tflite.backend import load_delegate

    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no libm to stand for a library without the delegate ABI")
    with pytest.raises(UnavailableError, match="does not export tflite_plugin_create_delegate"):
        load_delegate(libm, "TFLite GPU delegate")
    with pytest.raises(UnavailableError, match="cannot load"):
        load_delegate(str(tmp_path / "libnothing.so"), "Edge TPU runtime")


def test_specs_declare_precision_hardware_and_framework():
    from mnv4suite.plugins.tflite import register_backends

    specs = {s.id: s for s in register_backends()}
    assert {s: (specs[s].precision, specs[s].hardware) for s in specs} == {
        "tflite-cpu": ("fp32", "host-cpu"),
        "tflite-cpu-int8": ("int8", "host-cpu"),
        "tflite-gpu": ("fp16", "pixel7_gpu"),
        "tflite-edgetpu": ("int8", "pixel8_edgetpu"),
        "tflite-hexagon": ("int8", "pixel4_hexagon"),
    }
    assert {s.framework for s in specs.values()} == {"ai-edge-litert"}
    assert specs["tflite-cpu"].probe_hook is None


def test_listing_tflite_backends_imports_no_framework(suite_env):
    code = ("import sys; from mnv4suite.cli import main; main(['list', 'backends']);"
            "print('HEAVY', [m for m in ('tensorflow', 'keras', 'ai_edge_litert', 'torch') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], env=suite_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []"
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("tflite-")}
    assert set(rows) == {"tflite-cpu", "tflite-cpu-int8", "tflite-gpu", "tflite-edgetpu", "tflite-hexagon"}
    assert "(runs when named)" in rows["tflite-cpu-int8"]  # a precision variant: not in a run naming no backend


# --------------------------------------------------------------------------- where the ops ran


class GraphAfterDelegation:
    """What LiteRT's interpreter lists after delegation: the file's nodes, then one DELEGATE node per partition."""

    def __init__(self, ops, names):
        self.ops, self.names = ops, names

    def _get_ops_details(self):
        return [{"index": i, **op} for i, op in enumerate(self.ops)]

    def get_tensor_details(self):
        return [{"index": i, "name": n} for i, n in self.names.items()]


def test_placement_finds_the_ops_no_delegate_partition_took():
    from mnv4suite.plugins.tflite.session import placement

    graph = GraphAfterDelegation(
        [
            {"op_name": "CONV_2D", "inputs": [0, 10, 11], "outputs": [1]},
            {"op_name": "DEPTHWISE_CONV_2D", "inputs": [1, 12], "outputs": [2]},
            {"op_name": "ADD", "inputs": [2, 1], "outputs": [3]},
            {"op_name": "SOFTMAX", "inputs": [3], "outputs": [4]},
            {"op_name": "FULLY_CONNECTED", "inputs": [4, 13, -1], "outputs": [5]},
            {"op_name": "DELEGATE", "inputs": [0, 10, 11, 12], "outputs": [3]},  # took nodes 0-2
            {"op_name": "DELEGATE", "inputs": [4, 13], "outputs": [5]},  # took node 4
        ],
        {3: "block/add", 4: "head/softmax", 5: "logits"},
    )
    found = placement(graph)
    assert (found.ops, found.partitions, found.delegated) == (5, 2, 4)
    assert found.leftover == ["SOFTMAX (node 3: head/softmax)"] and not found.complete
    undelegated = placement(GraphAfterDelegation(graph.ops[:5], graph.names))
    assert undelegated.partitions == 0 and len(undelegated.leftover) == 5


def test_converter_chatter_is_held_back_unless_the_conversion_fails(capfd):
    from mnv4suite.plugins.tflite.convert import native_stderr_held_back

    with native_stderr_held_back():
        os.write(2, b"I0000 oneDNN custom operations are on\n")
    assert "oneDNN" not in capfd.readouterr().err
    with pytest.raises(RuntimeError), native_stderr_held_back():
        os.write(2, b"E0000 converter: unsupported op\n")
        raise RuntimeError("conversion failed")
    assert "unsupported op" in capfd.readouterr().err


# --------------------------------------------------------------------------- the Edge TPU compiler step

COMPILER_LOG = textwrap.dedent("""\
    Edge TPU Compiler version 16.0.384591198
    Started a compilation timeout timer of 300 seconds.

    Model compiled successfully in 1733 ms.

    Input model: model_int8.tflite
    Input size: 3.96MiB
    Output model: model_int8_edgetpu.tflite
    Output size: 4.21MiB
    On-chip memory used for caching model parameters: 3.80MiB
    On-chip memory remaining for caching model parameters: 3.34MiB
    Off-chip memory used for streaming uncached model parameters: 0.00B
    Number of Edge TPU subgraphs: 1
    Total number of operations: 65
    Operation log: model_int8_edgetpu.log

    Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
    Number of operations that will run on Edge TPU: 63
    Number of operations that will run on CPU: 2

    Operator                       Count      Status

    CONV_2D                        31         Mapped to Edge TPU
    DEPTHWISE_CONV_2D              15         Mapped to Edge TPU
    PAD                            5          Mapped to Edge TPU
    ADD                            10         Mapped to Edge TPU
    MEAN                           1          Mapped to Edge TPU
    RESHAPE                        1          More than one subgraph is not supported
    FULLY_CONNECTED                1          Operation is otherwise supported, but not mapped due to some unspecified limitation
    Compilation child process completed within timeout period.
    Compilation succeeded!
""")


def test_compiler_log_is_read_into_mapped_and_cpu_ops():
    report = edgetpu.parse_log(COMPILER_LOG)
    assert report.version == "16.0.384591198" and report.succeeded
    assert report.mapped == 62 and len(report.ops) == 7
    assert report.cpu_fallback_ops() == [
        "RESHAPE x1: More than one subgraph is not supported",
        "FULLY_CONNECTED x1: Operation is otherwise supported, but not mapped due to some unspecified limitation",
    ]
    summary = report.to_dict()
    assert summary["ops_on_edgetpu"] == 63 and summary["ops_on_cpu"] == 2 and summary["total_ops"] == 65
    assert summary["on_chip_memory_used"] == "3.80MiB" and summary["edgetpu_subgraphs"] == 1


def test_a_failed_compilation_is_recognised():
    report = edgetpu.parse_log(
        "Edge TPU Compiler version 16.0.384591198\nERROR: Attempting to use a delegate that only supports "
        "static-sized tensors with a graph that has dynamic-sized tensors.\nCompilation failed: Model failed in "
        "Tflite interpreter.\nCompilation failed!\n"
    )
    assert not report.succeeded and report.errors[0].startswith("ERROR: Attempting to use a delegate")


@pytest.fixture
def fake_compiler(tmp_path):
    """An edgetpu_compiler stand-in: prints the real compiler's report, copies the model to <stem>_edgetpu.tflite
    and counts its runs; `FAIL` in the environment makes it fail as the real one does on a bad model."""
    log = tmp_path / "compiler-log.txt"
    log.write_text(COMPILER_LOG)
    calls = tmp_path / "compiler-calls"
    script = f"""#!{sys.executable}
import os, shutil, sys
from pathlib import Path
args = sys.argv[1:]
if args == ["--version"]:
    print("Edge TPU Compiler version 16.0.384591198"); sys.exit(0)
with open({str(calls)!r}, "a") as f:
    f.write(" ".join(args) + "\\n")
if os.environ.get("FAKE_EDGETPU_FAIL"):
    print("Edge TPU Compiler version 16.0.384591198")
    print("ERROR: Didn't find op for builtin opcode 'BATCH_MATMUL' version '4'")
    print("Compilation failed!"); sys.exit(1)
out = Path(args[args.index("-o") + 1]); model = Path(args[-1])
assert "-s" in args, args
shutil.copyfile(model, out / (model.stem + "_edgetpu.tflite"))
print(Path({str(log)!r}).read_text())
"""
    return executable(tmp_path / "edgetpu_compiler", script), calls


def test_compiled_artifact_is_cached_with_the_compiler_report(fake_compiler, tmp_path, monkeypatch):
    from mnv4suite.cache import ArtifactCache
    from mnv4suite.plugins.tflite.backend import TFLiteEdgeTPUBackend

    compiler, calls = fake_compiler
    monkeypatch.setenv(probes.EDGETPU_COMPILER_ENV, str(compiler))
    int8_file = tmp_path / "int8.tflite"
    int8_file.write_bytes(b"TFL3 pretend int8 model")
    int8 = Artifact(kind="tflite", path=int8_file, sha256="ab" * 32, details={"precision": "int8"})
    cache = ArtifactCache(tmp_path / "cache")
    tpu = backend("tflite-edgetpu")
    assert isinstance(tpu, TFLiteEdgeTPUBackend)
    first = tpu._compiled(int8, str(compiler), cache, dict(int8.details))
    assert first.kind == "tflite-edgetpu" and not first.cached
    assert first.path.read_bytes() == int8_file.read_bytes()
    report = first.details["edgetpu"]
    assert report["compiled"] and report["compiler_version"] == "16.0.384591198"
    assert report["ops_on_edgetpu"] == 63 and report["ops_on_cpu"] == 2
    assert first.details["cpu_fallback_ops"][0].startswith("RESHAPE x1")
    assert first.details["int8_tflite"]["path"] == str(int8_file)
    assert report["command"].startswith(f"{compiler} -s -t 300 -o . ")
    assert len(calls.read_text().splitlines()) == 1, "one compilation makes both the model and its log"

    again = tpu._compiled(int8, str(compiler), cache, dict(int8.details))
    assert again.cached and again.sha256 == first.sha256 and again.details["edgetpu"] == report
    assert len(calls.read_text().splitlines()) == 1, "a cache hit does not run the compiler"
    assert tpu.versions()["edgetpu_compiler"] == "16.0.384591198"

    monkeypatch.setenv("FAKE_EDGETPU_FAIL", "1")
    other = Artifact(kind="tflite", path=int8_file, sha256="cd" * 32, details={})
    with pytest.raises(UnavailableError, match="could not compile the int8 model: ERROR: Didn't find op"):
        tpu._compiled(other, str(compiler), cache, {})


# --------------------------------------------------------------------------- prepare: what is refused early


def stub_model(model_id: str, resolution: int = 224) -> PreparedModel:
    spec = ModelSpec(id=model_id, builder="unused:unused", resolution=resolution)
    return PreparedModel(spec=spec, module=None, weights="none", checksum="0" * 64)


@pytest.mark.parametrize("model_id", ["mnv2-1.0", "tiny-cnn"])
def test_models_without_a_keras_twin_are_refused_with_the_supported_list(model_id, tmp_path):
    from mnv4suite.cache import ArtifactCache

    with pytest.raises(UserError) as info:
        backend("tflite-cpu").prepare(stub_model(model_id), ArtifactCache(tmp_path))
    message = str(info.value)
    assert f"'{model_id}' has none" in message and all(m in message for m in MNV4)


def test_int8_needs_a_calibration_set_of_the_model_input_shape(tmp_path):
    from mnv4suite.cache import ArtifactCache

    cache = ArtifactCache(tmp_path)
    for backend_id in ("tflite-edgetpu", "tflite-hexagon"):
        with pytest.raises(UserError, match="needs a calibration set"):
            backend(backend_id).prepare(stub_model("mnv4-conv-s"), cache, None)
        with pytest.raises(UserError, match="needs a calibration set"):
            backend(backend_id).prepare(stub_model("mnv4-conv-s"), cache, CalibrationSet("empty", True, []))
    wrong = calibration_of(np.zeros((2, 3, 32, 32), np.float32), "32 px images")
    with pytest.raises(UserError, match=r"must be NCHW float32 \(1, 3, 224, 224\)"):
        backend("tflite-edgetpu").prepare(stub_model("mnv4-conv-s"), cache, wrong)
    assert not list(Path(tmp_path).rglob("*.tflite")), "nothing was converted"


# --------------------------------------------------------------------------- conversion (one fp32 file shared)


@pytest.fixture(scope="module")
def conv_s_weights(timm_fixtures) -> Path:
    return timm_fixtures / CONV_S_WEIGHTS


@pytest.fixture(scope="module")
def conv_s(conv_s_weights):
    from mnv4suite.models import prepare_model
    from mnv4suite.registry import get_registry

    return prepare_model(get_registry().models.get("mnv4-conv-s"), str(conv_s_weights))


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One artifact cache for this module: the fp32 Conv-S file is converted once and reused."""
    return tmp_path_factory.mktemp("tflite-cache")


@pytest.fixture(scope="module")
def fp32_artifact(conv_s, shared_cache):
    from mnv4suite.cache import ArtifactCache

    return backend("tflite-cpu").prepare(conv_s, ArtifactCache(shared_cache))


@needs_tflite
def test_fp32_file_records_its_io_ops_and_converter(fp32_artifact):
    d = fp32_artifact.details
    assert fp32_artifact.kind == "tflite" and fp32_artifact.path.suffix == ".tflite"
    assert d["precision"] == "fp32" and d["input"]["dtype"] == d["output"]["dtype"] == "float32"
    assert d["input"]["shape"] == [1, 224, 224, 3], "static batch 1, NHWC"
    assert d["output"]["shape"] == [1, 1000] and not d["input"]["quantized"]
    assert d["ops"]["CONV_2D"] > 0 and d["ops"]["DEPTHWISE_CONV_2D"] > 0
    assert set(d["converter_versions"]) == {"tensorflow", "keras"}
    print(f"conv-s fp32 conversion: {d.get('build_seconds')}")


@needs_tflite
def test_tflite_cpu_matches_pytorch_on_conv_s(conv_s, fp32_artifact, timm_fixtures):
    from mnv4suite.reference_models.export import compare_logits, torch_logits

    session = backend("tflite-cpu").load(fp32_artifact, conv_s)
    assert session.accelerator.startswith("CPU (LiteRT ") and "XNNPACK" in session.accelerator
    assert f"{session.threads} threads" in session.accelerator and session.cpu_fallback_ops == ()
    assert session.placement.complete, session.placement
    batch = natural_images(6, 224, seed=3)
    from safetensors.numpy import load_file

    batch = np.concatenate([batch, load_file(str(timm_fixtures / CONV_S_IO))["input"].astype(np.float32)])
    reference = torch_logits(conv_s.module, batch)
    got = np.concatenate([session.run(batch[i : i + 1]) for i in range(len(batch))])
    agreement = compare_logits(reference, got)
    print(agreement.describe("tflite-cpu fp32 vs PyTorch"))
    assert agreement.max_abs_diff < 1e-4 and agreement.top1_agreement == 1.0
    assert np.allclose(session.run(batch[:2]), got[:2], atol=1e-6), "a batch runs image by image"

    batched = backend("tflite-cpu")
    batched.batch = 4  # batched Offline: the batch-1 file's input resized, one invoke per 4 images
    session4 = batched.load(fp32_artifact, conv_s)
    assert session4.batch == 4 and session4.batch_note == "" and session4.input_shape[0] == 4
    got4 = session4.run(batch)  # 6 or 7 images: a full batch and a padded one
    assert got4.shape == got.shape and np.max(np.abs(got4 - got)) < 1e-5


@needs_tflite
def test_second_prepare_is_a_cache_hit_without_conversion(conv_s, fp32_artifact, shared_cache, monkeypatch):
    from mnv4suite.cache import ArtifactCache
    from mnv4suite.plugins.tflite import convert

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cached file was converted again")

    monkeypatch.setattr(convert, "convert", no_conversion)
    again = backend("tflite-cpu").prepare(conv_s, ArtifactCache(shared_cache))
    assert again.cached and again.path == fp32_artifact.path and again.sha256 == fp32_artifact.sha256
    assert "build_seconds" not in again.details
    # a different precision, weight checksum or calibration is a different file
    key = convert.cache_key(conv_s, "fp32", None)
    assert convert.cache_key(conv_s, "fp16", None) != key
    calibration = calibration_of(natural_images(2, 224, 0), "a")
    int8_key = convert.cache_key(conv_s, "int8", calibration)
    assert int8_key["calibration"] == calibration.digest
    assert convert.cache_key(conv_s, "int8", calibration_of(natural_images(2, 224, 1), "b")) != int8_key


@needs_tflite
def test_tflite_cpu_rapid_run_is_measured(run_cli, suite_env, tmp_path, shared_cache, conv_s_weights, fp32_artifact):
    env = {**suite_env, "MNV4SUITE_CACHE": str(shared_cache)}
    run = run_cli("run", "--backend", "tflite-cpu", "--model", "mnv4-conv-s", "--weights", str(conv_s_weights),
                  "--preset", "rapid", env=env)
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    b = result["backend"]
    assert b["available"] is True and b["framework"] == "ai-edge-litert" and b["hardware"] == "host-cpu"
    assert b["accelerator"].startswith("CPU (LiteRT") and "XNNPACK" in b["accelerator"]
    assert b["artifact"]["cached"] is True and b["artifact"]["sha256"] == fp32_artifact.sha256
    assert result["latency"]["kind"] == "measured" and result["latency"]["queries"] >= 64
    assert result["validity"]["result"] == "VALID" and result["estimate"] is None
    assert {"ai-edge-litert", "tensorflow", "keras"} <= set(result["system"]["frameworks"])


@needs_tflite
def test_edgetpu_run_without_the_device_stands_in_and_estimates(run_cli, tmp_path, image_folder, conv_s_weights):
    run = run_cli("run", "--backend", "tflite-edgetpu", "--model", "mnv4-conv-s", "--weights", str(conv_s_weights),
                  "--data", str(image_folder), "--preset", "rapid")
    assert run.returncode == 0, run.output
    assert "tflite-edgetpu cannot run here" in run.stderr
    [path] = result_files(tmp_path)
    result = results.read(path)
    b = result["backend"]
    assert b["available"] is False and b["hardware"] == "pixel8_edgetpu"
    reasons = " | ".join(b["unavailable_because"])
    if not probes.edgetpu_library():
        assert "libedgetpu.so.1" in reasons
    if not probes.edgetpu_devices():
        assert "no Edge TPU device" in reasons
    assert result["latency"] is None, "a missing device is never measured"
    assert result["estimate"]["kind"] == "estimated" and result["estimate"]["device"] == "pixel8_edgetpu"
    calibration = result["model"]["calibration"]
    assert calibration["synthetic"] is False and calibration["samples"] == 12
    assert str(image_folder) in calibration["source"]
    assert result["model"]["precision"] == "int8"
    assert result["mode"] == "accuracy" and result["accuracy"]["samples"] == 12
    assert result["accuracy"]["executor"].startswith("stand-in: CPU (LiteRT")
    details = b["artifact"]["details"]
    assert details["input"]["dtype"] == "int8" and details["input"]["quantized"] and details["output"]["scale"] > 0
    assert details["calibration"]["sha256"] == calibration["sha256"]
    if probes.edgetpu_compiler() is None:
        assert b["artifact"]["kind"] == "tflite" and details["edgetpu"]["compiled"] is False
        assert "edgetpu_compiler is not on $PATH" in reasons
        assert details["edgetpu"]["command"].startswith("edgetpu_compiler -s ")
        assert "the int8 file before edgetpu_compiler" in result["accuracy"]["executor"]


# --------------------------------------------------------------------------- slow: the other precisions


@pytest.mark.slow
@needs_tflite
def test_gpu_fp16_file_and_its_cpu_stand_in(conv_s, shared_cache):
    from mnv4suite.cache import ArtifactCache
    from mnv4suite.reference_models.export import compare_logits, torch_logits

    gpu = backend("tflite-gpu")
    artifact = gpu.prepare(conv_s, ArtifactCache(shared_cache))
    assert artifact.details["precision"] == "fp16" and artifact.details["input"]["dtype"] == "float32"
    assert artifact.details["ops"].get("DEQUANTIZE", 0) > 0, "fp16 weights are dequantized in the graph"
    session = gpu.stand_in(artifact, conv_s)
    assert "fp16 file" in session.accelerator and "fp32" in session.accelerator
    batch = natural_images(8, 224, seed=5)
    reference, got = torch_logits(conv_s.module, batch), session.run(batch)
    agreement = compare_logits(reference, got)
    print(agreement.describe("tflite-gpu stand-in (fp16 weights on the CPU) vs PyTorch fp32"))
    assert agreement.min_cosine > 0.9999 and agreement.top1_in_top5 == 1.0
    # fp16 weights move logits by ~1e-2: top-1 may flip only where the reference's top two nearly tie
    rows = np.arange(len(batch))
    gaps = reference[rows, reference.argmax(1)] - reference[rows, got.argmax(1)]
    print(f"reference logit gap at top-1 flips: {gaps[gaps > 0].round(4).tolist()}")
    assert np.all(gaps <= 2 * agreement.max_abs_diff)


@pytest.mark.slow
@needs_tflite
def test_int8_agrees_with_fp32(conv_s, shared_cache, fp32_artifact):
    from mnv4suite.cache import ArtifactCache
    from mnv4suite.reference_models.export import compare_logits

    tpu = backend("tflite-edgetpu")
    calibration = calibration_of(natural_images(64, 224, 100), "natural_images(64, seed 100)")
    artifact = tpu.prepare(conv_s, ArtifactCache(shared_cache), calibration)
    print(f"conv-s int8 conversion (64 calibration images): {artifact.details.get('build_seconds')}")
    batch = natural_images(24, 224, seed=7)
    fp32 = backend("tflite-cpu").load(fp32_artifact, conv_s).run(batch)
    int8 = tpu.stand_in(artifact, conv_s).run(batch)
    agreement = compare_logits(fp32, int8)
    print(agreement.describe("tflite int8 (CPU stand-in) vs tflite fp32"))
    assert agreement.mean_cosine > 0.9 and agreement.top1_in_top5 >= 0.6

    # tflite-cpu-int8 measures that very file on XNNPACK: one conversion serves all three int8 backends
    cpu_int8 = backend("tflite-cpu-int8")
    same = cpu_int8.prepare(conv_s, ArtifactCache(shared_cache), calibration)
    assert same.cached and same.sha256 == artifact.sha256 and same.path == artifact.path
    session = cpu_int8.load(same, conv_s)
    assert "XNNPACK" in session.accelerator and "stand-in" not in session.accelerator
    np.testing.assert_array_equal(session.run(batch), int8)


@pytest.mark.slow
@needs_tflite
def test_hexagon_run_without_the_dsp(run_cli, tmp_path, image_folder, conv_s_weights):
    run = run_cli("run", "--backend", "tflite-hexagon", "--model", "mnv4-conv-s", "--weights", str(conv_s_weights),
                  "--data", str(image_folder), "--preset", "rapid")
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    assert result["backend"]["available"] is False and result["latency"] is None
    assert result["estimate"]["device"] == "pixel4_hexagon"
    assert result["accuracy"]["executor"].startswith("stand-in: CPU (LiteRT")
    assert any("Hexagon" in r for r in result["backend"]["unavailable_because"])


@pytest.mark.slow
@needs_tflite
def test_edgetpu_run_with_a_compiler_reports_its_cpu_ops(run_cli, suite_env, tmp_path, image_folder, conv_s_weights,
                                                         fake_compiler):
    compiler, calls = fake_compiler
    env = {**suite_env, probes.EDGETPU_COMPILER_ENV: str(compiler)}
    run = run_cli("run", "--backend", "tflite-edgetpu", "--model", "mnv4-conv-s", "--weights", str(conv_s_weights),
                  "--data", str(image_folder), "--preset", "rapid", env=env)
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    artifact = result["backend"]["artifact"]
    assert artifact["kind"] == "tflite-edgetpu" and artifact["path"].endswith(".tflite")
    assert artifact["details"]["edgetpu"]["compiled"] is True
    assert artifact["details"]["cpu_fallback_ops"] == edgetpu.parse_log(COMPILER_LOG).cpu_fallback_ops()
    assert result["accuracy"]["executor"].startswith("stand-in: CPU (LiteRT")
    assert "edgetpu_compiler is not on $PATH" not in " ".join(result["backend"]["unavailable_because"])
    assert len(calls.read_text().splitlines()) == 1


@pytest.mark.slow
@needs_tflite
def test_hybrid_m_converts_with_a_static_batch(tmp_path):
    """Mobile MQA (reshapes, batch matmuls, softmax) through the static-batch export, fp32 against PyTorch."""
    from mnv4suite.cache import ArtifactCache
    from mnv4suite.models import prepare_model
    from mnv4suite.reference_models.export import compare_logits, torch_logits
    from mnv4suite.registry import get_registry

    model = prepare_model(get_registry().models.get("mnv4-hybrid-m"))
    cpu = backend("tflite-cpu")
    artifact = cpu.prepare(model, ArtifactCache(tmp_path))
    assert artifact.details["input"]["shape"] == [1, 256, 256, 3]
    batch = natural_images(2, 256, seed=11)
    agreement = compare_logits(torch_logits(model.module, batch), cpu.load(artifact, model).run(batch))
    assert agreement.max_abs_diff < 1e-3 and agreement.top1_agreement == 1.0
