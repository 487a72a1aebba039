"""The Keras (NHWC) twin of the RetinaNet-MNv4 detector in ``retinanet.py``, for TFLite conversion.

Built from the same ``DetectorDef`` and backbone plan as the PyTorch module, with every weighted
layer named after the PyTorch module it mirrors (``backbone.blocks.3.10.pw_proj.conv``,
``fpn.output.0.dw``, ``head.cls_norms.4.3``), so ``keras_model.transfer_weights`` copies the
weights by name, strictly. The head's convs are shared by all levels: one Keras layer object
called on five inputs, as Model Garden's head does; its BatchNorms are one per level.

The output is the PyTorch module's, [B, A, 4 + C]: per level the NHWC head maps [B, H, W, 9 * k]
reshaped to [B, H * W * 9, k] (constant target shapes, so TFLite gets plain RESHAPE ops), box and
class concatenated on the last axis, levels on the anchor axis.

Imports TensorFlow/Keras.
"""

from __future__ import annotations

from dataclasses import replace

import keras
from keras import layers, ops

from . import detectors, specs
from .keras_blocks import activation, batch_norm, build_block, conv2d, depthwise


def separable(x, filters: int, kernel: int = 3, stride: int = 1, *, name: str):
    """Depthwise k x k (``{name}.dw``, no bias) then 1x1 with bias (``{name}.pw``): torch ``SeparableConv``."""
    x = depthwise(x, kernel, stride, name=f"{name}.dw")
    return conv2d(x, filters, 1, name=f"{name}.pw", bias=True)


class SharedSeparable:
    """A separable conv whose two layers are reused on every level (stride 1, 'same' = symmetric padding)."""

    def __init__(self, filters: int, kernel: int = 3, *, name: str):
        self.dw = layers.DepthwiseConv2D(kernel, 1, padding="same", use_bias=False, name=f"{name}.dw")
        self.pw = layers.Conv2D(filters, 1, padding="valid", use_bias=True, name=f"{name}.pw")

    def __call__(self, x):
        return self.pw(self.dw(x))


@keras.saving.register_keras_serializable(package="mnv4suite")
class NearestUpsample2x(layers.Layer):
    """Nearest-neighbour x2 upsampling of an NHWC map with a static size.

    Keras 3's ``UpSampling2D`` uses ``repeat``, which TFLite gets as TILE + RESHAPE; an image
    resize converts to one RESIZE_NEAREST_NEIGHBOR, which the GPU, Edge TPU and Hexagon delegates
    know. At exactly 2x both copy source pixel (i // 2, j // 2), as torch's nearest mode does.
    (Keras' ``Resizing`` layer would too, but with it in the graph the SavedModel export traced
    BatchNorm in training mode: Keras 3.15, TF 2.21.)
    """

    def call(self, x):
        return ops.image.resize(x, (2 * x.shape[1], 2 * x.shape[2]), interpolation="nearest")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[1], 2 * input_shape[2], input_shape[3])


def _upsample_to(x, like, name: str):
    """Nearest x2, cropped bottom/right to ``like``'s static size when a level's size was odd.

    ``NearestUpsample2x``, not ``UpSampling2D``: see there.
    """
    x = NearestUpsample2x(name=name)(x)
    extra_h, extra_w = x.shape[1] - like.shape[1], x.shape[2] - like.shape[2]
    if extra_h or extra_w:
        x = layers.Cropping2D(((0, extra_h), (0, extra_w)), name=f"{name}.crop")(x)
    return x


def build_keras_detector(
    detector: str | detectors.DetectorDef,
    num_classes: int | None = None,
    input_size: int | tuple[int, int] | None = None,
) -> keras.Model:
    """The randomly initialised twin: input [batch, H, W, 3] float32, output [batch, A, 4 + C]."""
    det = detector if isinstance(detector, detectors.DetectorDef) else detectors.get_detector_def(detector)
    num_classes = num_classes or det.num_classes
    model_plan = specs.plan(det.backbone_def())
    model_def = model_plan.model
    backbone_levels = tuple(lvl for lvl in det.levels if lvl <= 5)
    taps = detectors.feature_taps(model_plan, backbone_levels)
    size = input_size or det.resolution
    height, width = (size, size) if isinstance(size, int) else size

    inputs = keras.Input((height, width, 3), name="input")
    # backbone: the classifier's layers under "backbone.", through the stage of the deepest tap
    x = conv2d(inputs, model_plan.stem_chs, model_def.stem_kernel, model_def.stem_stride, name="backbone.conv_stem")
    x = batch_norm(x, name="backbone.bn1")
    x = activation(x, model_def.act, name="backbone.act1")
    tap_names = {t.name for t in taps}
    features = []
    for block in model_plan.blocks:
        if block.stage > taps[-1].stage:
            break
        x = build_block(x, replace(block, name=f"backbone.{block.name}"))
        if block.name in tap_names:
            features.append(x)

    # FPN (see detectors.py): laterals, top-down sum, separable outputs, P6/P7, a BN per level
    channels = det.fpn_channels
    laterals = [conv2d(f, channels, 1, name=f"fpn.lateral.{i}", bias=True) for i, f in enumerate(features)]
    merged = [laterals[-1]]
    for i in range(len(laterals) - 2, -1, -1):
        up = _upsample_to(merged[0], laterals[i], name=f"fpn.up.{i}")
        merged.insert(0, layers.Add(name=f"fpn.merge.{i}")([laterals[i], up]))
    outs = [separable(m, channels, name=f"fpn.output.{i}") for i, m in enumerate(merged)]
    for j in range(len(det.levels) - len(backbone_levels)):
        source = outs[-1] if j == 0 else activation(outs[-1], det.act, name=f"fpn.extra_act.{j}")
        outs.append(separable(source, channels, stride=2, name=f"fpn.extra.{j}"))
    pyramid = [batch_norm(o, name=f"fpn.norms.{i}") for i, o in enumerate(outs)]

    # heads: shared convs, per-level BN + activation, shared predictors
    anchors = det.anchors_per_location
    towers = {
        tower: [SharedSeparable(det.head_channels, name=f"head.{tower}_convs.{j}") for j in range(det.head_convs)]
        for tower in ("cls", "box")
    }
    cls_out = SharedSeparable(anchors * num_classes, name="head.cls_out")
    box_out = SharedSeparable(anchors * 4, name="head.box_out")
    per_level = []
    for level, feature in enumerate(pyramid):
        predictions = {}
        for tower, predictor, width in (("box", box_out, 4), ("cls", cls_out, num_classes)):
            y = feature
            for j, conv in enumerate(towers[tower]):
                y = batch_norm(conv(y), name=f"head.{tower}_norms.{level}.{j}")
                y = activation(y, det.act, name=f"head.{tower}_act.{level}.{j}")
            y = predictor(y)
            h, w = y.shape[1], y.shape[2]
            predictions[tower] = layers.Reshape((h * w * anchors, width), name=f"head.{tower}_flat.{level}")(y)
        both = [predictions["box"], predictions["cls"]]
        per_level.append(layers.Concatenate(axis=-1, name=f"head.level.{level}")(both))
    outputs = layers.Concatenate(axis=1, name="head.anchors")(per_level)
    return keras.Model(inputs, outputs, name=det.id)


def keras_detector_from_torch(torch_module, input_size: int | tuple[int, int] | None = None) -> keras.Model:
    """The twin of a PyTorch ``RetinaNet`` carrying its weights (strict name and shape transfer)."""
    from .keras_model import transfer_weights

    twin = build_keras_detector(torch_module.detector_def, torch_module.num_classes, input_size)
    transfer_weights(torch_module, twin)
    return twin
