"""Core ML on the Apple Neural Engine: the probe, the cached fp16 ML Program, the missing-device path.

Off macOS nothing can execute an ML Program, so the checks here are structural (inputs, outputs,
dtypes, the operations coremltools produced); predictions are tested only where Core ML runs.
"""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnv4suite import results
from mnv4suite.api import ModelSpec, PreparedModel
from mnv4suite.cache import ArtifactCache
from mnv4suite.errors import UnavailableError
from mnv4suite.plugins.coreml import probe_coreml, register_backends

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "plugins"))  # tinynet, the test-only model plugin

HAS_COREMLTOOLS = importlib.util.find_spec("coremltools") is not None and importlib.util.find_spec("torch") is not None
needs_coremltools = pytest.mark.skipif(not HAS_COREMLTOOLS, reason="needs coremltools and torch (pip install 'mnv4suite[coreml]')")
[SPEC] = register_backends()
CORE_ML_HERE = bool(SPEC.probe())
HERE = f"Core ML runs only on macOS; this is {platform.system()} {platform.machine()}"


# --------------------------------------------------------------------------- probe (no imports)


@pytest.mark.parametrize(
    ("system", "machine", "reason"),
    [
        ("Linux", "x86_64", "Core ML runs only on macOS; this is Linux x86_64"),
        ("Linux", "aarch64", "Core ML runs only on macOS; this is Linux aarch64"),
        ("Windows", "AMD64", "Core ML runs only on macOS; this is Windows AMD64"),
        ("Darwin", "x86_64", "no Apple Neural Engine: this Mac has an Intel CPU (x86_64); the Neural Engine needs Apple silicon (arm64)"),
    ],
)
def test_probe_says_exactly_why(system, machine, reason):
    found = probe_coreml(system, machine)
    assert not found and found.reasons == (reason,)


def test_apple_silicon_probe_notes_that_the_mac_is_not_an_iphone(monkeypatch):
    import mnv4suite.plugins.coreml as plugin

    monkeypatch.setattr(plugin, "_runtime_binding_present", lambda: True)
    found = probe_coreml("Darwin", "arm64")
    assert found and "not an iPhone 13's" in found.notes[0]
    monkeypatch.setattr(plugin, "_runtime_binding_present", lambda: False)
    found = probe_coreml("Darwin", "arm64")
    assert not found and "libcoremlpython" in found.reasons[0]


def test_spec():
    assert (SPEC.id, SPEC.framework, SPEC.delegate, SPEC.precision, SPEC.hardware) == (
        "coreml-ane", "coremltools", "ane", "fp16", "iphone13_ane")
    assert {r.module for r in SPEC.requires} == {"coremltools", "torch"}


def test_probe_imports_nothing_heavy():
    code = ("import sys; from mnv4suite.plugins.coreml import register_backends; [s.probe() for s in register_backends()];"
            "print([m for m in ('torch', 'coremltools', 'tensorflow') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --------------------------------------------------------------------------- conversion and the cache


@pytest.fixture(scope="module")
def tiny():
    import tinynet
    import torch

    from mnv4suite.models import state_dict_checksum

    torch.manual_seed(0)
    module = tinynet.build("tiny-cnn")
    spec = ModelSpec(id="tiny-cnn", builder="tinynet:build", resolution=tinynet.RESOLUTION)
    return PreparedModel(spec=spec, module=module, weights="test", checksum=state_dict_checksum(module))


@pytest.fixture(scope="module")
def prepared(tiny, tmp_path_factory):
    """tiny-cnn prepared twice through one cache: (backend, first artifact, second artifact)."""
    cache = ArtifactCache(tmp_path_factory.mktemp("coreml-cache"))
    backend = SPEC.create()
    return backend, backend.prepare(tiny, cache), backend.prepare(tiny, cache)


@needs_coremltools
def test_prepare_converts_once_then_reuses_the_package(prepared):
    _, first, second = prepared
    assert first.kind == "coreml-mlpackage" and first.path.name == "artifact.mlpackage.zip"
    assert (first.cached, second.cached) == (False, True)
    assert second.path == first.path and second.sha256 == first.sha256
    assert first.details["convert_s"] > 0 and "convert_s" not in second.details


@needs_coremltools
def test_the_package_is_an_fp16_ml_program_with_float32_io(prepared):
    _, artifact, _ = prepared
    d = artifact.details
    assert d["inputs"] == {"input": [[1, 3, 32, 32], "FLOAT32"]}
    assert d["outputs"] == {"logits": [[1, 1000], "FLOAT32"]}
    assert d["compute_precision"] == "fp16" and d["compute_units"] == "CPU_AND_NE" and d["deployment_target"] == "iOS15"
    assert d["spec_version"] >= 6  # ML Program (iOS 15+)
    ops = d["mil_ops"]
    assert ops["conv"] == 3 and ops["linear"] == 1
    assert "batch_norm" not in ops, "coremltools fuses each conv's BN into it"
    assert ops["cast"] == 2, "fp16 inside: one cast after the float32 input, one before the float32 output"


@needs_coremltools
def test_the_zip_unpacks_to_an_mlpackage(prepared, tmp_path):
    from mnv4suite.plugins.coreml.backend import unpack

    _, artifact, _ = prepared
    with zipfile.ZipFile(artifact.path) as archive:
        names = archive.namelist()
    assert "model.mlpackage/Manifest.json" in names and all(n.startswith("model.mlpackage/") for n in names)
    package = unpack(artifact.path, tmp_path)
    assert package.name == "model.mlpackage" and (package / "Manifest.json").is_file()
    assert list(package.rglob("*.mlmodel")) and list(package.rglob("weight.bin"))


def test_pack_is_deterministic_and_unpack_refuses_foreign_entries(tmp_path):
    from mnv4suite.plugins.coreml.backend import pack, unpack

    src = tmp_path / "src.mlpackage"
    (src / "Data").mkdir(parents=True)
    (src / "Manifest.json").write_text("{}")
    (src / "Data" / "w.bin").write_bytes(b"\0" * 10)
    pack(src, tmp_path / "a.zip")
    (src / "Manifest.json").touch()  # a new mtime must not change the archive
    pack(src, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("model.mlpackage/../../escape.txt", "x")
    with pytest.raises(ValueError, match="not a packed Core ML model"):
        unpack(tmp_path / "evil.zip", tmp_path / "out")


@needs_coremltools
def test_cache_key_names_converter_and_versions(tiny):
    import coremltools
    import torch

    key = SPEC.create().cache_key(tiny)
    assert key["coremltools"] == coremltools.__version__ and key["torch"] == torch.__version__
    assert key["weights"] == tiny.checksum and key["precision"] == "fp16" and key["input_shape"] == (1, 3, 32, 32)
    assert key["compute_units"] == "CPU_AND_NE" and key["deployment_target"] == "iOS15" and "torch.export" in key["converter"]


@needs_coremltools
@pytest.mark.skipif(CORE_ML_HERE, reason="Core ML runs here")
def test_off_macos_there_is_no_stand_in_and_no_load(prepared, tiny):
    backend, artifact, _ = prepared
    found = backend.probe()
    assert not found
    if platform.system() != "Darwin":
        assert found.reasons == (HERE,)
    assert backend.stand_in(artifact, tiny) is None
    with pytest.raises(UnavailableError, match="coreml-ane cannot run here"):
        backend.load(artifact, tiny)


@needs_coremltools
@pytest.mark.skipif(not CORE_ML_HERE, reason="needs macOS on Apple silicon with Core ML")
def test_predictions_on_the_neural_engine_follow_the_pytorch_model(prepared, tiny):
    import torch

    backend, artifact, _ = prepared
    session = backend.load(artifact, tiny)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = tiny.module(torch.from_numpy(x)).numpy()
    got = session.run(x)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.max(np.abs(got - want)) < 2e-2 * max(1.0, np.abs(want).max())  # fp16 compute
    assert session.accelerator.startswith("Apple Neural Engine")


# --------------------------------------------------------------------------- end to end


@needs_coremltools
@pytest.mark.skipif(CORE_ML_HERE, reason="Core ML runs here: the run is measured, not estimated")
def test_run_off_macos_converts_says_why_and_estimates(run_cli, tmp_path):
    run = run_cli("run", "--backend", "coreml-ane", "--model", "tiny-cnn", "--preset", "rapid")
    assert run.returncode == 0, run.output
    assert f"note: coreml-ane cannot run here ({HERE})" in run.stderr
    assert run.stderr.count(HERE) == 1, "the reason is said once per run, not again by each job"
    assert "%|" not in run.stderr, "coremltools' progress bars stay out of the run's output"
    [path] = sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))
    result = results.read(path)
    b = result["backend"]
    assert b["available"] is False and b["unavailable_because"] == [HERE]
    assert b["hardware"] == "iphone13_ane" and b["framework"] == "coremltools" and b["framework_version"]
    assert b["artifact"]["kind"] == "coreml-mlpackage" and Path(b["artifact"]["path"]).is_file()
    assert b["artifact"]["details"]["mil_ops"]["conv"] == 3
    assert result["latency"] is None and result["accuracy"] is None
    assert result["estimate"]["kind"] == "estimated" and result["estimate"]["device"] == "iphone13_ane"
    assert result["estimate"]["ms"] > 0 and result["estimate"]["bytes_per_element"] == 2
    assert result["validity"]["result"] == "NOT-MEASURED"
    assert "estimated, iphone13_ane" in run.stdout

    again = run_cli("run", "--backend", "coreml-ane", "--model", "tiny-cnn", "--preset", "rapid")
    assert again.returncode == 0, again.output
    [second] = set(sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))) - {path}
    artifact = results.read(second)["backend"]["artifact"]
    assert artifact["cached"] is True and artifact["sha256"] == b["artifact"]["sha256"]


@pytest.mark.slow
@needs_coremltools
@pytest.mark.parametrize("model_id", ["mnv4-conv-s", "mnv4-hybrid-m"])
def test_mnv4_models_convert(model_id, tmp_path):
    from mnv4suite.models import prepare_model
    from mnv4suite.registry import get_registry

    model = prepare_model(get_registry().models.get(model_id))
    artifact = SPEC.create().prepare(model, ArtifactCache(tmp_path))
    d = artifact.details
    size = model.spec.resolution
    assert d["inputs"] == {"input": [[1, 3, size, size], "FLOAT32"]}
    assert d["mil_ops"]["conv"] >= 46
    if model_id.startswith("mnv4-hybrid"):
        # Mobile MQA: attention as matmul + softmax; the 8 pre-norms stay as batch_norm
        assert d["mil_ops"]["softmax"] == 8 and d["mil_ops"]["matmul"] == 16 and d["mil_ops"]["batch_norm"] == 8
