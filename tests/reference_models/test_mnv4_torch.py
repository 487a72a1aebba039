"""The PyTorch builder against timm: state-dict layout, parameter counts, fixture logits."""

from __future__ import annotations

import numpy as np
import oracle
import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402

from mnv4suite.errors import UnknownNameError  # noqa: E402
from mnv4suite.reference_models import create_model  # noqa: E402
from mnv4suite.reference_models.mobilenetv4 import MobileNet, build  # noqa: E402
from mnv4suite.reference_models.specs import MODEL_DEFS, TIMM_NAMES, get_model_def  # noqa: E402

PARAMS = {
    "mnv4-conv-s": 3_774_024,
    "mnv4-conv-m": 9_715_512,
    "mnv4-conv-l": 32_590_864,
    "mnv4-hybrid-m": 11_074_648,
    "mnv4-hybrid-l": 37_764_624,
}
# timm's registered reduced-width variants (fact sheet section 1)
WIDTH_VARIANT_PARAMS = [
    ("mnv4-conv-s", 0.35, 1_905_384),
    ("mnv4-conv-s", 0.5, 2_238_952),
    ("mnv4-hybrid-m", 0.75, 7_313_528),
    ("mnv4-hybrid-l", 0.75, 22_754_984),
]


def meta_model(model_id: str, **kwargs) -> MobileNet:
    """Shapes without memory or init cost."""
    with torch.device("meta"):
        return MobileNet(get_model_def(model_id), **kwargs)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("model_id", list(MODEL_DEFS))
def test_param_count(model_id):
    assert n_params(meta_model(model_id)) == PARAMS[model_id]


@pytest.mark.parametrize("model_id, multiplier, expected", WIDTH_VARIANT_PARAMS)
def test_width_multiplier_param_count(model_id, multiplier, expected):
    assert n_params(meta_model(model_id, width_multiplier=multiplier)) == expected


@pytest.mark.parametrize("model_id", list(MODEL_DEFS))
def test_state_dict_matches_timm_manifest(model_id, timm_manifest):
    expected = timm_manifest[TIMM_NAMES[model_id]]
    got = {k: list(v.shape) for k, v in meta_model(model_id).state_dict().items()}
    assert list(got) == list(expected["state_dict"])  # same keys, same order
    assert got == expected["state_dict"]
    assert PARAMS[model_id] == expected["param_count"]


def test_num_classes():
    model = meta_model("mnv4-conv-s", num_classes=10)
    assert model.classifier.weight.shape == (10, 1280)
    assert isinstance(meta_model("mnv4-conv-s", num_classes=0).classifier, torch.nn.Identity)


@pytest.mark.parametrize("timm_name", ["mobilenetv4_conv_small", "mobilenetv4_hybrid_medium"])
def test_fixture_logits(timm_name, timm_fixtures):
    """A float32 timm-format checkpoint, loaded strictly, reproduces timm's logits."""
    model = create_model(timm_name, weights=timm_fixtures / f"{timm_name}.weights.safetensors")
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    io = load_file(str(timm_fixtures / f"{timm_name}.io.safetensors"))
    with torch.inference_mode():
        logits = model(io["input"].float())
    assert logits.shape == io["logits"].shape
    torch.testing.assert_close(logits, io["logits"].float(), atol=oracle.float32_tolerance(io["logits"].numpy()), rtol=0)
    assert torch.equal(logits.argmax(1), io["logits"].argmax(1))


@pytest.mark.parametrize("timm_name", oracle.TIMM_NAMES)
def test_float64_oracle(timm_name):
    """All five models in float64 against timm's float64 logits (tests/fixtures/timm): a wrong GELU, padding
    or head split is off by far more than the 1e-9 allowed; a faithful build agrees to about 1e-12."""
    model = create_model(timm_name).double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in oracle.state_dict(timm_name).items()}, strict=True)
    with torch.inference_mode():
        got = model(torch.from_numpy(oracle.inputs(timm_name))).numpy()
    want = oracle.logits(timm_name)
    assert np.max(np.abs(got - want)) <= 1e-9 * np.max(np.abs(want))


def test_create_model_defaults():
    model = create_model("mnv4-conv-s", num_classes=7)
    assert isinstance(model, MobileNet) and not model.training
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 96, 96))  # any input size that reaches stride 32
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_hybrid_forward_random_init():
    """Hybrid-L (GELU, MQA with and without KV stride) runs at a small size with finite output."""
    model = create_model("mobilenetv4_hybrid_large", num_classes=5)
    assert isinstance(model.act1, torch.nn.GELU) and model.act1.approximate == "none"
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 128, 128))
    assert out.shape == (1, 5) and torch.isfinite(out).all()


def test_train_mode_with_drop_path_runs():
    model = create_model("mnv4-hybrid-m", num_classes=3, drop_rate=0.2, drop_path_rate=0.1).train()
    out = model(torch.randn(2, 3, 64, 64))
    out.sum().backward()
    assert model.blocks[2][4].layer_scale.gamma.grad is not None


def test_build_matches_modelspec_contract():
    model = build("mnv4-conv-s", num_classes=11, weights=None)
    assert model.classifier.out_features == 11 and not model.training


def test_unknown_model_name():
    with pytest.raises(UnknownNameError):
        create_model("mobilenetv5_conv_small")
