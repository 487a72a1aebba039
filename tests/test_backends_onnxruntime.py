"""ONNX Runtime on CUDA and on Qualcomm QNN (Hexagon HTP): probes, the int8 QDQ artifact, the HTP emulator.

There is no real image data here. Calibration and evaluation inputs are generated "natural-ish"
images (smooth gradients, soft blobs, hard-edged shapes, gentle texture), normalised with the
ImageNet mean and std the suite's pre-processing uses; never pure noise, which gives activation
ranges no photograph has.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnv4suite import results
from mnv4suite.api import Availability, CalibrationSet, ModelSpec
from mnv4suite.errors import UnavailableError, UserError
from mnv4suite.plugins.onnxruntime import probes

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "plugins"))  # tinynet, the test-only model plugin

HAS_QNN = importlib.util.find_spec("onnxruntime_qnn") is not None
needs_emulator = pytest.mark.skipif(
    not (HAS_QNN and probes.qnn_emulator_here()),
    reason="needs the onnxruntime-qnn wheel with its x86-64 HTP emulator (pip install 'mnv4suite[qnn]')",
)
MEAN = np.array((0.485, 0.456, 0.406), dtype=np.float32)
STD = np.array((0.229, 0.224, 0.225), dtype=np.float32)


# --------------------------------------------------------------------------- natural-ish images


def natural_rgb(height: int, width: int, seed: int) -> np.ndarray:
    """An HxWx3 float image in [0, 1]: a lit gradient, soft blobs, a few hard-edged shapes, gentle texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / height, x / width
    t = np.clip(y + rng.uniform(-0.5, 0.5) * (x - 0.5), 0, 1)[..., None]
    image = rng.uniform(0, 1, 3) * (1 - t) + rng.uniform(0, 1, 3) * t
    for _ in range(int(rng.integers(2, 6))):  # soft blobs
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        alpha = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))[..., None]
        image = image * (1 - alpha) + rng.uniform(0, 1, 3) * alpha
    for _ in range(int(rng.integers(1, 4))):  # hard-edged ellipses and boxes: edges, as objects have
        cy, cx = rng.uniform(0.1, 0.9, 2)
        ry, rx = rng.uniform(0.05, 0.25, 2)
        if rng.uniform() < 0.5:
            mask = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
        else:
            mask = (np.abs(y - cy) < ry) & (np.abs(x - cx) < rx)
        shade = 0.85 + 0.3 * (y - cy)  # lit from above
        image = np.where(mask[..., None], np.clip(rng.uniform(0, 1, 3) * shade[..., None], 0, 1), image)
    frequency, phase = rng.uniform(2, 10), rng.uniform(0, 2 * np.pi)
    image = image + 0.06 * np.sin(2 * np.pi * frequency * (x * np.cos(phase) + y * np.sin(phase)))[..., None]
    image = image + rng.normal(0, 0.01, image.shape)  # faint sensor grain
    return np.clip(image, 0, 1).astype(np.float32)


def natural_batch(count: int, size: int, seed: int = 0) -> np.ndarray:
    """``count`` pre-processed NCHW float32 inputs, as the suite's ImageNet pre-processing makes them."""
    return np.stack(
        [((natural_rgb(size, size, seed + i) - MEAN) / STD).transpose(2, 0, 1) for i in range(count)]
    ).astype(np.float32)


def natural_calibration(count: int, size: int, seed: int = 1000) -> CalibrationSet:
    batch = natural_batch(count, size, seed)
    return CalibrationSet(source=f"generated natural-ish images ({count}, seed {seed})", synthetic=False,
                          samples=[batch[i : i + 1] for i in range(count)])


def natural_image_folder(root: Path, classes: int = 3, per_class: int = 4) -> Path:
    """An ImageNet-style folder (class sub-folders of JPEGs and a 1000-class label map) of natural-ish images."""
    from PIL import Image

    wnids = [f"n{i:08d}" for i in range(1000)]
    for c in range(classes):
        folder = root / wnids[c]
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = natural_rgb(48 + 4 * i, 64, seed=100 * c + i)
            Image.fromarray((pixels * 255).round().astype(np.uint8)).save(folder / f"img_{c}_{i}.JPEG", quality=92)
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {i}\n" for i, w in enumerate(wnids)))
    return root


def agreement(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    got = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
    cosine = np.sum(ref * got, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    top5 = np.argsort(got, 1)[:, -5:]
    return {
        "n": len(ref),
        "top1": float(np.mean(ref.argmax(1) == got.argmax(1))),
        "top1_in_top5": float(np.mean([r in t for r, t in zip(ref.argmax(1), top5)])),
        "cos_mean": float(cosine.mean()),
        "cos_min": float(cosine.min()),
    }


def describe(label: str, figures: dict[str, float]) -> str:
    return (f"{label}: n={figures['n']} top-1 agreement {figures['top1']:.1%}, fp32 top-1 in int8 top-5 "
            f"{figures['top1_in_top5']:.1%}, cosine mean {figures['cos_mean']:.4f} min {figures['cos_min']:.4f}")


# --------------------------------------------------------------------------- fixtures


def registry_spec(backend_id: str):
    from mnv4suite.plugin_manager import create_plugin_manager
    from mnv4suite.registry import build_registry

    return build_registry(create_plugin_manager(load_entrypoints=False)).backends.get(backend_id)


@pytest.fixture(scope="module")
def tiny_model():
    from mnv4suite.models import prepare_model

    return prepare_model(ModelSpec(id="tiny-cnn", builder="tinynet:build", resolution=32, family="test"))


@pytest.fixture
def cache(tmp_path):
    from mnv4suite.cache import ArtifactCache

    return ArtifactCache(tmp_path / "cache")


def qnn_backend():
    return registry_spec("onnxruntime-qnn").create()


def torch_logits(module, batch: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(batch)).numpy()


# --------------------------------------------------------------------------- probes


def test_qnn_probe_on_x86_names_the_emulator(monkeypatch):
    monkeypatch.setattr(probes, "machine", lambda: "x86_64")
    found = probes.qnn_probe()
    assert not found
    assert found.reasons[0] == "no Hexagon device: this is x86-64; the QNN HTP backend here is Qualcomm's emulator"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FastRPC device nodes are a Linux/Android thing")
def test_qnn_probe_on_arm_looks_for_the_fastrpc_device(monkeypatch):
    monkeypatch.setattr(probes, "machine", lambda: "aarch64")
    monkeypatch.setattr(probes, "fastrpc_nodes", lambda: [])
    found = probes.qnn_probe()
    assert not found and found.reasons[0].startswith("no Hexagon device: no FastRPC device node (/dev/fastrpc-cdsp")
    monkeypatch.setattr(probes, "fastrpc_nodes", lambda: ["/dev/fastrpc-cdsp"])
    if HAS_QNN:  # the wheel's libraries are there too
        assert probes.qnn_probe().available


def test_qnn_probe_without_the_wheel_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime_qnn" else real_find_spec(name, *a))
    found = registry_spec("onnxruntime-qnn").probe()
    assert not found
    assert any("'onnxruntime_qnn' is not installed" in r and "mnv4suite[qnn]" in r for r in found.reasons)


def test_cuda_probe_reasons(monkeypatch):
    wheels = {"onnxruntime": "1.32.0"}
    monkeypatch.setattr(probes, "distribution_version", lambda name: wheels.get(name))
    monkeypatch.setattr(probes, "ort_cuda_provider_library", lambda: None)
    monkeypatch.setattr(probes, "nvidia_device_nodes", lambda: [])
    monkeypatch.setattr(probes, "nvidia_gpu_names", lambda: ["NVIDIA H100 80GB HBM3"])

    found = probes.cuda_probe()  # the CPU wheel, no GPU
    assert not found
    assert "the installed wheel is 'onnxruntime' 1.32.0, the CPU build, which has no CUDAExecutionProvider" in found.reasons[0]
    assert "pip install onnxruntime-gpu" in found.reasons[0]
    if sys.platform.startswith("linux"):
        assert found.reasons[1].startswith("no NVIDIA GPU: no /dev/nvidia[0-9]* device node")

    wheels["onnxruntime-gpu"] = "1.32.0"  # both wheels, and the CPU one's files won the shared module
    assert "both 'onnxruntime' 1.32.0 and 'onnxruntime-gpu' 1.32.0 are installed" in probes.cuda_probe().reasons[0]

    del wheels["onnxruntime"]  # the GPU wheel alone, and a GPU
    monkeypatch.setattr(probes, "ort_cuda_provider_library", lambda: Path("capi/libonnxruntime_providers_cuda.so"))
    monkeypatch.setattr(probes, "nvidia_device_nodes", lambda: ["/dev/nvidia0"])
    assert probes.cuda_probe() == Availability.ok("GPU: NVIDIA H100 80GB HBM3")


@pytest.mark.skipif(probes.cuda_probe().available, reason="this machine has ONNX Runtime's CUDA build and a GPU")
def test_cuda_full_probe_without_a_gpu_build_gives_the_cheap_reasons():
    backend = registry_spec("onnxruntime-cuda").create()
    found = backend.probe()
    assert not found and found.reasons == probes.cuda_probe().reasons
    assert backend.stand_in(None, None) is None  # nothing here executes GPU numerics


@pytest.mark.skipif(probes.cuda_probe().available, reason="this machine has ONNX Runtime's CUDA build and a GPU")
def test_a_cuda_session_is_never_a_cpu_session_in_disguise(tmp_path):
    import onnxruntime as ort

    from mnv4suite.plugins.onnxruntime.backend import _conv_probe_model, cuda_session

    _conv_probe_model(tmp_path / "conv.onnx")
    with pytest.raises(UnavailableError, match="offers no CUDAExecutionProvider"):
        cuda_session(str(tmp_path / "conv.onnx"), ort.SessionOptions())


def test_node_placement_is_read_from_ort_partitioning(tmp_path):
    import onnxruntime as ort

    from mnv4suite.plugins.onnxruntime.backend import RECORD_ASSIGNMENT, _conv_probe_model, assigned_nodes

    _conv_probe_model(tmp_path / "conv.onnx")
    options = ort.SessionOptions()
    options.add_session_config_entry(RECORD_ASSIGNMENT, "1")
    session = ort.InferenceSession(str(tmp_path / "conv.onnx"), options, providers=["CPUExecutionProvider"])
    placement = assigned_nodes(session)
    assert list(placement) == ["CPUExecutionProvider"]
    assert [n.split(" ")[0] for n in placement["CPUExecutionProvider"]] == ["Conv"]


def test_cheap_probes_import_no_framework():
    code = (
        "import sys; from mnv4suite.plugins.onnxruntime import probes; probes.cuda_probe(); probes.qnn_probe(); "
        "probes.qnn_emulator_here(); print([m for m in ('onnxruntime', 'onnxruntime_qnn', 'torch', 'onnx') "
        "if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_list_shows_the_cuda_and_qnn_backends_with_reasons(run_cli):
    run = run_cli("list", "backends")
    assert run.returncode == 0, run.output
    rows = {line.split()[0]: line for line in run.stdout.splitlines() if line.startswith("onnxruntime-")}
    assert {"onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-qnn"} <= set(rows)
    assert "pixel4_hexagon" in rows["onnxruntime-qnn"] and "int8" in rows["onnxruntime-qnn"]
    assert "cuda-gpu" in rows["onnxruntime-cuda"]
    if HAS_QNN and probes.machine() in probes.X86_MACHINES:
        assert "no Hexagon device: this is x86-64; the QNN HTP backend here is Qualcomm's emulator" in rows["onnxruntime-qnn"]


# --------------------------------------------------------------------------- the int8 QDQ artifact


def test_prepare_needs_a_calibration_set(tiny_model, cache):
    with pytest.raises(UserError, match="calibration set"):
        qnn_backend().prepare(tiny_model, cache, None)


def test_qdq_artifact_is_int8_per_channel_and_cached_by_calibration(tiny_model, cache):
    import onnx
    from onnx import TensorProto

    backend = qnn_backend()
    calibration = natural_calibration(12, 32)
    first = backend.prepare(tiny_model, cache, calibration)
    again = backend.prepare(tiny_model, cache, calibration)
    assert not first.cached and again.cached, "the second prepare is a cache hit"
    assert (again.path, again.sha256) == (first.path, first.sha256)
    assert first.kind == "onnx-qdq-int8"
    assert first.details["calibration"]["sha256"] == calibration.digest
    assert first.details["float_nodes"] == []

    other = backend.prepare(tiny_model, cache, natural_calibration(12, 32, seed=5000))
    assert not other.cached and other.path != first.path, "another calibration set is another artifact"

    model = onnx.load(str(first.path))
    initializers = {i.name: i for i in model.graph.initializer}
    weights = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in initializers:
            weights[node.output[0]] = (initializers[node.input[0]].data_type, len(initializers[node.input[1]].dims))
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(convs) == 4
    for node in convs:
        dtype, scale_rank = weights[node.input[1]]
        assert dtype == TensorProto.INT8 and scale_rank == 1, f"{node.name}: int8 weights with per-channel scales"
    activation_q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert activation_q and all(initializers[n.input[2]].data_type == TensorProto.UINT8 for n in activation_q)


# --------------------------------------------------------------------------- the HTP emulator


@needs_emulator
def test_stand_in_runs_every_node_on_the_htp_emulator(tiny_model, cache):
    backend = qnn_backend()
    artifact = backend.prepare(tiny_model, cache, natural_calibration(16, 32))
    session = backend.stand_in(artifact, tiny_model)
    assert "QNN HTP emulator" in session.accelerator and "CPU fallback disabled" in session.accelerator
    assert session.cpu_fallback_ops == () and session.htp_nodes > 0
    batch = natural_batch(16, 32, seed=77)
    logits = np.concatenate([session.run(batch[i : i + 1]) for i in range(len(batch))])
    assert logits.dtype == np.float32 and logits.shape == (16, 1000)
    figures = agreement(torch_logits(tiny_model.module, batch), logits)
    print(describe("tiny-cnn int8 (HTP emulator) vs fp32 PyTorch", figures))
    assert figures["cos_mean"] > 0.99


def _qdq_with(tmp_path: Path, op: str) -> Path:
    """A QDQ model: a quantized Conv followed by one ``op`` node named 'odd_node'."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    attributes = {"axis": 1} if op == "Hardmax" else {}
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node(op, ["conv"], ["output"], name="odd_node", **attributes)],
        "odd",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "float.onnx"))
    images = natural_batch(4, 8)

    class Reader:
        def __init__(self):
            self.items = iter([{"input": images[i : i + 1]} for i in range(len(images))])

        def get_next(self):
            return next(self.items, None)

    path = tmp_path / f"{op}.qdq.onnx"
    quantize_static(str(tmp_path / "float.onnx"), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return path


@needs_emulator
def test_ops_the_htp_does_not_take_are_named_not_sent_to_the_cpu(tmp_path):
    from mnv4suite.plugins.onnxruntime.qnn import QNNSession

    with pytest.raises(UnavailableError) as info:
        QNNSession(str(_qdq_with(tmp_path, "Hardmax")), emulator=True)
    message = str(info.value)
    print(message)
    assert "CPU fallback disabled" in message and "op types Hardmax: Hardmax (odd_node)" in message


@needs_emulator
def test_float_ops_the_quantizer_left_are_named(tmp_path):
    from mnv4suite.plugins.onnxruntime.qnn import QNNSession, float_compute_nodes

    path = _qdq_with(tmp_path, "Round")  # not quantizable: stays float, which the HTP cannot finalize
    assert float_compute_nodes(path) == ["Round (odd_node)"]
    with pytest.raises(UnavailableError, match=r"left 1 node\(s\) in float.*Round \(odd_node\)"):
        QNNSession(str(path), emulator=True)


# --------------------------------------------------------------------------- end to end


def result_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))


@needs_emulator
def test_qnn_run_measures_accuracy_on_the_emulator_and_only_estimates_latency(run_cli, tmp_path):
    data = natural_image_folder(tmp_path / "imagenet")
    run = run_cli("run", "--backend", "onnxruntime-qnn", "--model", "tiny-cnn", "--data", str(data), "--preset", "rapid")
    assert run.returncode == 0, run.output
    assert "LIBNATIVE" not in run.stdout, "QNN's library banner stays off the results table"
    [path] = result_files(tmp_path)
    result = results.read(path)
    backend = result["backend"]
    assert backend["available"] is False and backend["hardware"] == "pixel4_hexagon"
    assert backend["unavailable_because"] == ["no Hexagon device: this is x86-64; the QNN HTP backend here is Qualcomm's emulator"]
    assert backend["artifact"]["kind"] == "onnx-qdq-int8" and backend["artifact"]["cached"] is False
    assert result["latency"] is None, "the emulator's speed is never reported"
    assert result["mode"] == "accuracy" and result["validity"]["result"] == "ACCURACY-ONLY"
    executor = result["accuracy"]["executor"]
    assert executor.startswith("stand-in: ") and "QNN HTP emulator" in executor, executor
    assert result["accuracy"]["samples"] == 12
    assert result["estimate"]["kind"] == "estimated" and result["estimate"]["device"] == "pixel4_hexagon"
    assert result["estimate"]["ms"] > 0 and result["estimate"]["bytes_per_element"] == 1
    calibration = result["model"]["calibration"]
    assert calibration["synthetic"] is False and calibration["samples"] == 12 and str(data) in calibration["source"]
    assert backend["artifact"]["details"]["calibration"]["sha256"] == calibration["sha256"]
    assert {"onnxruntime", "onnxruntime-qnn", "qnn-sdk"} <= set(result["system"]["frameworks"])

    again = run_cli("run", "--backend", "onnxruntime-qnn", "--model", "tiny-cnn", "--data", str(data), "--preset", "rapid")
    assert again.returncode == 0, again.output
    [second] = set(result_files(tmp_path)) - {path}
    artifact = results.read(second)["backend"]["artifact"]
    assert artifact["cached"] is True and artifact["sha256"] == backend["artifact"]["sha256"]


@pytest.mark.skipif(probes.cuda_probe().available, reason="this machine has ONNX Runtime's CUDA build and a GPU")
def test_cuda_run_without_a_gpu_says_why_and_measures_nothing(run_cli, tmp_path, image_folder):
    run = run_cli("run", "--backend", "onnxruntime-cuda", "--model", "tiny-cnn", "--data", str(image_folder),
                  "--preset", "rapid")
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    assert result["backend"]["available"] is False
    assert result["backend"]["unavailable_because"] == list(probes.cuda_probe().reasons)
    assert result["backend"]["artifact"]["kind"] == "onnx"  # still prepared: the same fp32 file as onnxruntime-cpu
    assert result["latency"] is None and result["accuracy"] is None and result["estimate"] is None
    assert result["validity"]["result"] == "NOT-MEASURED"


@pytest.mark.skipif(not probes.cuda_probe().available, reason="needs onnxruntime-gpu and an NVIDIA GPU")
def test_cuda_run_on_the_gpu_measures_and_names_cpu_nodes(run_cli, tmp_path, image_folder):
    run = run_cli("run", "--backend", "onnxruntime-cuda", "--model", "tiny-cnn", "--data", str(image_folder),
                  "--preset", "rapid")
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    assert result["backend"]["available"] is True
    assert "CUDAExecutionProvider" in result["backend"]["accelerator"] and "TF32 off" in result["backend"]["accelerator"]
    assert result["backend"]["cpu_fallback_ops"] == []
    assert result["latency"]["kind"] == "measured" and result["accuracy"]["samples"] == 12


# --------------------------------------------------------------------------- MNv4 on the HTP emulator (slow)


def _mnv4_on_the_emulator(model_id: str, weights, calibration_count: int, eval_count: int, tmp_path: Path):
    import onnxruntime as ort

    from mnv4suite.cache import ArtifactCache
    from mnv4suite.models import prepare_model
    from mnv4suite.reference_models import model_specs

    spec = next(s for s in model_specs() if s.id == model_id)
    model = prepare_model(spec, weights)
    backend = qnn_backend()
    artifact = backend.prepare(model, ArtifactCache(tmp_path / "cache"), natural_calibration(calibration_count, spec.resolution))
    assert artifact.details["float_nodes"] == []
    session = backend.stand_in(artifact, model)
    assert session.cpu_fallback_ops == ()
    batch = natural_batch(eval_count, spec.resolution, seed=0)  # calibration uses seeds from 1000 on
    htp = np.concatenate([session.run(batch[i : i + 1]) for i in range(eval_count)])
    reference = torch_logits(model.module, batch)
    # The QDQ graph's defining semantics (dequantize -> float op -> quantize, unfused) on ORT's CPU EP. Not its
    # fused int8 kernels: on x86 without VNNI their u8s8 arithmetic can saturate, a CPU quirk, not the model's.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    cpu = ort.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
    cpu_qdq = np.concatenate([cpu.run(None, {"input": batch[i : i + 1]})[0] for i in range(eval_count)])
    vs_torch, vs_cpu = agreement(reference, htp), agreement(cpu_qdq, htp)
    label = f"{model_id} ({model.weights.split('/')[-1]})"
    print(describe(f"{label} int8 on the HTP emulator vs fp32 PyTorch", vs_torch))
    print(describe(f"{label} int8 QDQ reference semantics (ORT CPU, unfused) vs fp32 PyTorch", agreement(reference, cpu_qdq)))
    print(describe(f"{label} int8 on the HTP emulator vs the QDQ graph's reference semantics (ORT CPU, unfused)", vs_cpu))
    print(f"{label}: {session.htp_nodes} nodes on the HTP; fp32 top-1 classes: {len(set(reference.argmax(1)))} "
          f"distinct of {eval_count}")
    return vs_torch, vs_cpu


@pytest.mark.slow
@needs_emulator
def test_mnv4_conv_s_int8_on_the_emulator_agrees_with_pytorch(timm_fixtures, tmp_path):
    """Conv-S with the trained timm weights from the shared fixtures."""
    weights = timm_fixtures / "mobilenetv4_conv_small.weights.safetensors"
    if not weights.is_file():
        pytest.skip(f"no timm Conv-S weights at {weights}")
    vs_torch, vs_cpu = _mnv4_on_the_emulator("mnv4-conv-s", str(weights), 128, 32, tmp_path)
    # Generated images are ambiguous to an ImageNet classifier (fp32 top-1 margins are small), so top-1
    # agreement is a noisy figure here; the cosine of the logits and top-5 containment are the stable ones.
    assert vs_torch["cos_mean"] > 0.92 and vs_torch["top1_in_top5"] >= 0.6
    assert vs_cpu["cos_mean"] > 0.92


@pytest.mark.slow
@needs_emulator
@pytest.mark.parametrize("model_id, eval_count", [("mnv4-conv-m", 12), ("mnv4-conv-l", 6)])
def test_mnv4_conv_m_l_run_entirely_on_the_emulator(model_id, eval_count, tmp_path):
    """Seeded random weights (no trained checkpoint here): proves the graph runs on the HTP op set; the
    agreement figures are printed but say little about int8 accuracy with trained weights."""
    vs_torch, vs_cpu = _mnv4_on_the_emulator(model_id, None, 32, eval_count, tmp_path)
    assert vs_torch["cos_mean"] > 0.95 and vs_cpu["cos_mean"] > 0.95


def test_cpu_int8_backend_quantizes_on_the_calibration_set_and_runs_qdq(tiny_model, cache):
    import onnx

    from mnv4suite.api import CalibrationSet
    from mnv4suite.errors import UserError
    from mnv4suite.reference_models.probe_images import natural_images
    from mnv4suite.registry import get_registry

    spec = get_registry().backends.get("onnxruntime-cpu-int8")
    assert (spec.precision, spec.hardware, spec.in_default_run) == ("int8", "host-cpu", False)
    int8 = spec.create()
    with pytest.raises(UserError, match="needs a calibration set"):
        int8.prepare(tiny_model, cache, None)
    calibration = CalibrationSet("photo-like images", True, list(natural_images(32, 32, seed=2)[:, None]))
    artifact = int8.prepare(tiny_model, cache, calibration)
    assert artifact.kind == "onnx-qdq-int8" and artifact.details["calibration"]["sha256"] == calibration.digest
    graph = onnx.load(str(artifact.path)).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    # the stem conv reads the float image directly and its weights stay float; every other conv is int8
    convs = [n for n in graph.node if n.op_type == "Conv"]
    float_weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    assert convs[0].input[0] == graph.input[0].name and convs[0].input[1] in float_weights
    assert all(c.input[0] != graph.input[0].name and c.input[1] not in float_weights for c in convs[1:])
    assert len(convs) > 1
    again = int8.prepare(tiny_model, cache, calibration)
    assert again.cached and again.sha256 == artifact.sha256
    other = int8.prepare(tiny_model, cache, CalibrationSet("other", True, calibration.samples[:8]))
    assert other.sha256 != artifact.sha256, "the calibration set is part of the key"

    session = int8.load(artifact, tiny_model)
    assert session.accelerator.endswith("int8 QDQ)")
    x = natural_images(16, 32, seed=5)
    fp32 = get_registry().backends.get("onnxruntime-cpu").create()
    reference_session = fp32.load(fp32.prepare(tiny_model, cache), tiny_model)

    def logits(s):  # the exports take batch 1
        return np.concatenate([s.run(x[i:i + 1]) for i in range(len(x))])

    found = agreement(logits(reference_session), logits(session))
    assert found["cos_mean"] > 0.98, describe("onnxruntime-cpu-int8 vs fp32", found)
