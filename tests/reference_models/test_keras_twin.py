"""The Keras twin against the PyTorch builder: same plan, same weights, same logits (NHWC vs NCHW).

Conv-S and Hybrid-M use the timm fixture weights. For the other three models every parameter and
BatchNorm statistic is randomised with a fixed seed (see ``randomize``): untrained hybrids have
layer scale 1e-5, which makes every block an identity and the comparison meaningless.
"""

from __future__ import annotations

import numpy as np
import oracle
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
from safetensors.torch import load_file  # noqa: E402

from mnv4suite.reference_models import create_model  # noqa: E402
from mnv4suite.reference_models.keras_blocks import activation  # noqa: E402
from mnv4suite.reference_models.keras_model import (  # noqa: E402
    build_keras,
    keras_from_torch,
    nchw_to_nhwc,
    transfer_weights,
)
from mnv4suite.reference_models.specs import ACTIVATIONS, TIMM_NAMES  # noqa: E402
from mnv4suite.reference_models.torch_blocks import LayerScale2d, create_act  # noqa: E402

ATOL = 1e-4
FIXTURE_MODELS = ["mnv4-conv-s", "mnv4-hybrid-m"]


def randomize(model, seed: int = 0):
    """Give every parameter and BN statistic of ``model`` a seeded random, trained-like value.

    BN gamma ~ U(0.5, 1.5), beta ~ U(-0.2, 0.2), layer-scale gamma ~ U(0.5, 1.5), classifier bias
    ~ U(-0.1, 0.1); convs keep their (seeded) random init. Running statistics are *measured*
    (a train-mode pass over noise), then perturbed (mean + 0.05 sd, var x U(0.9, 1.1)): purely random
    statistics let activations grow through 30+ residual blocks to logits of 1e7-1e12, where fp32
    rounding alone exceeds any useful tolerance. ``norm_head`` sees pooled features that barely vary
    over noise images, so its variance also gets the squared mean (else it amplifies rounding 1e3x).
    """
    g = torch.Generator().manual_seed(seed)

    def uniform_(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    res = model.model_def.resolution
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                uniform_(m.weight, 0.5, 1.5)
                uniform_(m.bias, -0.2, 0.2)
                m.reset_running_stats()
                m.momentum = None  # cumulative average: the stats of exactly this batch
            elif isinstance(m, LayerScale2d):
                uniform_(m.gamma, 0.5, 1.5)
            elif isinstance(m, torch.nn.Linear):
                uniform_(m.bias, -0.1, 0.1)
        model.train()
        model(torch.randn(4, 3, res, res, generator=g))
        model.eval()
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.1
                if name == "norm_head":
                    m.running_var.add_(m.running_mean**2)
                m.running_mean.add_(torch.randn(m.running_mean.shape, generator=g) * 0.05 * m.running_var.sqrt())
                m.running_var.mul_(torch.rand(m.running_var.shape, generator=g) * 0.2 + 0.9)
    return model


def twin_vs_torch(model, x: torch.Tensor, **twin_kwargs) -> tuple[np.ndarray, np.ndarray]:
    twin = keras_from_torch(model, **twin_kwargs)
    got = np.asarray(twin(nchw_to_nhwc(x.numpy()), training=False))
    with torch.no_grad():
        expected = model(x).numpy()
    return got, expected


def trainable_count(keras_model) -> int:
    return sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)


@pytest.mark.parametrize("model_id", FIXTURE_MODELS)
def test_fixture_weights_same_logits(model_id, timm_fixtures):
    name = TIMM_NAMES[model_id]
    model = create_model(model_id, weights=timm_fixtures / f"{name}.weights.safetensors")
    io = load_file(str(timm_fixtures / f"{name}.io.safetensors"))
    got, expected = twin_vs_torch(model, io["input"].float())
    assert got.shape == expected.shape
    tolerance = oracle.float32_tolerance(expected)  # float32 on the oracle's weights, relative to the logits
    np.testing.assert_allclose(got, expected, atol=tolerance, rtol=0)
    np.testing.assert_allclose(got, io["logits"].float().numpy(), atol=tolerance, rtol=0)  # and timm's own logits


@pytest.mark.parametrize(
    "model_id",
    ["mnv4-conv-m", "mnv4-conv-l", "mnv4-hybrid-l"],
)
def test_randomized_weights_same_logits(model_id):
    torch.manual_seed(0)
    model = randomize(create_model(model_id))
    res = model.model_def.resolution
    x = torch.randn(2, 3, res, res, generator=torch.Generator().manual_seed(1))
    got, expected = twin_vs_torch(model, x)
    assert np.abs(expected).max() > 0.5 and np.abs(expected[0] - expected[1]).max() > 0.3  # a non-trivial model
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_randomized_hybrid_m_same_logits():
    """Fixture weights cover trained values; this covers layer scale near 1 and measured BN stats."""
    torch.manual_seed(0)
    model = randomize(create_model("mnv4-hybrid-m"))
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    got, expected = twin_vs_torch(model, x)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_odd_input_size(timm_fixtures):
    """200 px gives 25 -> 13 -> 7 maps: symmetric padding and K/V down-sampling at odd sizes."""
    model = create_model("mnv4-hybrid-m", weights=timm_fixtures / "mobilenetv4_hybrid_medium.weights.safetensors")
    x = torch.randn(2, 3, 200, 200, generator=torch.Generator().manual_seed(2))
    got, expected = twin_vs_torch(model, x, input_size=200)
    np.testing.assert_allclose(got, expected, atol=oracle.float32_tolerance(expected), rtol=0)


def test_width_multiplier_and_class_count():
    torch.manual_seed(0)
    model = randomize(create_model("mnv4-conv-s", num_classes=10, width_multiplier=0.5))
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    got, expected = twin_vs_torch(model, x)
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("model_id", ["mnv4-conv-s", "mnv4-hybrid-m"])
def test_same_parameter_count(model_id):
    with torch.device("meta"):
        from mnv4suite.reference_models.mobilenetv4 import MobileNet
        from mnv4suite.reference_models.specs import get_model_def

        n_torch = sum(p.numel() for p in MobileNet(get_model_def(model_id)).parameters())
    assert trainable_count(build_keras(model_id)) == n_torch


def test_transfer_is_strict():
    with pytest.raises(ValueError, match="do not correspond"):
        transfer_weights(create_model("mnv4-conv-s"), build_keras("mnv4-conv-m"))
    with pytest.raises(ValueError, match="do not fit"):
        transfer_weights(create_model("mnv4-conv-s", num_classes=10), build_keras("mnv4-conv-s"))
    with pytest.raises(ValueError, match="does not match"):
        keras_from_torch(create_model("mnv4-conv-s"), model_id="mnv4-conv-m")


def test_stride_two_padding_is_symmetric():
    """No TF 'same' on strided convs: it would pad bottom/right only and shift every feature map."""
    twin = build_keras("mnv4-conv-s")
    strided = [l for l in twin.layers if getattr(l, "strides", (1, 1)) != (1, 1)]
    assert strided and all(l.padding == "valid" for l in strided)
    pads = {l.name: l.padding for l in twin.layers if isinstance(l, keras.layers.ZeroPadding2D)}
    assert pads["conv_stem.pad"] == ((1, 1), (1, 1))
    assert pads["blocks.2.0.dw_mid.conv.pad"] == ((2, 2), (2, 2))  # 5x5 stride 2


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activations_match_torch(act):
    """Every spec activation, GELU exact (erf): the tanh form differs by up to ~5e-4."""
    x = np.linspace(-8, 8, 4001, dtype=np.float32).reshape(1, 1, -1, 1)
    inp = keras.Input((1, x.shape[2], 1))
    got = np.asarray(keras.Model(inp, activation(inp, act, name="a"))(x))
    expected = create_act(act)(torch.from_numpy(x.copy())).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=0)


# Keras' own saving code trips numpy 2's __array__(copy=...) deprecation once per weight; not ours to fix.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_save_and_reload(tmp_path):
    """The custom layers (attention, layer scale, exact GELU, flatten) survive a .keras round trip."""
    twin = build_keras("mnv4-hybrid-l", input_size=64)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    twin.save(tmp_path / "twin.keras")
    again = keras.models.load_model(tmp_path / "twin.keras")
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(twin(x)))
