"""Loading detector weights the safe way: safetensors or weights_only .pth, strict keys, actionable errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

from mnv4suite.errors import UserError  # noqa: E402
from mnv4suite.reference_models import create_model  # noqa: E402
from mnv4suite.reference_models.retinanet import create_detector  # noqa: E402

DETECTOR = "retinanet-mnv4-conv-s"


def scrambled(model, seed: int):
    """Every parameter and BN statistic replaced by seeded noise, so a loaded model is recognisably this one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + (0.5 if name.endswith("running_var") else -0.5))
    return model


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def source():
    return scrambled(create_detector(DETECTOR), seed=0)


def test_safetensors_round_trip(source, tmp_path):
    path = tmp_path / "detector.safetensors"
    save_file(source.state_dict(), str(path))
    loaded = create_detector(DETECTOR, weights=path)
    assert_same_state(loaded, source)
    assert loaded.weights_origin == str(path) and not loaded.training
    x = torch.randn(1, 3, 384, 384, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), source.eval()(x))


@pytest.mark.parametrize("wrapped", [False, True])
def test_pth_round_trip(source, tmp_path, wrapped):
    """Read with weights_only=True; training scripts' {"state_dict": ...} and DataParallel prefixes unwrap."""
    path = tmp_path / "detector.pth"
    state = source.state_dict()
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}} if wrapped else state, path)
    assert_same_state(create_detector(DETECTOR, weights=path), source)


def test_pth_with_code_is_refused(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(UserError, match="weights_only=True"):
        create_detector(DETECTOR, weights=path)


def test_checkpoint_of_another_detector_names_the_keys(tmp_path):
    path = tmp_path / "conv_m.safetensors"
    save_file(create_detector("retinanet-mnv4-conv-m").state_dict(), str(path))
    with pytest.raises(UserError) as info:
        create_detector(DETECTOR, weights=path)
    message = str(info.value)
    assert str(path) in message and "does not fit the model" in message
    assert "31 missing, 217 unexpected, 192 mis-shaped keys" in message
    assert "backbone.blocks.2.0.pw_exp.conv.weight (checkpoint [480, 80, 1, 1] vs model [192, 64, 1, 1])" in message


def test_checkpoint_for_another_class_count(tmp_path):
    """E.g. a Model Garden-style 91-class detector: only the class predictor is mis-shaped, and says so."""
    path = tmp_path / "coco91.safetensors"
    save_file(create_detector(DETECTOR, num_classes=91).state_dict(), str(path))
    with pytest.raises(UserError, match="0 missing, 0 unexpected, 2 mis-shaped keys") as info:
        create_detector(DETECTOR, weights=path)
    assert "head.cls_out.pw.weight (checkpoint [819, 256, 1, 1] vs model [720, 256, 1, 1])" in str(info.value)
    assert create_detector(DETECTOR, num_classes=91, weights=path).num_classes == 91


def test_missing_and_unexpected_keys(source, tmp_path):
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("head.cls_out.")}
    state["head.extra_out.weight"] = torch.zeros(3)
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    missing = r"missing: head\.cls_out\.dw\.weight, head\.cls_out\.pw\.\{bias,weight\}"
    with pytest.raises(UserError, match=missing) as info:
        create_detector(DETECTOR, weights=path)
    assert "unexpected: head.extra_out.weight" in str(info.value)


def test_a_classifier_checkpoint_is_recognised(tmp_path):
    path = tmp_path / "mnv4_conv_s_imagenet.safetensors"
    save_file(create_model("mnv4-conv-s").state_dict(), str(path))
    with pytest.raises(UserError, match="looks like an ImageNet classifier checkpoint") as info:
        create_detector(DETECTOR, weights=path)
    assert "backbone_weights" in str(info.value)


def test_backbone_from_a_classifier_checkpoint(tmp_path):
    """The classifier's body loads into the backbone; its 960/1280 convs and classifier are dropped."""
    classifier = scrambled(create_model("mnv4-conv-s"), seed=3)
    path = tmp_path / "mnv4_conv_s_imagenet.safetensors"
    save_file(classifier.state_dict(), str(path))
    detector = create_detector(DETECTOR, backbone_weights=path)
    assert detector.weights_origin == f"backbone: {path}"
    body = classifier.state_dict()
    for key, value in detector.backbone.state_dict().items():
        assert torch.equal(value, body[key]), key
    # FPN and heads keep their init: still the untrained prior
    assert torch.allclose(detector.head.cls_out.pw.bias, torch.full((720,), -4.59512), atol=1e-5)

    other = tmp_path / "mnv4_conv_m_imagenet.safetensors"
    save_file(create_model("mnv4-conv-m").state_dict(), str(other))
    with pytest.raises(UserError, match="needs an ImageNet checkpoint of mnv4-conv-s") as info:
        create_detector(DETECTOR, backbone_weights=other)
    assert "mis-shaped" in str(info.value)


def test_pretrained_detector_weights_do_not_exist():
    with pytest.raises(UserError, match="no pretrained weights are published"):
        create_detector(DETECTOR, weights="pretrained")


def test_missing_file():
    with pytest.raises(UserError, match="does not exist"):
        create_detector(DETECTOR, weights="/nonexistent/detector.safetensors")
