"""The Pareto baselines of the MobileNetV4 paper's Table 6: MobileNetV1, V2 and V3-Large as ``ModelDef`` data.

They reuse the MNv4 vocabulary of ``specs.py``: V1 is a stack of depthwise-separable blocks, V2's and
V3's inverted bottleneck is the UIB "IB" instance (V3 adds squeeze-excite and hard-swish), and the
PyTorch builder is the same ``MobileNet`` class. Stage grouping, widths and rounding follow timm's
generators (``_gen_mobilenet_v1/_v2/_v3``) so that block indices line up with timm's ``blocks.S.B``
and the parameter and MAC counts equal timm's (fact sheet section 8).

Framework-free like ``specs.py``.
"""

from __future__ import annotations

from .specs import ConvBnAct, DepthwiseSeparable, Head, ModelDef, conv, ib, repeat


def _v1_block(out_chs: int, stride: int = 1) -> DepthwiseSeparable:
    """MobileNetV1: activation after the pointwise conv too, no residuals (timm ``dsa``)."""
    return DepthwiseSeparable(out_chs, stride=stride, pw_act=True, skip=False)


def mobilenet_v1(width: float = 1.0) -> ModelDef:
    """MobileNetV1: 13 depthwise-separable blocks, ReLU6, classifier straight on the pooled 1024 features."""
    return ModelDef(
        id=f"mnv1-{width:.1f}",
        stem=32,
        resolution=224,
        act="relu6",
        head=Head(width=None),
        width_multiplier=width,
        fix_stem_below=0.0,
        summary=f"MobileNetV1 {width:g}x: depthwise-separable convs, ReLU6, 224px (Pareto baseline)",
        stages=(
            (_v1_block(64),),
            (_v1_block(128, 2), _v1_block(128)),
            (_v1_block(256, 2), _v1_block(256)),
            (_v1_block(512, 2), *repeat(_v1_block(512), 5)),
            (_v1_block(1024, 2), _v1_block(1024)),
        ),
    )


def mobilenet_v2(width: float = 1.0) -> ModelDef:
    """MobileNetV2: inverted bottlenecks (expand 6), ReLU6, a 1x1 conv to 1280 *before* pooling.

    That conv is a stage block here (timm's ``conv_head``/``bn2``), so its MACs are counted at 7x7;
    it widens with multipliers > 1 but never narrows (``grow_only``, as in timm and torchvision).
    """
    return ModelDef(
        id=f"mnv2-{width:.1f}",
        stem=32,
        resolution=224,
        act="relu6",
        head=Head(width=None),
        width_multiplier=width,
        fix_stem_below=0.0,
        summary=f"MobileNetV2 {width:g}x: inverted bottlenecks, ReLU6, 224px (Pareto baseline)",
        stages=(
            (DepthwiseSeparable(16),),
            (ib(24, 3, 6, stride=2), ib(24, 3, 6)),
            (ib(32, 3, 6, stride=2), *repeat(ib(32, 3, 6), 2)),
            (ib(64, 3, 6, stride=2), *repeat(ib(64, 3, 6), 3)),
            repeat(ib(96, 3, 6), 3),
            (ib(160, 3, 6, stride=2), *repeat(ib(160, 3, 6), 2)),
            (ib(320, 3, 6),),
            (ConvBnAct(1280, 1, grow_only=True),),
        ),
    )


def mobilenet_v3_large(width: float = 1.0) -> ModelDef:
    """MobileNetV3-Large: ReLU in the early stages, hard-swish later, squeeze-excite (ReLU, hard-sigmoid gate).

    Head as in timm: pool, then a 1x1 conv 960 -> 1280 with bias and no BN, hard-swish. The 1280 width is
    never scaled and the 16-wide stem is kept below 0.75x, so 0.5x is timm's generator at 0.5 (2.69M params),
    not torchvision's ``width_mult=0.5`` (which also halves the head, 1.74M).
    """
    relu = "relu"
    return ModelDef(
        id=f"mnv3l-{width:.1f}",
        stem=16,
        resolution=224,
        act="hard_swish",
        head=Head(width=1280, norm=False, bias=True),
        width_multiplier=width,
        fix_stem_below=0.75,
        summary=f"MobileNetV3-Large {width:g}x: inverted bottlenecks, SE, hard-swish, 224px (Pareto baseline)",
        stages=(
            (DepthwiseSeparable(16, act=relu),),
            (ib(24, 3, 4, stride=2, act=relu), ib(24, 3, 3, act=relu)),
            (ib(40, 5, 3, stride=2, se=0.25, act=relu), *repeat(ib(40, 5, 3, se=0.25, act=relu), 2)),
            (ib(80, 3, 6, stride=2), ib(80, 3, 2.5), *repeat(ib(80, 3, 2.3), 2)),
            repeat(ib(112, 3, 6, se=0.25), 2),
            (ib(160, 5, 6, stride=2, se=0.25), *repeat(ib(160, 5, 6, se=0.25), 2)),
            (conv(960, 1),),
        ),
    )


#: The paper's Table 6 baselines plus V3-Large 1.0x (no Table 6 row), smallest first.
BASELINE_DEFS: dict[str, ModelDef] = {
    d.id: d
    for d in (
        mobilenet_v2(0.5),
        mobilenet_v3_large(0.5),
        mobilenet_v2(1.0),
        mobilenet_v1(1.0),
        mobilenet_v3_large(1.0),
        mobilenet_v2(1.5),
        mobilenet_v2(2.0),
    )
}

#: timm's registered names for the same architectures (V2 1.5x/2.0x and V3-L 0.5x are not registered).
#: V1's state-dict keys follow timm's layout (read from its source, not checked against a checkpoint);
#: V2/V3 name their inverted bottlenecks the UIB way, so timm checkpoints for them do not load as is.
BASELINE_TIMM_NAMES: dict[str, str] = {
    "mnv1-1.0": "mobilenetv1_100",
    "mnv2-0.5": "mobilenetv2_050",
    "mnv2-1.0": "mobilenetv2_100",
    "mnv3l-1.0": "mobilenetv3_large_100",
}
