"""ConvNeXt-S (Liu et al., "A ConvNet for the 2020s", CVPR 2022; facebookresearch/ConvNeXt), described
for counting only.

*Inference form* here is simply the eval-mode network: ConvNeXt has no branches to merge, and its
LayerNorms cannot be folded into the convs the way BatchNorm can, so they stay; stochastic depth is
the identity at inference and is left out.

Layout: a 4x4 stride-4 patchify stem + LayerNorm; four stages of (3, 3, 27, 3) blocks at widths
(96, 192, 384, 768), each stage after the first entered through LayerNorm + a 2x2 stride-2 conv;
a block is a 7x7 depthwise conv, LayerNorm, Linear 4x, GELU, Linear back, a per-channel layer scale
and a residual add. Head: global average pooling, LayerNorm, Linear.

Norms and activations are ``nn.LayerNorm`` / ``nn.GELU`` modules (not functional calls) so code that
looks for unsupported ops by module type finds them.
"""

from __future__ import annotations

import torch
from torch import nn

LN_EPS = 1e-6


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (the reference's ``channels_first`` LayerNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    """dw 7x7 -> LN -> Linear 4x -> GELU -> Linear -> layer scale, plus the residual."""

    def __init__(self, dim: int, layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        # a learned per-channel scale: parameters, as the paper and timm count them
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # NHWC for the LayerNorm and the Linears
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """ConvNeXt classifier for given stage depths and widths."""

    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...], num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=LN_EPS))
        stages = []
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            down = (
                nn.Sequential(LayerNorm2d(dims[i - 1], eps=LN_EPS), nn.Conv2d(dims[i - 1], dim, 2, stride=2))
                if i > 0
                else nn.Identity()
            )
            stages.append(nn.Sequential(down, *(Block(dim) for _ in range(depth))))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1], eps=LN_EPS)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x)).mean((-2, -1))  # global average pooling
        return self.head(self.norm(x))


def convnext_small() -> ConvNeXt:
    """ConvNeXt-S: ConvNeXt-T's widths with stage 3 deepened from 9 to 27 blocks."""
    return ConvNeXt((3, 3, 27, 3), (96, 192, 384, 768))
