"""PyTorch backends: BN folding, channels-last, the AOTInductor package, CUDA probes and the missing GPU."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import oracle
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from mnv4suite import results  # noqa: E402
from mnv4suite.api import BackendSpec, ModelSpec, PreparedModel  # noqa: E402
from mnv4suite.cache import ArtifactCache  # noqa: E402
from mnv4suite.errors import UnavailableError  # noqa: E402
from mnv4suite.models import prepare_model, state_dict_checksum  # noqa: E402
from mnv4suite.plugins.pytorch import backend, probes, register_backends  # noqa: E402
from mnv4suite.plugins.pytorch.optimize import find_conv_bn_pairs, fold_batchnorm, optimize_for_inference  # noqa: E402
from mnv4suite.reference_models import create_model  # noqa: E402

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "plugins"))  # tinynet, the test-only model plugin
import tinynet  # noqa: E402

SPECS = {spec.id: spec for spec in register_backends()}
HAS_CUDA = torch.cuda.is_available()
TINY = ModelSpec(id="tiny-cnn", builder="tinynet:build", resolution=tinynet.RESOLUTION)


def randomise_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics, so that folding has something to get wrong."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return module.eval()


def tiny_model() -> PreparedModel:
    """tiny-cnn with non-trivial BN statistics, and the checksum of exactly those weights."""
    torch.manual_seed(0)
    module = randomise_bn(tinynet.build("tiny-cnn"))
    return PreparedModel(spec=TINY, module=module, weights="test", checksum=state_dict_checksum(module))


def logits(module, x, channels_last=False):
    with torch.inference_mode():
        inp = torch.from_numpy(x)
        if channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        return module(inp).numpy()


# --------------------------------------------------------------------------- BN folding


def test_fold_removes_every_conv_bn_pair_of_tiny_cnn_and_keeps_the_numbers():
    module = randomise_bn(tinynet.build("tiny-cnn"))
    folded, report = fold_batchnorm(module)
    assert len(report.folded) == 3 and report.kept == [] and report.error is None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in module.modules()) == 3, "the caller's module is untouched"
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(logits(folded, x), logits(module, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("model_id", "stem", "folded", "kept"),
    [("mnv4-conv-s", "mobilenetv4_conv_small", 46, 0), ("mnv4-hybrid-m", "mobilenetv4_hybrid_medium", 88, 8)],
)
def test_fold_and_channels_last_match_the_unfolded_model_on_fixture_weights(timm_fixtures, model_id, stem, folded, kept):
    """The oracle's timm-format weights and inputs: the rewritten model's logits equal the module's to float32 precision."""
    weights, io_file = timm_fixtures / f"{stem}.weights.safetensors", timm_fixtures / f"{stem}.io.safetensors"
    from safetensors.torch import load_file

    reference = create_model(model_id, weights=weights)
    optimized, details = optimize_for_inference(reference)
    assert (details["bn_folded"], details["bn_kept"], details["memory_format"]) == (folded, kept, "channels_last")
    io = load_file(str(io_file))
    x = io["input"].float().numpy()
    want, got = logits(reference, x), logits(optimized, x, channels_last=True)
    tolerance = oracle.float32_tolerance(want)  # float32 on the oracle's weights, relative to the logits
    assert np.max(np.abs(got - want)) < tolerance
    assert np.max(np.abs(got - io["logits"].float().numpy())) < tolerance, "and still equal timm's logits"
    assert (got.argmax(1) == want.argmax(1)).all()


def test_fold_keeps_the_pre_norm_of_mobile_mqa_blocks():
    """The hybrids' attention pre-norm reads a residual sum, not a conv: it stays, and so do the numbers."""
    torch.manual_seed(0)
    reference = randomise_bn(create_model("mnv4-hybrid-m"))
    pairs, kept = find_conv_bn_pairs(reference)
    assert len(kept) == 8 and all(name.endswith(".norm") and ".attn." not in name for name in kept)
    assert any(bn.endswith("attn.key.norm") for _, bn in pairs), "the key/value down-sampling conv's BN folds"
    optimized, details = optimize_for_inference(reference)
    assert details["bn_kept"] == 8
    x = np.random.default_rng(1).standard_normal((1, 3, 256, 256)).astype(np.float32)
    want = logits(reference, x)
    np.testing.assert_allclose(logits(optimized, x, channels_last=True), want, atol=1e-4 * max(1.0, np.abs(want).max()))


class SharedConvOutput(nn.Module):
    """conv -> BN, but the raw conv output also feeds a residual: folding would change the residual."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class DataDependent(nn.Module):
    """Python control flow on tensor values: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.bn(self.conv(x))
        return y if y.sum() > 0 else -y


def test_a_conv_output_read_twice_is_not_folded():
    module = randomise_bn(SharedConvOutput())
    folded, report = fold_batchnorm(module)
    assert report.folded == [] and report.kept == ["bn"]
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(logits(folded, x), logits(module, x), atol=1e-6)


def test_an_untraceable_model_runs_unfolded_and_says_why():
    module = randomise_bn(DataDependent())
    folded, report = fold_batchnorm(module)
    assert report.folded == [] and "torch.fx could not trace DataDependent" in report.error
    assert report.as_dict()["bn_fold_error"] == report.error
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(logits(folded, x), logits(module, x))


@pytest.mark.parametrize("model_id", ["mnv4-conv-s", "mnv4-conv-m", "mnv2-1.0", "mnv3l-1.0", "mnv1-1.0"])
def test_every_bn_of_the_conv_models_and_baselines_folds(model_id):
    pairs, kept = find_conv_bn_pairs(create_model(model_id))
    assert pairs and kept == []


# --------------------------------------------------------------------------- pytorch-cpu


def test_pytorch_cpu_prepare_records_the_fold_and_its_check():
    model = tiny_model()
    b = SPECS["pytorch-cpu"].create()
    artifact = b.prepare(model, ArtifactCache(None))
    assert artifact.kind == "torch-eager" and artifact.payload is not model.module
    assert artifact.details["bn_folded"] == 3 and artifact.details["memory_format"] == "channels_last"
    assert artifact.details["inference_mode"] is True
    assert artifact.details["fold_check_max_abs_diff"] < 1e-4
    session = b.load(artifact, model)
    x = backend.check_input(model)
    np.testing.assert_allclose(session.run(x), backend.reference_logits(model, x), atol=1e-5)
    assert session.accelerator.startswith("CPU (PyTorch eager")


def test_a_rewrite_that_disagrees_with_the_module_is_refused():
    model = tiny_model()
    broken = tinynet.build("tiny-cnn")  # other (random) weights: certainly different logits
    with pytest.raises(RuntimeError, match="disagrees with the PyTorch module"):
        backend.check_against_reference(model, backend.TorchSession(broken), "the test rewrite")


def test_an_ill_conditioned_check_input_is_judged_against_float64_arithmetic(monkeypatch):
    """Trained-like Hybrid-M on white noise reaches logits of 155, where float32 itself is 0.2 off exact
    arithmetic: the folded model (0.13 off) is no worse than the module and must not be refused."""
    from mnv4suite.models import prepare_model
    from mnv4suite.reference_models.probe_weights import trained_like
    from mnv4suite.registry import get_registry

    monkeypatch.setattr(backend, "check_input", lambda model, batch=1: np.random.default_rng(0).standard_normal(
        tuple(model.spec.input_shape(batch))).astype(np.float32))
    spec = get_registry().models.get("mnv4-hybrid-m")
    model = prepare_model(spec)
    trained_like(model.module, spec.resolution, seed=0)
    artifact = SPECS["pytorch-cpu"].create().prepare(model, ArtifactCache(None))
    details = artifact.details
    assert details["fold_check_max_abs_logit"] > 50 and details["fold_check_max_abs_diff"] > 1e-4 * 50
    assert details["fold_check_float64_error"] <= 2 * details["fold_check_module_float64_error"] + 0.02


def test_bf16_is_judged_by_what_bf16_can_do_and_a_broken_bf16_model_is_still_refused():
    """Trained-like Conv-S in bf16 is 11% of its largest logit off fp32, past any fixed tolerance, but no
    further from float64 than the unmodified module computing in bf16: accepted. The same model with
    one conv's weights negated is refused."""
    from mnv4suite.models import prepare_model
    from mnv4suite.reference_models.probe_weights import trained_like
    from mnv4suite.registry import get_registry

    spec = get_registry().models.get("mnv4-conv-s")
    model = prepare_model(spec)
    trained_like(model.module, spec.resolution, seed=0)
    artifact = SPECS["pytorch-cpu-bf16"].create().prepare(model, ArtifactCache(None))
    details = artifact.details
    assert details["bf16_check_max_abs_diff"] > backend.BF16_RTOL * max(1.0, details["bf16_check_max_abs_logit"])
    assert details["bf16_check_float64_error"] <= 2 * details["bf16_check_module_float64_error"] + 0.05
    broken, _ = backend.optimize_for_inference(model.module)
    with torch.no_grad():
        convs = [p for p in broken.parameters() if p.ndim == 4]
        convs[len(convs) // 2].mul_(-1)
    session = backend.TorchSession(broken.to(torch.bfloat16), channels_last=True, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="the module itself in bfloat16 is"):
        backend.check_against_reference(model, session, "the broken model", rtol=backend.BF16_RTOL,
                                        precision=torch.bfloat16)


def test_the_check_input_is_photo_like_for_image_models():
    x = backend.check_input_of_shape((1, 3, 64, 64))
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    assert np.array_equal(x, backend.check_input_of_shape((1, 3, 64, 64)))  # seeded
    neighbours = np.corrcoef(x[0, 0, :, :-1].ravel(), x[0, 0, :, 1:].ravel())[0, 1]
    assert neighbours > 0.5, "spatially correlated like a photo, not white noise"


def test_session_runs_from_another_thread():
    """LoadGen calls run() from its own thread: inference mode must hold there too."""
    import threading

    model = tiny_model()
    b = SPECS["pytorch-cpu"].create()
    session = b.load(b.prepare(model, ArtifactCache(None)), model)
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("y", session.run(backend.check_input(model))))
    thread.start()
    thread.join()
    assert out["y"].shape == (1, 1000) and out["y"].dtype == np.float32


def test_pytorch_cpu_result_names_the_rewrite(run_cli, tmp_path):
    run = run_cli("run", "--backend", "pytorch-cpu", "--model", "tiny-cnn", "--preset", "rapid")
    assert run.returncode == 0, run.output
    [path] = sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))
    result = results.read(path)
    details = result["backend"]["artifact"]["details"]
    assert details["bn_folded"] == 3 and details["memory_format"] == "channels_last"
    assert result["latency"]["kind"] == "measured" and result["latency"]["queries"] >= 64


# --------------------------------------------------------------------------- pytorch-cpu-compiled (AOTInductor)


needs_compiler = pytest.mark.skipif(probes.find_cxx() is None, reason="AOTInductor needs a C++ compiler")


def test_compiler_probe_names_the_missing_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    found = probes.probe_compiler()
    assert not found and "$CXX=no-such-compiler-xyz is not on PATH" in found.explain()
    monkeypatch.delenv("CXX")
    monkeypatch.setenv("PATH", "")
    found = SPECS["pytorch-cpu-compiled"].probe()
    assert not found and "none of g++, c++, clang++ is on PATH" in found.explain()
    assert "pytorch-cpu" in found.explain()


@needs_compiler
def test_compiled_cache_key_holds_everything_the_library_depends_on():
    model = tiny_model()
    key = SPECS["pytorch-cpu-compiled"].create().cache_key(model)
    assert key["torch"] == torch.__version__ and key["torch_git"] == torch.version.git_version
    assert key["weights"] == model.checksum and key["model"] == "tiny-cnn"
    assert key["input_shape"] == (1, 3, 32, 32) and key["memory_format"] == "channels_last"
    assert key["machine"] == platform.machine() and key["vec_isa"] and key["compiler"]
    assert key["rewrite"] == backend.REWRITE_VERSION and key["format"] == "aoti-package"


@needs_compiler
def test_compiled_package_is_built_once_then_reused_and_matches_the_module(tmp_path):
    model = tiny_model()
    b = SPECS["pytorch-cpu-compiled"].create()
    cache = ArtifactCache(tmp_path / "cache")
    first = b.prepare(model, cache)
    assert first.kind == "aoti-package" and first.path.suffix == ".pt2" and not first.cached
    assert first.details["compile_s"] > 0 and first.details["check_max_abs_diff"] < 1e-4
    second = b.prepare(model, cache)
    assert second.cached and second.path == first.path and second.sha256 == first.sha256
    assert "compile_s" not in second.details
    session = b.load(second, model)
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(session.run(x), backend.reference_logits(model, x), atol=1e-4)
    assert session.accelerator.startswith("CPU (PyTorch AOTInductor")


@needs_compiler
def test_compiled_run_end_to_end_then_from_the_cache(run_cli, tmp_path):
    run = run_cli("run", "--backend", "pytorch-cpu-compiled", "--model", "tiny-cnn", "--preset", "rapid")
    assert run.returncode == 0, run.output
    assert "FutureWarning" not in run.stderr
    again = run_cli("run", "--backend", "pytorch-cpu-compiled", "--model", "tiny-cnn", "--preset", "rapid")
    assert again.returncode == 0, again.output
    first, second = (results.read(p) for p in sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json")))
    for result in (first, second):
        assert result["backend"]["artifact"]["kind"] == "aoti-package"
        assert result["latency"]["kind"] == "measured" and result["latency"]["queries"] >= 64
        assert result["backend"]["accelerator"].startswith("CPU (PyTorch AOTInductor")
    assert [first["backend"]["artifact"]["cached"], second["backend"]["artifact"]["cached"]] == [False, True]
    assert first["backend"]["artifact"]["sha256"] == second["backend"]["artifact"]["sha256"]


@needs_compiler
def test_a_failed_compile_names_the_model_and_the_way_out(monkeypatch, tmp_path):
    import torch._inductor

    def fail(*args, **kwargs):
        raise OSError("g++: fatal error: Python.h: No such file or directory\nmore detail")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", fail)
    with pytest.raises(RuntimeError) as info:
        SPECS["pytorch-cpu-compiled"].create().prepare(tiny_model(), ArtifactCache(tmp_path))
    message = str(info.value)
    assert "could not compile tiny-cnn: OSError: g++: fatal error: Python.h" in message and "more detail" not in message
    assert "'pytorch-cpu' runs any model" in message


@pytest.mark.slow
@needs_compiler
def test_compiled_mnv4_conv_s_matches_the_fixture_weights_reference(timm_fixtures, tmp_path):
    weights = timm_fixtures / "mobilenetv4_conv_small.weights.safetensors"
    if not weights.is_file():
        pytest.skip(f"fixture weights not found at {weights}")
    from mnv4suite.registry import get_registry

    model = prepare_model(get_registry().models.get("mnv4-conv-s"), weights)
    artifact = SPECS["pytorch-cpu-compiled"].create().prepare(model, ArtifactCache(tmp_path))
    assert artifact.details["check_max_abs_diff"] < 1e-4


@pytest.mark.slow
@needs_compiler
def test_compiled_hybrid_model_with_attention(tmp_path):
    from mnv4suite.registry import get_registry

    model = prepare_model(get_registry().models.get("mnv4-hybrid-m"))
    artifact = SPECS["pytorch-cpu-compiled"].create().prepare(model, ArtifactCache(tmp_path))
    assert artifact.details["check_max_abs_diff"] <= 1e-4 * max(1.0, artifact.details["check_max_abs_logit"])


# --------------------------------------------------------------------------- pytorch-cuda


def test_torch_build_is_read_without_importing_torch():
    version, cuda = probes.torch_build()
    assert version == torch.__version__ and cuda == torch.version.cuda


@pytest.mark.parametrize(
    ("build", "device", "reasons"),
    [
        (("2.13.0+cpu", None), False, ["torch is the CPU build (2.13.0+cpu): no CUDA", probes.NO_NVIDIA_DEVICE]),
        (("2.13.0+cpu", None), True, ["torch is the CPU build (2.13.0+cpu): no CUDA"]),
        (("2.13.0", "12.8"), False, [probes.NO_NVIDIA_DEVICE]),
        (("2.13.0", "12.8"), True, []),
    ],
)
def test_cheap_cuda_probe(monkeypatch, build, device, reasons):
    monkeypatch.setattr(probes, "torch_build", lambda: build)
    monkeypatch.setattr(probes, "nvidia_device_present", lambda: device)
    found = probes.probe_cuda()
    assert list(found.reasons) == reasons and bool(found) == (not reasons)
    assert probes.NO_NVIDIA_DEVICE == "no NVIDIA device (neither /dev/nvidia0 nor /proc/driver/nvidia exists)"


def test_full_cuda_probe_names_a_driver_problem(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(probes, "nvidia_device_present", lambda: True)
    found = backend.cuda_availability()
    assert not found
    assert found.reasons == (
        f"torch {torch.__version__} (CUDA 12.8) finds no usable NVIDIA device (torch.cuda.is_available() is False: "
        "the driver may be missing or older than this CUDA build)",
    )


@pytest.mark.skipif(HAS_CUDA, reason="a GPU is present")
def test_cuda_backend_without_a_gpu_prepares_has_no_stand_in_and_refuses_to_load():
    model = tiny_model()
    b = SPECS["pytorch-cuda"].create()
    found = b.probe()
    assert not found
    if torch.version.cuda is None:
        assert f"torch is the CPU build ({torch.__version__}): no CUDA" in found.reasons
    artifact = b.prepare(model, ArtifactCache(None))  # device-free
    assert artifact.details["fold_check_max_abs_diff"] < 1e-4 and artifact.details["fp32"] == "IEEE (TF32 off)"
    assert artifact.details["execution"] == "CUDA graph replay"
    assert b.stand_in(artifact, model) is None
    with pytest.raises(UnavailableError, match="pytorch-cuda cannot run here"):
        b.load(artifact, model)


@pytest.mark.skipif(HAS_CUDA, reason="a GPU is present")
def test_cuda_run_without_a_gpu_says_so_and_measures_nothing(run_cli, tmp_path, image_folder):
    run = run_cli("run", "--backend", "pytorch-cuda", "--model", "tiny-cnn", "--preset", "rapid", "--data", str(image_folder))
    assert run.returncode == 0, run.output
    assert "pytorch-cuda cannot run here" in run.stderr
    [path] = sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))
    result = results.read(path)
    assert result["backend"]["available"] is False and result["backend"]["hardware"] == "cuda-gpu"
    assert result["backend"]["unavailable_because"] == list(SPECS["pytorch-cuda"].create().probe().reasons)
    assert result["latency"] is None and result["estimate"] is None and result["accuracy"] is None
    assert result["validity"]["result"] == "NOT-MEASURED"


NEEDS_GPU = pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU and a CUDA build of torch")


@NEEDS_GPU
def test_cuda_logits_match_the_cpu_reference():
    model = tiny_model()
    b = SPECS["pytorch-cuda"].create()
    assert b.probe()
    artifact = b.prepare(model, ArtifactCache(None))
    session = b.load(artifact, model)
    assert session.accelerator.startswith("GPU (cuda:") and "CUDA graph" in session.accelerator
    assert artifact.details["gpu_check_max_abs_diff"] < 1e-4
    assert artifact.details["graph_vs_eager_max_abs_diff_batch1"] <= 1e-5
    assert not torch.backends.cudnn.allow_tf32 or torch.backends.cudnn.conv.fp32_precision == "ieee"
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(session.run(x), backend.reference_logits(model, x), atol=1e-4)


@NEEDS_GPU
def test_cuda_graph_replays_fresh_inputs_and_captures_each_batch_size_once():
    """A replay must read this query's input (not the capture's) and return a copy, not the static buffer."""
    model = tiny_model()
    b = SPECS["pytorch-cuda"].create()
    b.batch = 4
    session = b.load(b.prepare(model, ArtifactCache(None)), model)
    assert set(session.graphs) == {model.spec.input_shape(1), model.spec.input_shape(4)}  # captured at load
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal(model.spec.input_shape(4)).astype(np.float32) for _ in range(3)]
    outs = [session.run(x) for x in xs]
    for x, out in zip(xs, outs):  # earlier answers untouched by later replays
        np.testing.assert_allclose(out, backend.reference_logits(model, x), atol=1e-4)
    session.run(xs[0][:2])  # a new shape is captured (and checked) on first use
    assert model.spec.input_shape(2) in session.graphs and len(session.graphs) == 3


@NEEDS_GPU
@pytest.mark.parametrize("backend_id, dtype", [("pytorch-cuda-fp16", torch.float16), ("pytorch-cuda-bf16", torch.bfloat16)])
def test_cuda_half_precision_graphs_take_fp32_inputs_and_stay_near_fp32(backend_id, dtype):
    model = tiny_model()
    b = SPECS[backend_id].create()
    artifact = b.prepare(model, ArtifactCache(None))
    assert artifact.details["dtype"] == str(dtype).removeprefix("torch.")
    session = b.load(artifact, model)
    assert all(p.dtype == dtype for p in session.module.parameters())
    x = np.random.default_rng(3).standard_normal(model.spec.input_shape(1)).astype(np.float32)
    got, ref = session.run(x), backend.reference_logits(model, x)
    assert got.dtype == np.float32
    assert np.max(np.abs(got - ref)) <= backend.HALF_RTOL * max(1.0, np.max(np.abs(ref)))


def test_probe_hooks_import_no_framework():
    """The hooks run at `mnv4suite list`: they must not pull torch in (checked in a fresh interpreter)."""
    import subprocess

    code = (
        "import sys; from mnv4suite.plugins.pytorch import register_backends;"
        "[s.probe() for s in register_backends()]; print('torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_specs():
    assert set(SPECS) == {"pytorch-cpu", "pytorch-cpu-bf16", "pytorch-cpu-compiled", "pytorch-cuda",
                          "pytorch-cuda-fp16", "pytorch-cuda-bf16"}
    assert all(isinstance(s, BackendSpec) and s.framework == "torch" for s in SPECS.values())
    assert {s.id: s.precision for s in SPECS.values() if s.precision != "fp32"} == {
        "pytorch-cpu-bf16": "bf16", "pytorch-cuda-fp16": "fp16", "pytorch-cuda-bf16": "bf16"}
    assert [s.id for s in SPECS.values() if not s.in_default_run] == [
        "pytorch-cpu-bf16", "pytorch-cuda-fp16", "pytorch-cuda-bf16"]  # precision variants run when named
    for variant in ("pytorch-cuda-fp16", "pytorch-cuda-bf16"):  # the fp32 backend's probe, hardware, batch
        assert SPECS[variant].probe_hook is SPECS["pytorch-cuda"].probe_hook
        assert SPECS[variant].offline_batch == SPECS["pytorch-cuda"].offline_batch == 256
    assert SPECS["pytorch-cuda"].hardware == "cuda-gpu" and SPECS["pytorch-cpu"].hardware == "host-cpu"


def test_bf16_backend_runs_the_folded_model_in_bfloat16():
    model = tiny_model()
    bf16 = SPECS["pytorch-cpu-bf16"]
    assert bf16.hardware == "host-cpu" and not bf16.in_default_run  # a precision variant, run when named
    b = bf16.create()
    artifact = b.prepare(model, None)
    assert artifact.details["dtype"] == "bfloat16" and artifact.details["bf16_check_max_abs_diff"] > 0
    assert all(p.dtype == torch.bfloat16 for p in artifact.payload.parameters())
    session = b.load(artifact, model)
    assert "bf16" in session.accelerator and session.accelerator.startswith("CPU (PyTorch eager")
    x = np.random.default_rng(0).standard_normal(model.spec.input_shape(2)).astype(np.float32)
    got, ref = session.run(x), backend.reference_logits(model, x)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= backend.BF16_RTOL * max(1.0, np.max(np.abs(ref)))
    assert np.max(np.abs(got - ref)) > 1e-6, "bf16 arithmetic should differ from fp32"
