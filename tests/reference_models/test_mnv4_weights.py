"""Weight loading: local files (.safetensors, .pth, .bin), wrappers, clear errors, the hub cache."""

from __future__ import annotations

import hashlib
import shutil

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

from mnv4suite.errors import UserError  # noqa: E402
from mnv4suite.reference_models import create_model  # noqa: E402
from mnv4suite.reference_models.weights import load_state_dict, load_weights, parse_hub_name  # noqa: E402

MODEL = "mnv4-conv-s"
HUB_NAME = "hf-hub:timm/mobilenetv4_conv_small.e2400_r224_in1k"


@pytest.fixture(scope="module")
def source_model():
    torch.manual_seed(0)
    return create_model(MODEL)


@pytest.fixture(scope="module")
def state(source_model):
    return {k: v.clone() for k, v in source_model.state_dict().items()}


def assert_same_weights(model, state):
    got = model.state_dict()
    assert got.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(got[k], v.to(got[k].dtype)), k


def test_safetensors_roundtrip(tmp_path, state):
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    assert_same_weights(create_model(MODEL, weights=path), state)


@pytest.mark.parametrize("suffix", [".pth", ".bin", ".pt"])
@pytest.mark.parametrize("wrapper", [None, "state_dict", "model"])
def test_torch_file_roundtrip(tmp_path, state, suffix, wrapper):
    payload = state if wrapper is None else {wrapper: state, "epoch": 3, "arch": "mnv4"}
    path = tmp_path / f"w{suffix}"
    torch.save(payload, path)
    assert_same_weights(create_model(MODEL, weights=str(path)), state)


def test_training_checkpoint_with_args(tmp_path, state):
    """timm's train.py checkpoints: state dict, EMA, epoch and the argparse Namespace of the run."""
    import argparse

    path = tmp_path / "checkpoint-10.pth.tar"
    args = argparse.Namespace(model="mobilenetv4_conv_small", lr=0.1)
    torch.save({"epoch": 10, "arch": args.model, "state_dict": state, "args": args}, path)
    model = create_model(MODEL, weights=path)
    assert model.weights_origin == str(path)
    assert_same_weights(model, state)


def test_dataparallel_prefix_and_fp16(tmp_path, state):
    halved = {f"module.{k}": (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    path = tmp_path / "dp.pth"
    torch.save({"state_dict": halved}, path)
    model = create_model(MODEL, weights=path)
    assert model.conv_stem.weight.dtype == torch.float32
    torch.testing.assert_close(model.conv_stem.weight, state["conv_stem.weight"].half().float())


def test_bad_checkpoint_lists_missing_unexpected_misshaped(tmp_path, state):
    bad = dict(state)
    del bad["conv_stem.weight"], bad["blocks.2.0.dw_start.conv.weight"]
    bad["blocks.9.9.extra.weight"] = torch.zeros(3)
    bad["classifier.weight"] = torch.zeros(10, 1280)
    path = tmp_path / "bad.safetensors"
    save_file(bad, str(path))
    with pytest.raises(UserError) as info:
        create_model(MODEL, weights=path)
    msg = str(info.value)
    assert str(path) in msg
    assert "2 missing, 1 unexpected, 1 mis-shaped" in msg
    assert "conv_stem.weight" in msg and "blocks.2.0.dw_start.conv.weight" in msg
    assert "blocks.9.9.extra.weight" in msg
    assert "classifier.weight (checkpoint [10, 1280] vs model [1000, 1280])" in msg


def test_wrong_model_error_is_truncated(tmp_path, timm_fixtures):
    """A Hybrid-M checkpoint offered to Conv-S: hundreds of bad keys, a readable message."""
    with pytest.raises(UserError) as info:
        create_model(MODEL, weights=timm_fixtures / "mobilenetv4_hybrid_medium.weights.safetensors")
    msg = str(info.value)
    assert "mobilenetv4_hybrid_medium.weights.safetensors" in msg
    assert "more" in msg and len(msg) < 4000


def test_non_strict_allows_missing_but_not_misshaped(tmp_path, state):
    """strict=False is for a new head: the backbone loads, the classifier keeps its init."""
    backbone = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    path = tmp_path / "backbone.safetensors"
    save_file(backbone, str(path))
    model = create_model(MODEL, num_classes=10)
    load_weights(model, path, strict=False)
    assert torch.equal(model.conv_stem.weight, state["conv_stem.weight"])
    with pytest.raises(UserError, match="mis-shaped"):
        torch.save(state, tmp_path / "full.pth")
        load_weights(create_model(MODEL, num_classes=10), tmp_path / "full.pth", strict=False)


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "nope" / "weights.pth"
    with pytest.raises(UserError, match="does not exist") as info:
        create_model(MODEL, weights=path)
    assert str(path) in str(info.value)
    with pytest.raises(UserError, match="directory"):
        load_state_dict(tmp_path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_file(tmp_path, suffix):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(UserError) as info:
        create_model(MODEL, weights=path)
    assert str(path) in str(info.value)


def test_pickled_code_is_refused(tmp_path):
    """weights_only=True: a checkpoint carrying arbitrary objects does not load."""
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "hook": shutil.rmtree}, path)
    with pytest.raises(UserError, match="weights_only") as info:
        load_state_dict(path)
    assert "re-save just the state dict" in str(info.value)


def test_no_state_dict_inside(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(UserError, match="no state dict"):
        load_state_dict(path)


def test_parse_hub_name():
    assert parse_hub_name(HUB_NAME) == ("timm/mobilenetv4_conv_small.e2400_r224_in1k", None)
    assert parse_hub_name("hf-hub:org/repo@v1.0") == ("org/repo", "v1.0")
    with pytest.raises(UserError, match="form"):
        parse_hub_name("hf-hub:just-a-name")


# --------------------------------------------------------------------------- hub, offline


@pytest.fixture
def offline_hub(monkeypatch):
    """huggingface_hub in offline mode, so these tests can never touch the network."""
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read once, when huggingface_hub is imported


def make_hub_cache(cache_dir, repo_id, files: dict, commit: str = "a" * 40):
    """A cache laid out as huggingface_hub writes it: blobs/, refs/main, snapshots/<commit>/ symlinks."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo_dir / "blobs").mkdir()
    for name, src in files.items():
        data = src.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(f"../../blobs/{blob.name}")
    return cache_dir


def test_hub_name_from_local_cache(tmp_path, offline_hub, timm_fixtures):
    repo_id = "timm/mobilenetv4_conv_small.e2400_r224_in1k"
    weights = timm_fixtures / "mobilenetv4_conv_small.weights.safetensors"
    cache = make_hub_cache(tmp_path / "hub", repo_id, {"model.safetensors": weights})
    model = create_model("mobilenetv4_conv_small", weights=HUB_NAME, cache_dir=cache)
    assert model.weights_origin == f"{HUB_NAME} (model.safetensors)"
    reference = create_model(MODEL, weights=weights)
    assert_same_weights(model, reference.state_dict())
    # "pretrained" resolves to the same default tag
    assert_same_weights(create_model(MODEL, weights="pretrained", cache_dir=cache), reference.state_dict())


def test_hub_falls_back_to_pytorch_model_bin(tmp_path, offline_hub, state):
    bin_file = tmp_path / "pytorch_model.bin"
    torch.save(state, bin_file)
    cache = make_hub_cache(tmp_path / "hub", "someone/mnv4-finetune", {"pytorch_model.bin": bin_file})
    model = create_model(MODEL)
    origin = load_weights(model, "hf-hub:someone/mnv4-finetune", cache_dir=cache)
    assert origin == "hf-hub:someone/mnv4-finetune (pytorch_model.bin)"
    assert_same_weights(model, state)


def test_hub_miss_offline_is_a_user_error(tmp_path, offline_hub):
    with pytest.raises(UserError, match="HF_HUB_OFFLINE") as info:
        create_model(MODEL, weights=HUB_NAME, cache_dir=tmp_path / "empty")
    assert "model.safetensors" in str(info.value) and "pytorch_model.bin" in str(info.value)


def test_hub_without_huggingface_hub(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "huggingface_hub" or name.startswith("huggingface_hub."):
            raise ImportError("No module named 'huggingface_hub'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(UserError, match=r"pip install -c constraints.txt .mnv4suite\[hub\]."):
        load_state_dict(HUB_NAME)
