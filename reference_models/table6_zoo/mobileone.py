"""MobileOne S0 and S4 (Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", CVPR 2023;
apple/ml-mobileone), described for counting only.

*Inference form* means the network after ``reparameterize_model``: each MobileOneBlock's train-time
branches (k conv-BN branches, a 1x1 conv-BN "scale" branch and a BN skip) are merged into one conv
with a bias, so a block is conv (+ squeeze-excite) + ReLU. That is what a deployed model computes.

Layout: a stride-2 3x3 stem of ``min(64, 64 * w0)`` channels, then four stages of (2, 8, 10, 1)
blocks of width ``(64, 128, 256, 512) * w``; each block is a 3x3 depthwise MobileOneBlock (stride 2
in a stage's first block) followed by a 1x1 pointwise one. S4 adds squeeze-excite to both halves
of the last half of stage 3's blocks and of all of stage 4's. Global average pooling, then a linear
classifier.
"""

from __future__ import annotations

import torch
from torch import nn

BLOCKS_PER_STAGE = (2, 8, 10, 1)
STAGE_WIDTHS = (64, 128, 256, 512)


class SqueezeExcite(nn.Module):
    """The reference's SEBlock: pool, 1x1 reduce (+bias), ReLU, 1x1 expand (+bias), sigmoid gate."""

    def __init__(self, channels: int, rd_ratio: float = 0.0625) -> None:
        super().__init__()
        reduced = int(channels * rd_ratio)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MobileOneBlock(nn.Module):
    """One re-parameterised block: a single biased conv (branches and BN folded), optional SE, ReLU."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int = 1, groups: int = 1, se: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel, stride, padding=kernel // 2, groups=groups, bias=True)
        self.se = SqueezeExcite(out_chs) if se else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.se(self.conv(x)))


def _stage(in_chs: int, out_chs: int, blocks: int, se_blocks: int) -> nn.Sequential:
    """``blocks`` depthwise-3x3 + pointwise-1x1 pairs; the last ``se_blocks`` pairs carry SE in both halves."""
    layers: list[nn.Module] = []
    for i in range(blocks):
        se = i >= blocks - se_blocks
        layers.append(MobileOneBlock(in_chs, in_chs, 3, stride=2 if i == 0 else 1, groups=in_chs, se=se))
        layers.append(MobileOneBlock(in_chs, out_chs, 1, se=se))
        in_chs = out_chs
    return nn.Sequential(*layers)


class MobileOne(nn.Module):
    """MobileOne in inference form for a width multiplier per stage."""

    def __init__(self, widths: tuple[float, float, float, float], use_se: bool = False, num_classes: int = 1000):
        super().__init__()
        chs = [int(base * w) for base, w in zip(STAGE_WIDTHS, widths)]
        stem_chs = min(64, int(64 * widths[0]))
        self.stem = MobileOneBlock(3, stem_chs, 3, stride=2)
        # the reference's SE placement: the second half of stage 3, all of stage 4
        se_blocks = (0, 0, BLOCKS_PER_STAGE[2] // 2, BLOCKS_PER_STAGE[3]) if use_se else (0, 0, 0, 0)
        in_chs = stem_chs
        stages = []
        for out_chs, blocks, n_se in zip(chs, BLOCKS_PER_STAGE, se_blocks):
            stages.append(_stage(in_chs, out_chs, blocks, n_se))
            in_chs = out_chs
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(in_chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stages(self.stem(x)))
        return self.head(torch.flatten(x, 1))


def mobileone_s0() -> MobileOne:
    """MobileOne-S0 (the reference trains it with 4 conv branches; merged away at inference)."""
    return MobileOne((0.75, 1.0, 1.0, 2.0))


def mobileone_s4() -> MobileOne:
    """MobileOne-S4, the one variant with squeeze-excite."""
    return MobileOne((3.0, 3.5, 3.5, 4.0), use_se=True)
