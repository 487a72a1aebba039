"""RetinaNet with an MNv4 backbone (the paper's section 7.2 / Table 7), as framework-free data.

The PyTorch detector (``retinanet.py``) and its Keras twin (``keras_retinanet.py``) are both built
from a ``DetectorDef`` plus the backbone's resolved ``specs.ModelPlan``, so the two cannot drift.
The output (one raw tensor [1, A, 4 + num_classes], level-major anchors, for TF Model Garden's
anchors and box coder) is described in ``retinanet.py``; decoding and NMS belong to the COCO task.

How the paper built it: the MNv4 authors trained these detectors with TF Model Garden
(``official/vision``), so the structure below follows its code, read for this module:

* **Backbone endpoints** (``backbones/mobilenet.py``): a block spec's ``is_output`` marks the last
  block of stages 0..3 (strides 4, 8, 16, 32); the FPN reads levels 3..5, i.e. the ends of stages
  1, 2 and 3 (Conv-M/Hybrid-M: 80, 160, 256 channels; Conv-L/Hybrid-L: 96, 192, 512). Stage 4's
  1x1 960 conv and the 1280 head conv are *not* endpoints: Model Garden still builds them (they
  feed its unused ``endpoints['6']``), but nothing the detector outputs depends on them. They are
  left out here.
* **FPN** (``decoders/fpn.py``, ``use_separable_conv=True``): per level 3..5 a lateral 1x1 conv
  (with bias) to 256; top-down nearest x2 upsampling and sum; a 3x3 separable conv (depthwise,
  then 1x1 with bias) on each of P3..P5; P6 = 3x3 stride-2 separable conv of the P5 *output*
  (not of C5), P7 = the same of ReLU(P6); then one BatchNorm per level, no activation.
  Model Garden's lateral is a ``SeparableConv2D`` with a 1x1 kernel, i.e. a per-channel scale
  before the 1x1 conv; being linear and followed by a conv, it adds nothing and is left out.
* **Head** (``heads/dense_prediction_heads.py``, ``RetinaNetHead``): a class tower and a box
  tower of ``num_convs=4`` separable 3x3 convs (256, with bias), each conv *shared across levels*,
  each followed by a BatchNorm *per level* and the activation; final separable 3x3 convs with bias
  to 9 x num_classes (bias -log((1 - 0.01) / 0.01)) and 9 x 4.
* **Anchors**: 3 scales (2**(i/3)) x 3 aspect ratios (0.5, 1, 2) per location, anchor_size 4.
* Activation ReLU in FPN and heads (Model Garden's ``norm_activation`` default; no MNv4 RetinaNet
  config is published). Padding and BatchNorm epsilon follow this project's backbone (PyTorch
  symmetric padding, eps 1e-5), not TF's 'same' padding and eps 1e-3.

Reproducing Table 7 (Conv-M 9.79M params / 5.06 GMACs, Hybrid-M 11.15M / 5.62 GMACs). Measured
here (80 classes, 384 px, ``counting.detector_costs``):

    detector                 params     GMACs  params backbone / FPN / heads  GMACs backbone / FPN / heads
    retinanet-mnv4-conv-m    8,190,404  4.952  6,955,472 / 470,784 / 764,148  2.390 / 0.288 / 2.274
    retinanet-mnv4-hybrid-m  9,549,540  5.499  8,314,608 / 470,784 / 764,148  2.937 / 0.288 / 2.274

MACs are 2.1% under the paper's. Params are 16% / 14% under, and that gap is a counting convention
which closes exactly: Table 7 reports what Keras' ``model.count_params()`` gives for the Model
Garden model, which includes (1) the unused 960 and 1280 backbone convs with their BatchNorms
(1,479,040), (2) every BatchNorm's moving mean and variance (non-trainable weights, 2 per channel),
(3) a 91-way classifier (Model Garden's COCO configs use ``num_classes=91``: +11 x 9 x 257) and
(4) the laterals' per-channel 1x1 depthwise scales (496). ``counting.table7_convention`` adds these
to the measured model: 9,786,327 for Conv-M and 11,153,399 for Hybrid-M, i.e. Table 7's 9.79M and
11.15M to the last printed digit. The same items on the MAC side (the dead 960/1280 convs, 11 more
classes) give 5.066 / 5.614 GMACs against 5.06 / 5.62. Table 7 used the released (timm = Model
Garden) backbones: its Conv-M -> Hybrid-M difference, 1.36M, is that of the released classifiers,
not of Table 6's lower figures. This implementation keeps what the output depends on, 80 classes
(the contract's), and PyTorch's parameter count (no BN statistics).

This module imports no framework.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import specs

#: Model Garden's COCO RetinaNet configs predict 91 classes (COCO ids 1..90 and a background slot).
MODEL_GARDEN_COCO_CLASSES = 91


@dataclass(frozen=True)
class DetectorDef:
    """One RetinaNet-MNv4 detector: its backbone (a classifier id) and the FPN/head settings."""

    id: str
    backbone: str  # a key of specs.MODEL_DEFS
    resolution: int = 384
    num_classes: int = 80
    min_level: int = 3
    max_level: int = 7
    fpn_channels: int = 256
    head_convs: int = 4
    head_channels: int = 256
    num_scales: int = 3
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_size: float = 4.0  # anchor base size = anchor_size * stride
    act: str = "relu"  # FPN and heads; the backbone keeps its own
    summary: str = ""

    @property
    def anchors_per_location(self) -> int:
        return self.num_scales * len(self.aspect_ratios)

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(range(self.min_level, self.max_level + 1))

    def backbone_def(self) -> specs.ModelDef:
        return specs.MODEL_DEFS[self.backbone]


def _detector(backbone: str, what: str) -> DetectorDef:
    return DetectorDef(
        id=f"retinanet-{backbone}",
        backbone=backbone,
        summary=f"RetinaNet, {what} backbone, separable 256-d FPN P3-P7 and 4 x 256 heads, 384px, 80 COCO classes",
    )


DETECTOR_DEFS: dict[str, DetectorDef] = {
    d.id: d
    for d in (
        _detector("mnv4-conv-s", "MNv4-Conv-S"),
        _detector("mnv4-conv-m", "MNv4-Conv-M"),
        _detector("mnv4-conv-l", "MNv4-Conv-L"),
        _detector("mnv4-hybrid-m", "MNv4-Hybrid-M"),
        _detector("mnv4-hybrid-l", "MNv4-Hybrid-L"),
    )
}


def is_detector(name: str) -> bool:
    return name.strip().lower() in DETECTOR_DEFS


def get_detector_def(name: str) -> DetectorDef:
    key = name.strip().lower()
    if key not in DETECTOR_DEFS:
        from mnv4suite.errors import UnknownNameError  # pure Python; kept local like specs.get_model_def

        raise UnknownNameError("detector", name, list(DETECTOR_DEFS))
    return DETECTOR_DEFS[key]


# --------------------------------------------------------------------------- backbone taps


def feature_taps(model_plan: specs.ModelPlan, levels: tuple[int, ...] = (3, 4, 5)) -> tuple[specs.BlockPlan, ...]:
    """The blocks whose outputs feed the FPN: for each level, the last block that reaches stride 2**level.

    The final stage when it is MNv4's lone 1x1 ConvBnAct (the 960 conv, stride unchanged) is never a
    tap (Model Garden's ``is_output`` is False on it). Raises ValueError for a level the backbone
    does not reach.
    """
    stages = [model_plan.stage(i) for i in range(len(model_plan.model.stages))]
    if len(stages[-1]) == 1 and isinstance(stages[-1][0].spec, specs.ConvBnAct) and stages[-1][0].stride == 1:
        stages = stages[:-1]
    taps = []
    for level in levels:
        reaching = [b for stage in stages for b in stage if b.reduction == 2**level]
        if not reaching:
            raise ValueError(f"{model_plan.model.id} has no feature map at stride {2**level} (level {level})")
        taps.append(reaching[-1])
    return tuple(taps)


def backbone_stages_used(model_plan: specs.ModelPlan, levels: tuple[int, ...] = (3, 4, 5)) -> int:
    """How many leading stages the detector builds (through the stage holding the deepest tap)."""
    return feature_taps(model_plan, levels)[-1].stage + 1


# --------------------------------------------------------------------------- output geometry


def level_shape(resolution: int | tuple[int, int], level: int) -> tuple[int, int]:
    """(H, W) of level ``level``'s map: ceil(size / 2**level), as stride-2 convs with padding k//2 give."""
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    for _ in range(level):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w


def num_anchors(det: DetectorDef, resolution: int | tuple[int, int] | None = None) -> int:
    """A, the length of the output's anchor axis (27621 for 384 px and levels 3..7)."""
    size = resolution or det.resolution
    return det.anchors_per_location * sum(h * w for h, w in (level_shape(size, lvl) for lvl in det.levels))


def output_shape(det: DetectorDef, batch: int = 1) -> tuple[int, int, int]:
    return (batch, num_anchors(det), 4 + det.num_classes)


def class_prior_bias(prior: float = 0.01) -> float:
    """RetinaNet's initial class bias: sigmoid(bias) = prior, so an untrained head scores ~``prior``."""
    return -math.log((1 - prior) / prior)
