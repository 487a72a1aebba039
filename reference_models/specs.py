"""MobileNet architectures as data: one block specification for every framework.

The PyTorch builder (``mobilenetv4.py``) and the Keras twin read the same ``ModelDef`` values and the
same resolved ``ModelPlan``, so the two cannot drift apart: every channel count, stride, residual and
layer-scale decision is made here, once, in plain Python. This module imports no framework.

A model is a stem conv, a tuple of stages (each a tuple of blocks) and an "efficient head"
(global pool, then a 1x1 conv, optional BN, activation, classifier). The block vocabulary:

* ``ConvBnAct``  - k x k conv, BN, activation ("conv-bn-act", timm ``cn``).
* ``DepthwiseSeparable`` - k x k depthwise conv + BN + act, 1x1 conv + BN [+ act] (timm ``ds``/``dsa``):
  MobileNetV1's block, and the first block of V2/V3.
* ``FusedIB``    - k x k expansion conv + BN + act, linear 1x1 projection + BN (timm ``er``).
* ``UIB``        - Universal Inverted Bottleneck: optional start depthwise conv, 1x1 expansion,
  optional middle depthwise conv, [squeeze-excite], linear 1x1 projection (timm ``uir``). The paper's
  four variants are the helpers ``extra_dw``, ``ib``, ``convnext`` and ``ffn``; MobileNetV2/V3's
  inverted bottleneck is ``ib`` (V3 adds squeeze-excite and hard-swish).
* ``MobileMQA``  - pre-BN multi-query attention with optional key/value spatial reduction (timm ``mqa``).

The MobileNetV1/V2/V3 Pareto baselines (``baselines.py``) use the same vocabulary with a per-block
``act`` override (ReLU6, hard-swish), ``Head`` options (bias, no BN, no head conv), a per-model width
multiplier and stem rule; ``get_model_def`` finds them next to the five MNv4 models of ``MODEL_DEFS``.

Numbers follow the public timm checkpoints (``timm/mobilenetv4_*``), which equal TF Model Garden's
block lists; see ``shared/reference/mnv4_architecture.md`` for where the paper's tables differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

#: Activation names every builder must understand ("gelu" is the exact, erf-based GELU).
ACTIVATIONS = ("relu", "relu6", "gelu", "hard_swish", "silu")


# --------------------------------------------------------------------------- block vocabulary
# Each block type carries a stable ``kind`` string (a class attribute, not a field) for
# serialisation and for builders that dispatch on names rather than Python types.


@dataclass(frozen=True)
class ConvBnAct:
    """k x k conv -> BN -> activation, no residual (MNv4 Conv-S stem stages and the 960-wide conv)."""

    out_chs: int
    kernel: int = 3
    stride: int = 1
    act: str | None = None  # None: the model's activation
    grow_only: bool = False  # width multipliers < 1 leave out_chs as is (MobileNetV2's 1280 conv)
    kind = "conv_bn_act"


@dataclass(frozen=True)
class DepthwiseSeparable:
    """k x k depthwise conv + BN + act (carries the stride), then 1x1 conv + BN, activation optional.

    ``pw_act=True, skip=False`` is MobileNetV1's block (timm ``dsa``); the linear, residual form
    opens MobileNetV2 and V3 (timm ``ds``).
    """

    out_chs: int
    kernel: int = 3
    stride: int = 1
    pw_act: bool = False
    skip: bool = True  # identity shortcut when stride 1 and in == out
    act: str | None = None
    kind = "ds"


@dataclass(frozen=True)
class FusedIB:
    """Fused inverted bottleneck: dense k x k expansion (carries the stride), linear 1x1 projection."""

    out_chs: int
    kernel: int = 3
    stride: int = 1
    expand: float = 4.0  # relative to the block's input channels
    act: str | None = None
    kind = "fused_ib"


@dataclass(frozen=True)
class UIB:
    """Universal Inverted Bottleneck. A kernel of 0 means that depthwise conv is absent.

    The stride sits on the middle depthwise conv when there is one, else on the start one
    (MNv4 puts every stride-2 UIB on an ExtraDW block, stride on the middle conv).
    """

    out_chs: int
    start_dw: int = 0  # depthwise kernel before the expansion (BN, no activation)
    mid_dw: int = 0  # depthwise kernel after the expansion (BN + activation)
    expand: float = 4.0
    stride: int = 1
    act: str | None = None
    se: float = 0.0  # squeeze-excite width as a fraction of the expansion width (MobileNetV3: 0.25)
    kind = "uib"

    @property
    def variant(self) -> str:
        """The paper's name for this instantiation."""
        return {
            (True, True): "ExtraDW",
            (False, True): "IB",
            (True, False): "ConvNeXt",
            (False, False): "FFN",
        }[(bool(self.start_dw), bool(self.mid_dw))]


@dataclass(frozen=True)
class MobileMQA:
    """Mobile multi-query attention: h query heads share one key and one value head.

    With ``kv_stride`` > 1, keys and values are first reduced by their own stride-``kv_stride``
    depthwise ``kv_kernel`` conv + BN (the paper's asymmetric spatial down-sampling).
    Heads and head dims are never scaled by the width multiplier.
    """

    out_chs: int
    heads: int
    key_dim: int
    value_dim: int = 0  # 0: same as key_dim
    kv_stride: int = 1
    kv_kernel: int = 3
    kind = "mqa"

    @property
    def v_dim(self) -> int:
        return self.value_dim or self.key_dim


Block = Union[ConvBnAct, DepthwiseSeparable, FusedIB, UIB, MobileMQA]


# Short constructors that read like the paper's architecture tables.
def conv(out_chs: int, kernel: int = 3, stride: int = 1) -> ConvBnAct:
    return ConvBnAct(out_chs, kernel, stride)


def fused_ib(out_chs: int, kernel: int, expand: float, stride: int = 1) -> FusedIB:
    return FusedIB(out_chs, kernel, stride, expand)


def extra_dw(out_chs: int, start: int, mid: int, expand: float, stride: int = 1) -> UIB:
    return UIB(out_chs, start_dw=start, mid_dw=mid, expand=expand, stride=stride)


def ib(out_chs: int, mid: int, expand: float, stride: int = 1, *, se: float = 0.0, act: str | None = None) -> UIB:
    return UIB(out_chs, mid_dw=mid, expand=expand, stride=stride, act=act, se=se)


def convnext(out_chs: int, start: int, expand: float, stride: int = 1) -> UIB:
    return UIB(out_chs, start_dw=start, expand=expand, stride=stride)


def ffn(out_chs: int, expand: float) -> UIB:
    return UIB(out_chs, expand=expand)


def mqa(out_chs: int, heads: int, key_dim: int, kv_stride: int = 1) -> MobileMQA:
    return MobileMQA(out_chs, heads, key_dim, key_dim, kv_stride)


def repeat(block: Block, n: int) -> tuple[Block, ...]:
    return (block,) * n


# --------------------------------------------------------------------------- model definition


@dataclass(frozen=True)
class Head:
    """The efficient head: pool first, then a 1x1 conv to ``width`` (never width-scaled).

    MNv4: no conv bias, BN + activation. MobileNetV3: bias, no BN. ``width=None``: no head conv
    (MobileNetV1/V2 style, the classifier reads the pooled features).
    """

    width: int | None = 1280
    norm: bool = True
    bias: bool = False


@dataclass(frozen=True)
class ModelDef:
    """Everything that defines one architecture, independent of any framework."""

    id: str
    stem: int
    stages: tuple[tuple[Block, ...], ...]
    resolution: int
    act: str = "relu"
    layer_scale: float | None = None  # init value of the per-channel gamma on UIB and MQA blocks
    head: Head = field(default_factory=Head)
    stem_kernel: int = 3
    stem_stride: int = 2
    summary: str = ""
    width_multiplier: float = 1.0  # the named model's multiplier; plan()'s multiplier scales on top of it
    fix_stem_below: float = 1.0  # the stem keeps its width under multipliers below this (timm fix_stem)

    def blocks(self) -> tuple[Block, ...]:
        return tuple(b for stage in self.stages for b in stage)


# --------------------------------------------------------------------------- the five MNv4 models

_MQA_HM_16PX = mqa(160, heads=4, key_dim=64, kv_stride=2)
_MQA_HM_8PX = mqa(256, heads=4, key_dim=64)
_MQA_HL_24PX = mqa(192, heads=8, key_dim=48, kv_stride=2)
_MQA_HL_12PX = mqa(512, heads=8, key_dim=64)

MNV4_CONV_S = ModelDef(
    id="mnv4-conv-s",
    stem=32,
    resolution=224,
    act="relu",
    summary="MobileNetV4 Conv-Small: all-convolutional, ReLU, 224px",
    stages=(
        # Paper Tab. 11 calls these FusedIB; the code (timm = TF) uses two plain conv-BN-ReLU layers.
        (conv(32, 3, stride=2), conv(32, 1)),
        (conv(96, 3, stride=2), conv(64, 1)),
        (
            extra_dw(96, 5, 5, expand=3, stride=2),
            *repeat(ib(96, 3, expand=2), 4),
            convnext(96, 3, expand=4),
        ),
        (
            extra_dw(128, 3, 3, expand=6, stride=2),
            extra_dw(128, 5, 5, expand=4),
            ib(128, 5, expand=4),
            ib(128, 5, expand=3),
            *repeat(ib(128, 3, expand=4), 2),
        ),
        (conv(960, 1),),
    ),
)

MNV4_CONV_M = ModelDef(
    id="mnv4-conv-m",
    stem=32,
    resolution=256,
    act="relu",
    summary="MobileNetV4 Conv-Medium: all-convolutional, ReLU, 256px",
    stages=(
        (fused_ib(48, 3, expand=4, stride=2),),
        (extra_dw(80, 3, 5, expand=4, stride=2), extra_dw(80, 3, 3, expand=2)),
        (
            extra_dw(160, 3, 5, expand=6, stride=2),
            *repeat(extra_dw(160, 3, 3, expand=4), 2),
            extra_dw(160, 3, 5, expand=4),
            extra_dw(160, 3, 3, expand=4),
            convnext(160, 3, expand=4),
            ffn(160, expand=2),
            convnext(160, 3, expand=4),
        ),
        (
            extra_dw(256, 5, 5, expand=6, stride=2),
            extra_dw(256, 5, 5, expand=4),
            *repeat(extra_dw(256, 3, 5, expand=4), 2),
            ffn(256, expand=4),
            convnext(256, 3, expand=4),
            extra_dw(256, 3, 5, expand=2),
            extra_dw(256, 5, 5, expand=4),
            *repeat(ffn(256, expand=4), 2),
            convnext(256, 5, expand=2),
        ),
        (conv(960, 1),),
    ),
)

MNV4_CONV_L = ModelDef(
    id="mnv4-conv-l",
    stem=24,
    resolution=384,
    act="relu",
    summary="MobileNetV4 Conv-Large: all-convolutional, ReLU, 384px",
    stages=(
        (fused_ib(48, 3, expand=4, stride=2),),
        (extra_dw(96, 3, 5, expand=4, stride=2), extra_dw(96, 3, 3, expand=4)),
        (
            extra_dw(192, 3, 5, expand=4, stride=2),
            *repeat(extra_dw(192, 3, 3, expand=4), 3),
            extra_dw(192, 3, 5, expand=4),
            *repeat(extra_dw(192, 5, 3, expand=4), 5),
            convnext(192, 3, expand=4),
        ),
        (
            extra_dw(512, 5, 5, expand=4, stride=2),
            *repeat(extra_dw(512, 5, 5, expand=4), 3),
            convnext(512, 5, expand=4),
            extra_dw(512, 5, 3, expand=4),
            *repeat(convnext(512, 5, expand=4), 2),
            extra_dw(512, 5, 3, expand=4),
            extra_dw(512, 5, 5, expand=4),
            *repeat(convnext(512, 5, expand=4), 3),
        ),
        (conv(960, 1),),
    ),
)

MNV4_HYBRID_M = ModelDef(
    id="mnv4-hybrid-m",
    stem=32,
    resolution=256,
    act="relu",
    layer_scale=1e-5,
    summary="MobileNetV4 Hybrid-Medium: UIB + Mobile MQA, ReLU, layer scale, 256px",
    stages=(
        (fused_ib(48, 3, expand=4, stride=2),),
        (extra_dw(80, 3, 5, expand=4, stride=2), extra_dw(80, 3, 3, expand=2)),
        (
            extra_dw(160, 3, 5, expand=6, stride=2),
            ffn(160, expand=2),
            extra_dw(160, 3, 3, expand=4),
            extra_dw(160, 3, 5, expand=4),
            _MQA_HM_16PX,
            extra_dw(160, 3, 3, expand=4),
            _MQA_HM_16PX,
            convnext(160, 3, expand=4),
            _MQA_HM_16PX,
            extra_dw(160, 3, 3, expand=4),
            _MQA_HM_16PX,
            convnext(160, 3, expand=4),
        ),
        (
            extra_dw(256, 5, 5, expand=6, stride=2),
            extra_dw(256, 5, 5, expand=4),
            *repeat(extra_dw(256, 3, 5, expand=4), 2),
            ffn(256, expand=2),
            extra_dw(256, 3, 5, expand=2),
            ffn(256, expand=2),
            ffn(256, expand=4),
            _MQA_HM_8PX,
            convnext(256, 3, expand=4),
            _MQA_HM_8PX,
            extra_dw(256, 5, 5, expand=4),
            _MQA_HM_8PX,
            convnext(256, 5, expand=4),
            _MQA_HM_8PX,
            convnext(256, 5, expand=4),
        ),
        (conv(960, 1),),
    ),
)

MNV4_HYBRID_L = ModelDef(
    id="mnv4-hybrid-l",
    stem=24,
    resolution=384,
    act="gelu",
    layer_scale=1e-5,
    summary="MobileNetV4 Hybrid-Large: UIB + Mobile MQA, exact GELU, layer scale, 384px",
    stages=(
        (fused_ib(48, 3, expand=4, stride=2),),
        (extra_dw(96, 3, 5, expand=4, stride=2), extra_dw(96, 3, 3, expand=4)),
        (
            extra_dw(192, 3, 5, expand=4, stride=2),
            *repeat(extra_dw(192, 3, 3, expand=4), 3),
            extra_dw(192, 3, 5, expand=4),
            *repeat(extra_dw(192, 5, 3, expand=4), 2),
            _MQA_HL_24PX,
            extra_dw(192, 5, 3, expand=4),
            _MQA_HL_24PX,
            extra_dw(192, 5, 3, expand=4),
            _MQA_HL_24PX,
            extra_dw(192, 5, 3, expand=4),
            _MQA_HL_24PX,
            convnext(192, 3, expand=4),
        ),
        (
            extra_dw(512, 5, 5, expand=4, stride=2),
            *repeat(extra_dw(512, 5, 5, expand=4), 3),
            convnext(512, 5, expand=4),
            extra_dw(512, 5, 3, expand=4),
            *repeat(convnext(512, 5, expand=4), 2),
            extra_dw(512, 5, 3, expand=4),
            extra_dw(512, 5, 5, expand=4),
            _MQA_HL_12PX,
            convnext(512, 5, expand=4),
            _MQA_HL_12PX,
            convnext(512, 5, expand=4),
            _MQA_HL_12PX,
            convnext(512, 5, expand=4),
            _MQA_HL_12PX,
            convnext(512, 5, expand=4),
        ),
        (conv(960, 1),),
    ),
)

MODEL_DEFS: dict[str, ModelDef] = {
    d.id: d for d in (MNV4_CONV_S, MNV4_CONV_M, MNV4_CONV_L, MNV4_HYBRID_M, MNV4_HYBRID_L)
}

#: timm's registered names, accepted as aliases.
TIMM_NAMES: dict[str, str] = {
    "mnv4-conv-s": "mobilenetv4_conv_small",
    "mnv4-conv-m": "mobilenetv4_conv_medium",
    "mnv4-conv-l": "mobilenetv4_conv_large",
    "mnv4-hybrid-m": "mobilenetv4_hybrid_medium",
    "mnv4-hybrid-l": "mobilenetv4_hybrid_large",
}

#: The default public checkpoint per model (timm's default tag, ImageNet-1k head), what
#: ``weights="pretrained"`` resolves to.
PRETRAINED: dict[str, str] = {
    "mnv4-conv-s": "hf-hub:timm/mobilenetv4_conv_small.e2400_r224_in1k",
    "mnv4-conv-m": "hf-hub:timm/mobilenetv4_conv_medium.e500_r256_in1k",
    "mnv4-conv-l": "hf-hub:timm/mobilenetv4_conv_large.e600_r384_in1k",
    "mnv4-hybrid-m": "hf-hub:timm/mobilenetv4_hybrid_medium.e200_r256_in12k_ft_in1k",
    "mnv4-hybrid-l": "hf-hub:timm/mobilenetv4_hybrid_large.ix_e600_r384_in1k",
}


#: The centre crop each default checkpoint is evaluated with, from its timm pretrained config: crop_pct
#: 0.95 at the train resolution for most MNv4 tags, 0.875 for conv_small.e2400_r224_in1k.
EVAL_CROP_PCT: dict[str, float] = {
    "mnv4-conv-s": 0.875,
    "mnv4-conv-m": 0.95,
    "mnv4-conv-l": 0.95,
    "mnv4-hybrid-m": 0.95,
    "mnv4-hybrid-l": 0.95,
}


def all_model_defs() -> dict[str, ModelDef]:
    """The five MNv4 models, then the MobileNetV1/V2/V3 Pareto baselines."""
    from .baselines import BASELINE_DEFS  # baselines.py builds on this module, so it is read late

    return {**MODEL_DEFS, **BASELINE_DEFS}


def _aliases() -> dict[str, str]:
    from .baselines import BASELINE_TIMM_NAMES

    return {**TIMM_NAMES, **BASELINE_TIMM_NAMES}


def canonical_name(name: str) -> str | None:
    """The model id for an id or alias (case-insensitive, '_'/'-' tolerant), or None."""
    key = name.strip().lower()
    defs = all_model_defs()
    if key in defs:
        return key
    for model_id, timm_name in _aliases().items():
        if key == timm_name or key.replace("-", "_") == timm_name:
            return model_id
    if key.replace("_", "-") in defs:
        return key.replace("_", "-")
    return None


def get_model_def(name: str) -> ModelDef:
    """The ModelDef for an id or alias; unknown names raise UnknownNameError listing the valid ones."""
    model_id = canonical_name(name)
    if model_id is None:
        from mnv4suite.errors import UnknownNameError  # pure Python; kept local to stay import-free

        raise UnknownNameError("model", name, list(all_model_defs()) + list(_aliases().values()))
    return all_model_defs()[model_id]


# --------------------------------------------------------------------------- channel arithmetic


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round to a multiple of ``divisor``, never more than 10% below ``value`` (timm/TF rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def round_channels(channels: int, multiplier: float = 1.0, divisor: int = 8) -> int:
    """Apply the width multiplier to a channel count (identity at 1.0)."""
    if multiplier == 1.0:
        return channels
    return make_divisible(channels * multiplier, divisor)


# --------------------------------------------------------------------------- resolved plan


@dataclass(frozen=True)
class BlockPlan:
    """One block with every number a builder needs, already resolved for a width multiplier."""

    name: str  # state-dict prefix, e.g. "blocks.2.4"
    stage: int
    index: int  # position inside the stage
    depth: int  # global 0-based block index (drives the stochastic-depth schedule)
    spec: Block
    in_chs: int
    out_chs: int
    mid_chs: int  # expansion width (FusedIB / UIB); equals out_chs for the others
    stride: int
    act: str
    residual: bool
    layer_scale: float | None
    drop_path: float  # fraction of the model's drop_path_rate: depth / number of blocks
    reduction: int  # cumulative stride after this block
    se_chs: int = 0  # squeeze-excite reduced width (UIB with ``se``); 0 = no squeeze-excite


@dataclass(frozen=True)
class ModelPlan:
    model: ModelDef
    width_multiplier: float  # effective: the model's own times the one asked of plan()
    stem_chs: int
    blocks: tuple[BlockPlan, ...]
    num_features: int  # channels out of the last block (input of the head)
    head_chs: int  # pre-logits width

    def stage(self, i: int) -> tuple[BlockPlan, ...]:
        return tuple(b for b in self.blocks if b.stage == i)


def plan(model: ModelDef, width_multiplier: float = 1.0) -> ModelPlan:
    """Resolve channels, strides, residuals and layer scale for every block.

    Width rules (timm's, which the public checkpoints use), for the multiplier
    ``model.width_multiplier * width_multiplier``: every block's output width is scaled with
    ``round_channels`` (``grow_only`` convs never shrink); the stem is scaled only when the
    multiplier is >= ``model.fix_stem_below`` (MNv4: 1.0, V3: 0.75, V1/V2: always); the head conv
    width and attention head dims are never scaled; expansion widths are
    ``make_divisible(in_chs * expand)`` of the (scaled) block input, squeeze-excite widths
    ``make_divisible(mid_chs * se)``.
    """
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")
    for name in [model.act] + [getattr(b, "act", None) for b in model.blocks()]:
        if name is not None and name not in ACTIVATIONS:
            raise ValueError(f"{model.id}: unknown activation '{name}' (known: {', '.join(ACTIVATIONS)})")

    width_multiplier = model.width_multiplier * width_multiplier
    if width_multiplier < model.fix_stem_below:
        stem_chs = model.stem
    else:
        stem_chs = round_channels(model.stem, width_multiplier)
    total = len(model.blocks())
    in_chs, reduction, depth = stem_chs, model.stem_stride, 0
    blocks: list[BlockPlan] = []
    for s, stage in enumerate(model.stages):
        for i, spec in enumerate(stage):
            out_chs = round_channels(spec.out_chs, width_multiplier)
            if isinstance(spec, ConvBnAct) and spec.grow_only:
                out_chs = max(spec.out_chs, out_chs)
            stride, mid_chs, layer_scale, se_chs = 1, out_chs, None, 0
            if isinstance(spec, MobileMQA):
                act = model.act  # unused inside attention; kept for uniformity
                layer_scale = model.layer_scale
            else:
                stride = spec.stride
                act = spec.act or model.act
            if isinstance(spec, (FusedIB, UIB)):
                mid_chs = make_divisible(in_chs * spec.expand)
            if isinstance(spec, UIB):
                layer_scale = model.layer_scale
                se_chs = make_divisible(mid_chs * spec.se) if spec.se else 0
                if stride > 1 and not (spec.start_dw or spec.mid_dw):
                    raise ValueError(
                        f"{model.id} blocks.{s}.{i}: an FFN block has no depthwise conv to carry stride {stride}"
                    )
            residual = _can_skip(spec) and stride == 1 and in_chs == out_chs
            reduction *= stride
            blocks.append(
                BlockPlan(
                    name=f"blocks.{s}.{i}",
                    stage=s,
                    index=i,
                    depth=depth,
                    spec=spec,
                    in_chs=in_chs,
                    out_chs=out_chs,
                    mid_chs=mid_chs,
                    stride=stride,
                    act=act,
                    residual=residual,
                    layer_scale=layer_scale,
                    drop_path=depth / total,
                    reduction=reduction,
                    se_chs=se_chs,
                )
            )
            in_chs, depth = out_chs, depth + 1
    head_chs = model.head.width if model.head.width is not None else in_chs
    return ModelPlan(model, width_multiplier, stem_chs, tuple(blocks), in_chs, head_chs)


def _can_skip(spec: Block) -> bool:
    """Whether a block type takes an identity shortcut when shapes allow (never a conv-bn-act)."""
    if isinstance(spec, ConvBnAct):
        return False
    if isinstance(spec, DepthwiseSeparable):
        return spec.skip
    return True
