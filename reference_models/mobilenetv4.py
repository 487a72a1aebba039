"""The PyTorch MobileNet builder: turns a ``specs.ModelDef`` into a module with timm's state-dict layout.

    stem conv (stride 2) -> BN -> act
    blocks: one nn.Sequential per stage, one module per spec block   (``blocks.S.B``)
    global average pool -> [1x1 conv_head -> [norm_head] -> act] -> flatten -> dropout -> classifier

Pooling comes before the 1280-wide head conv (MobileNetV3's "efficient head"), which keeps that
conv at 1x1 spatial size. Models without a head conv (MobileNetV1/V2) classify the pooled features;
V2's 1280 conv before pooling is a block of its last stage.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from . import specs
from .torch_blocks import LayerScale2d, MultiQueryAttention2d, build_block, create_act, create_bn, create_conv


class MobileNet(nn.Module):
    """A MobileNet built from a block specification: the five MNv4 models and the V1/V2/V3 baselines."""

    def __init__(
        self,
        model_def: specs.ModelDef,
        num_classes: int = 1000,
        width_multiplier: float = 1.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        in_chans: int = 3,
    ):
        super().__init__()
        self.model_def = model_def
        self.plan = specs.plan(model_def, width_multiplier)
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.weights_origin: str | None = None  # where loaded weights came from; None = random init

        self.conv_stem = create_conv(in_chans, self.plan.stem_chs, model_def.stem_kernel, model_def.stem_stride)
        self.bn1 = create_bn(self.plan.stem_chs)
        self.act1 = create_act(model_def.act)

        stages: list[list[nn.Module]] = [[] for _ in model_def.stages]
        for block in self.plan.blocks:
            stages[block.stage].append(build_block(block, drop_path_rate))
        self.blocks = nn.Sequential(*(nn.Sequential(*stage) for stage in stages))
        self.num_features = self.plan.num_features  # output channels of forward_features
        self.head_hidden_size = self.plan.head_chs  # pre-logits width

        head = model_def.head
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        if head.width is not None:
            self.conv_head = create_conv(self.num_features, self.head_hidden_size, 1, bias=head.bias)
            self.norm_head = create_bn(self.head_hidden_size) if head.norm else nn.Identity()
            self.act_head = create_act(model_def.act)
        else:
            self.conv_head = self.norm_head = self.act_head = nn.Identity()
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()

        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and all stages: the stride-32 feature map (``num_features`` channels)."""
        return self.blocks(self.act1(self.bn1(self.conv_stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act_head(self.norm_head(self.conv_head(self.global_pool(x))))
        x = self.dropout(self.flatten(x))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@torch.no_grad()
def init_weights(model: nn.Module) -> None:
    """timm's EfficientNet/MobileNet init, so random-init models behave like untrained timm ones.

    Convs: N(0, sqrt(2 / fan_out)); BN: 1 / 0; Linear: U(+-1/sqrt(out)); attention projections:
    Xavier (more stable for the hybrids, per timm); layer scale gamma: its small init value.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            m.weight.normal_(0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.size(0))
            m.weight.uniform_(-bound, bound)
            m.bias.zero_()
    for m in model.modules():
        if isinstance(m, MultiQueryAttention2d):
            for branch in (m.query, m.key, m.value, m.output):
                for conv in branch.modules():
                    if isinstance(conv, nn.Conv2d):
                        nn.init.xavier_uniform_(conv.weight)
        elif isinstance(m, LayerScale2d):
            m.gamma.fill_(m.init_value)


def create_model(
    name: str,
    num_classes: int = 1000,
    weights: str | Path | None = None,
    width_multiplier: float = 1.0,
    *,
    cache_dir: str | Path | None = None,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> MobileNet:
    """Build a model by id or timm alias, optionally load weights, and return it in eval mode.

    ``weights``: None (random init), a local .safetensors/.pth/.bin file, a hub name such as
    ``hf-hub:timm/mobilenetv4_conv_small.e2400_r224_in1k``, or ``"pretrained"`` for the model's
    default public checkpoint (MNv4 only). ``cache_dir`` is the Hugging Face hub cache for hub names.
    ``width_multiplier`` scales on top of the named model's own (``mnv2-0.5`` at 2.0 is ``mnv2-1.0``).
    """
    model_def = specs.get_model_def(name)
    model = MobileNet(
        model_def,
        num_classes=num_classes,
        width_multiplier=width_multiplier,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
    )
    if weights is not None:
        from .weights import load_weights

        if str(weights) == "pretrained":
            if model_def.id not in specs.PRETRAINED:
                from mnv4suite.errors import UserError

                raise UserError(
                    f"'{model_def.id}' has no default checkpoint (weights='pretrained' is known for "
                    f"{', '.join(specs.PRETRAINED)}); pass a checkpoint file or hub name instead"
                )
            weights = specs.PRETRAINED[model_def.id]
        model.weights_origin = load_weights(model, weights, cache_dir=cache_dir)
    return model.eval()


def build(model_id: str, num_classes: int = 1000, weights: str | Path | None = None) -> MobileNet:
    """The ``ModelSpec.builder`` entry point: ``builder(model_id, num_classes=..., weights=...)``."""
    return create_model(model_id, num_classes=num_classes, weights=weights)
