"""The PyTorch RetinaNet-MNv4 detector: MNv4 body, separable FPN on P3-P7, shared separable heads.

    backbone   the classifier's stem and stages 0..3, same module names as ``MobileNet``
               (``backbone.conv_stem``, ``backbone.blocks.3.10``...), so an ImageNet checkpoint's
               body loads into it (``load_backbone_weights``)
    fpn        lateral 1x1 (bias) -> top-down nearest x2 + sum -> 3x3 separable on P3..P5;
               P6 / P7 by stride-2 separable convs of P5 / ReLU(P6); a BatchNorm per level
    head       class and box towers: 4 separable 3x3 convs shared by all levels, BatchNorm + ReLU
               per level; final separable 3x3 convs to 9 x C and 9 x 4

Output (the detector contract): one float32 tensor [B, A, 4 + C], raw: per anchor
[ty, tx, th, tw, logit_0 .. logit_C-1]; anchors level-major (P3 first), then row, column, and
anchor k = 3 * octave + ratio_index. The head conv's channel k * C + c is anchor k, class c:
NHWC [B, H, W, 9 * C] reshaped to [B, H * W * 9, C]. Decoding and NMS are the task's job.

See ``detectors.py`` for where each choice comes from and how the counts relate to Table 7.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import detectors, specs
from .mobilenetv4 import init_weights
from .torch_blocks import build_block, create_act, create_bn, create_conv


class MobileNetBody(nn.Module):
    """Stem and the first ``num_stages`` stages of a MobileNet plan; returns the tapped feature maps."""

    def __init__(self, model_plan: specs.ModelPlan, taps: tuple[specs.BlockPlan, ...], in_chans: int = 3):
        super().__init__()
        model_def = model_plan.model
        num_stages = taps[-1].stage + 1
        self.conv_stem = create_conv(in_chans, model_plan.stem_chs, model_def.stem_kernel, model_def.stem_stride)
        self.bn1 = create_bn(model_plan.stem_chs)
        self.act1 = create_act(model_def.act)
        stages: list[list[nn.Module]] = [[] for _ in range(num_stages)]
        for block in model_plan.blocks:
            if block.stage < num_stages:
                stages[block.stage].append(build_block(block))
        self.blocks = nn.Sequential(*(nn.Sequential(*stage) for stage in stages))
        # (stage, index) of each tap; stage ends are the usual case, but any block may be one
        self.tap_positions = tuple((t.stage, t.index) for t in taps)
        self.out_channels = tuple(t.out_chs for t in taps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act1(self.bn1(self.conv_stem(x)))
        features = []
        for s, stage in enumerate(self.blocks):
            for i, block in enumerate(stage):
                x = block(x)
                if (s, i) in self.tap_positions:
                    features.append(x)
        return features


class SeparableConv(nn.Module):
    """k x k depthwise conv (no bias) then 1x1 conv with bias: Keras' ``SeparableConv2D``."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.dw = create_conv(in_chs, in_chs, kernel, stride, groups=in_chs)
        self.pw = create_conv(in_chs, out_chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest x2, cropped to ``like``'s size (a no-op crop unless a size was odd on the way down)."""
    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    return up[:, :, : like.shape[2], : like.shape[3]]


class FPN(nn.Module):
    """Model Garden's FPN with ``use_separable_conv``: levels ``min_level`` .. ``max_level``."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_extra: int, act: str):
        super().__init__()
        self.lateral = nn.ModuleList(create_conv(c, channels, 1, bias=True) for c in in_channels)
        self.output = nn.ModuleList(SeparableConv(channels, channels) for _ in in_channels)
        self.extra = nn.ModuleList(SeparableConv(channels, channels, stride=2) for _ in range(num_extra))
        # before every extra level but the first; not in place: the level it reads keeps its own value
        self.extra_act = _out_of_place(create_act(act))
        self.norms = nn.ModuleList(create_bn(channels) for _ in range(len(in_channels) + num_extra))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        merged = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):
            merged.insert(0, lateral + upsample_to(merged[0], lateral))
        outs = [conv(m) for conv, m in zip(self.output, merged)]
        for j, conv in enumerate(self.extra):
            outs.append(conv(outs[-1] if j == 0 else self.extra_act(outs[-1])))
        return [norm(o) for norm, o in zip(self.norms, outs)]


def _out_of_place(act: nn.Module) -> nn.Module:
    if hasattr(act, "inplace"):
        act.inplace = False
    return act


class RetinaNetHead(nn.Module):
    """Class and box towers; convs shared by all levels, one BatchNorm per level and conv."""

    def __init__(self, channels: int, num_convs: int, num_levels: int, num_anchors: int, num_classes: int, act: str):
        super().__init__()
        self.num_anchors, self.num_classes = num_anchors, num_classes

        def convs() -> nn.ModuleList:
            return nn.ModuleList(SeparableConv(channels, channels) for _ in range(num_convs))

        def norms() -> nn.ModuleList:  # [level][conv]
            per_level = (nn.ModuleList(create_bn(channels) for _ in range(num_convs)) for _ in range(num_levels))
            return nn.ModuleList(per_level)

        self.cls_convs, self.cls_norms = convs(), norms()
        self.box_convs, self.box_norms = convs(), norms()
        self.act = create_act(act)
        self.cls_out = SeparableConv(channels, num_anchors * num_classes)
        self.box_out = SeparableConv(channels, num_anchors * 4)

    def _tower(self, x: torch.Tensor, convs: nn.ModuleList, norms: nn.ModuleList) -> torch.Tensor:
        for conv, norm in zip(convs, norms):
            x = self.act(norm(conv(x)))
        return x

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for level, x in enumerate(features):
            cls = self.cls_out(self._tower(x, self.cls_convs, self.cls_norms[level]))
            box = self.box_out(self._tower(x, self.box_convs, self.box_norms[level]))
            outputs.append(torch.cat([_per_anchor(box, 4), _per_anchor(cls, self.num_classes)], dim=2))
        return torch.cat(outputs, dim=1)


def _per_anchor(x: torch.Tensor, width: int) -> torch.Tensor:
    """[B, 9 * width, H, W] -> [B, H * W * 9, width] in (y, x, anchor) order (NHWC reshape)."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, width)


class RetinaNet(nn.Module):
    """RetinaNet-MNv4: NCHW float32 [B, 3, R, R] in, raw [B, A, 4 + num_classes] out."""

    def __init__(self, detector_def: detectors.DetectorDef, num_classes: int | None = None):
        super().__init__()
        self.detector_def = detector_def
        self.num_classes = num_classes or detector_def.num_classes
        self.plan = specs.plan(detector_def.backbone_def())
        backbone_levels = tuple(lvl for lvl in detector_def.levels if lvl <= 5)
        self.taps = detectors.feature_taps(self.plan, backbone_levels)
        self.weights_origin: str | None = None

        self.backbone = MobileNetBody(self.plan, self.taps)
        self.fpn = FPN(
            self.backbone.out_channels,
            detector_def.fpn_channels,
            num_extra=len(detector_def.levels) - len(backbone_levels),
            act=detector_def.act,
        )
        self.head = RetinaNetHead(
            detector_def.head_channels,
            detector_def.head_convs,
            len(detector_def.levels),
            detector_def.anchors_per_location,
            self.num_classes,
            detector_def.act,
        )
        init_detector_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fpn(self.backbone(x)))


@torch.no_grad()
def init_detector_weights(model: RetinaNet) -> None:
    """timm's init everywhere; the two predictors' 1x1 convs start at zero weight.

    The class bias is RetinaNet's prior (Lin et al. 2017, section 4.1), so an untrained detector
    scores every anchor 0.01 and regresses no offset. Lin et al. draw these weights from
    N(0, 0.01), which keeps the scores near 0.01 only while the features stay O(1); an untrained
    MNv4 body in eval mode gives features in the hundreds, and scores of 0 or 1 that would swamp
    NMS. Zero weights still train: their gradient is the (non-zero) input times the loss gradient.
    """
    init_weights(model)
    for out in (model.head.cls_out, model.head.box_out):
        nn.init.zeros_(out.pw.weight)
        nn.init.zeros_(out.pw.bias)
    model.head.cls_out.pw.bias.fill_(detectors.class_prior_bias())


# --------------------------------------------------------------------------- weights

#: Classifier state-dict prefixes the detector has no use for (timm layout).
_CLASSIFIER_ONLY = ("conv_head.", "norm_head.", "classifier.")


def load_backbone_weights(model: RetinaNet, source: str | Path, *, cache_dir: str | Path | None = None) -> str:
    """Initialise only the backbone from an ImageNet classifier checkpoint of the same MNv4 model.

    The classifier's head (the 960 and 1280 convs, classifier) is dropped; every backbone tensor must
    be present and fit (a UserError names the keys otherwise). FPN and heads keep their init.
    """
    from mnv4suite.errors import UserError

    from .weights import check_fit, load_state_dict

    state, origin = load_state_dict(source, cache_dir=cache_dir)
    built = len(model.backbone.blocks)
    unused_stages = tuple(f"blocks.{s}." for s in range(built, len(model.plan.model.stages)))
    body = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER_ONLY + unused_stages)}
    fit = check_fit(model.backbone.state_dict(), body)
    if not fit.ok:
        raise UserError(
            fit.describe(origin)
            + f"\n  (initialising the backbone of {model.detector_def.id} needs an ImageNet checkpoint of "
            f"{model.detector_def.backbone})"
        )
    model.backbone.load_state_dict(body, strict=True)
    return f"backbone: {origin}"


def load_detector_weights(model: RetinaNet, source: str | Path, *, cache_dir: str | Path | None = None) -> str:
    """Load a full detector checkpoint (.safetensors, or .pth/.bin read with weights_only=True), strictly.

    A checkpoint that does not fit raises a UserError listing missing, unexpected and mis-shaped
    keys; an ImageNet classifier checkpoint passed by mistake is recognised and the fix named.
    """
    from mnv4suite.errors import UserError

    from .weights import check_fit, load_state_dict

    state, origin = load_state_dict(source, cache_dir=cache_dir)
    fit = check_fit(model.state_dict(), state)
    if not fit.ok:
        message = fit.describe(origin)
        if "conv_stem.weight" in state and not any(k.startswith("backbone.") for k in state):
            message += (
                f"\n  '{origin}' looks like an ImageNet classifier checkpoint, not a detector one. Detector "
                f"checkpoints hold backbone.*, fpn.* and head.*; to start from a classifier, use "
                f"create_detector('{model.detector_def.id}', backbone_weights=...) (FPN and heads stay untrained)"
            )
        raise UserError(message)
    model.load_state_dict(state, strict=True)
    return origin


def create_detector(
    name: str,
    num_classes: int | None = None,
    weights: str | Path | None = None,
    *,
    backbone_weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> RetinaNet:
    """Build a detector by id (``retinanet-mnv4-conv-m``...), optionally load weights; eval mode.

    ``weights``: a full detector checkpoint (file or ``hf-hub:`` name). ``backbone_weights``: an
    ImageNet checkpoint of the backbone classifier (file, hub name, or ``"pretrained"`` for its
    default timm checkpoint); FPN and heads then stay at their init, so this is a start for
    training, not a working detector. No detector checkpoints are published.
    """
    from mnv4suite.errors import UserError

    detector_def = detectors.get_detector_def(name)
    model = RetinaNet(detector_def, num_classes=num_classes)
    if backbone_weights is not None:
        if str(backbone_weights) == "pretrained":
            backbone_weights = specs.PRETRAINED[detector_def.backbone]
        model.weights_origin = load_backbone_weights(model, backbone_weights, cache_dir=cache_dir)
    if weights is not None:
        if str(weights) == "pretrained":
            raise UserError(
                f"no pretrained weights are published for '{detector_def.id}' (the MobileNetV4 paper released "
                "no detector checkpoints); pass a detector checkpoint file, or train from an ImageNet backbone "
                "with backbone_weights='pretrained'"
            )
        model.weights_origin = load_detector_weights(model, weights, cache_dir=cache_dir)
    return model.eval()


def build_detector(model_id: str, num_classes: int = 80, weights: str | Path | None = None) -> RetinaNet:
    """The ``ModelSpec.builder`` entry point: ``builder(model_id, num_classes=..., weights=...)``."""
    return create_detector(model_id, num_classes=num_classes, weights=weights)
