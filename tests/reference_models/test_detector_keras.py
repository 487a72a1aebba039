"""The detector's Keras twin against the PyTorch module: same weights, same raw output (NHWC input).

Weights and BN statistics are randomised (``probe_weights.trained_like_detector``) since no trained
detector exists; the outputs compared are O(1) (box deltas and logits around the prior, sd ~0.3-0.5).
Measured max |diff| at 384 px on two natural-looking images: Conv-S 2.2e-5 (2.4e-5 at 300 px),
Conv-M 3.5e-5, Hybrid-M 4.1e-5, Hybrid-L 3.1e-5: fp32 rounding over ~100 layers, about what
separates PyTorch's own fp32 output from float64.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


from mnv4suite.reference_models.detectors import num_anchors  # noqa: E402
from mnv4suite.reference_models.keras_model import keras_from_torch, nchw_to_nhwc, transfer_weights  # noqa: E402
from mnv4suite.reference_models.keras_retinanet import build_keras_detector  # noqa: E402
from mnv4suite.reference_models.probe_images import natural_images  # noqa: E402
from mnv4suite.reference_models.probe_weights import trained_like_detector  # noqa: E402
from mnv4suite.reference_models.retinanet import create_detector  # noqa: E402

ATOL = 1e-4


def twin_vs_torch(model, x: np.ndarray, **twin_kwargs) -> tuple[np.ndarray, np.ndarray]:
    twin = keras_from_torch(model, model.detector_def.id, **twin_kwargs)
    got = np.asarray(twin(nchw_to_nhwc(x), training=False))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    return got, expected


def check_equivalent(detector_id: str, seed: int, size: int = 384):
    model = trained_like_detector(create_detector(detector_id), seed=seed)
    x = natural_images(2, size, seed=3)
    got, expected = twin_vs_torch(model, x, input_size=size)
    diff = float(np.abs(got - expected).max())
    print(f"{detector_id} @ {size}: max |diff| {diff:.3g}; output sd: boxes {expected[..., :4].std():.3f}, "
          f"logits {expected[..., 4:].std():.3f}; max |output| {np.abs(expected).max():.2f}")
    assert got.shape == expected.shape == (2, num_anchors(model.detector_def, size), 84)
    assert expected[..., :4].std() > 0.1 and expected[..., 4:].std() > 0.1  # a non-trivial output...
    assert np.abs(expected[0] - expected[1]).max() > 0.5  # ...that depends on the image
    assert diff < ATOL


def test_conv_s_same_output():
    check_equivalent("retinanet-mnv4-conv-s", seed=0)


def test_odd_input_size():
    """300 px: 38 -> 19 -> 10 maps; the upsampled P5 is cropped to 19 x 19 on both sides."""
    check_equivalent("retinanet-mnv4-conv-s", seed=1, size=300)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("detector_id", "seed"),
    [("retinanet-mnv4-conv-m", 0), ("retinanet-mnv4-hybrid-m", 1), ("retinanet-mnv4-hybrid-l", 0)],
)
def test_same_output(detector_id, seed):
    check_equivalent(detector_id, seed)


def test_same_parameter_count_and_shared_head_layers():
    with torch.device("meta"):
        n_torch = sum(p.numel() for p in create_detector("retinanet-mnv4-conv-s").parameters())
    twin = build_keras_detector("retinanet-mnv4-conv-s")
    assert sum(int(np.prod(w.shape)) for w in twin.trainable_weights) == n_torch
    names = [layer.name for layer in twin.layers]
    assert names.count("head.cls_convs.0.dw") == 1  # one layer object, called on all five levels
    assert "head.cls_norms.4.3" in names and twin.output.shape[1:] == (27621, 84)


def test_transfer_is_strict():
    with pytest.raises(ValueError, match="do not correspond"):
        transfer_weights(create_detector("retinanet-mnv4-conv-s"), build_keras_detector("retinanet-mnv4-conv-m"))
    with pytest.raises(ValueError, match="do not fit"):
        three_classes = create_detector("retinanet-mnv4-conv-s", num_classes=3)
        transfer_weights(three_classes, build_keras_detector("retinanet-mnv4-conv-s"))
    with pytest.raises(ValueError, match="does not match"):
        keras_from_torch(create_detector("retinanet-mnv4-conv-s"), model_id="retinanet-mnv4-conv-m")


# Keras' own saving code trips numpy 2's __array__(copy=...) deprecation once per weight; not ours to fix.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_save_and_reload(tmp_path):
    twin = build_keras_detector("retinanet-mnv4-hybrid-m", input_size=128)
    x = np.random.default_rng(0).normal(size=(1, 128, 128, 3)).astype(np.float32)
    twin.save(tmp_path / "detector.keras")
    again = keras.models.load_model(tmp_path / "detector.keras")
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(twin(x)))
