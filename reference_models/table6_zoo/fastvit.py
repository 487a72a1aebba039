"""FastViT (Vasu et al. 2023, "FastViT: A Fast Hybrid Vision Transformer using Structural
Reparameterization", apple/ml-fastvit ``models/fastvit.py``) in its inference form, for counting only.

"Inference form" is the network after ``reparameterize_model``, as it is deployed: every MobileOne
block, ReparamLargeKernelConv, RepMixer and RepCPE is one conv with bias (branches, BatchNorms and the
skip connections around RepMixer and RepCPE merged into the kernel), the BatchNorm after the ConvFFN's
depthwise conv is folded into it, and the layer scales are folded into the output conv or linear of
their branch. The only BatchNorm left is the attention block's pre-norm: nothing precedes it to fold
into (it costs no MACs, and 2 x C parameters as a module).

Two details of the released model that the paper's figure does not show:

* the patch embedding's 7x7 stride-2 conv has no activation: the original ``ReparamLargeKernelConv``
  computes ``self.activation(out)`` and discards it, and the released weights were trained so (timm
  keeps it off, ``lkc_use_act=False``); only its 1x1 conv is followed by GELU;
* that 7x7 conv has ``groups=in_channels`` and twice as many outputs (a channel multiplier of 2), as
  has the classifier's 3x3 ``conv_exp``.

No weights, no training: the modules have the real shapes, so ``counting.profile`` counts the
parameters and MACs, and a forward pass runs (on random weights) to check the shapes.
"""

from __future__ import annotations

import torch
from torch import nn

from ..torch_blocks import ScaledDotProductAttention


def _conv(in_chs: int, out_chs: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A re-parameterised conv: BN folded, hence always with a bias."""
    return nn.Conv2d(in_chs, out_chs, kernel, stride, kernel // 2, groups=groups, bias=True)


def _conv_gelu(in_chs: int, out_chs: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """A MobileOne block (no squeeze-excite) after re-parameterisation: one conv, then GELU."""
    return nn.Sequential(_conv(in_chs, out_chs, kernel, stride, groups), nn.GELU())


class SqueezeExcite(nn.Module):
    """MobileOne's SE in the classifier's ``conv_exp``: reduce to C/16 with ReLU, expand, sigmoid gate."""

    def __init__(self, chs: int, rd_ratio: float = 0.0625):
        super().__init__()
        rd = int(chs * rd_ratio)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce, self.act = nn.Conv2d(chs, rd, 1), nn.ReLU()
        self.expand, self.gate = nn.Conv2d(rd, chs, 1), nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class ConvFFN(nn.Module):
    """7x7 depthwise conv (BN folded), 1x1 expansion, GELU, 1x1 projection (layer scale folded)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.conv = _conv(dim, dim, 7, groups=dim)
        self.fc1, self.act, self.fc2 = nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.conv(x))))


class RepMixerBlock(nn.Module):
    """RepMixer (one 3x3 depthwise conv: its skip connection is in the kernel), then a residual ConvFFN."""

    def __init__(self, dim: int, mlp_ratio: float):
        super().__init__()
        self.token_mixer = _conv(dim, dim, 3, groups=dim)
        self.convffn = ConvFFN(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.token_mixer(x)
        return x + self.convffn(x)


class MHSA(nn.Module):
    """Multi-head self-attention over the H*W tokens of an NCHW map (head_dim 32, qkv without bias)."""

    def __init__(self, dim: int, head_dim: int = 32):
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attend = ScaledDotProductAttention()  # a module, so the counter gives the matmuls a row
        self.proj = nn.Linear(dim, dim)  # the block's first layer scale is folded in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(tokens).reshape(b, h * w, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = self.attend(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return self.proj(out).transpose(1, 2).reshape(b, c, h, w)


class AttentionBlock(nn.Module):
    """BatchNorm pre-norm, MHSA and a ConvFFN, each branch residual."""

    def __init__(self, dim: int, mlp_ratio: float):
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.token_mixer = MHSA(dim)
        self.convffn = ConvFFN(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mixer(self.norm(x))
        return x + self.convffn(x)


def _patch_embed(in_chs: int, out_chs: int) -> nn.Sequential:
    """Downsampling between stages: 7x7 stride-2 conv with groups=in_chs (no activation, see above),
    then a 1x1 MobileOne block with GELU."""
    return nn.Sequential(_conv(in_chs, out_chs, 7, 2, groups=in_chs), _conv_gelu(out_chs, out_chs, 1))


class FastViT(nn.Module):
    """Stem (three MobileOne blocks, /4), four stages with patch embeddings between them, and the
    classifier: 3x3 ``conv_exp`` to 2x the channels with SE and GELU, global pooling, linear."""

    def __init__(
        self,
        layers: tuple[int, ...],
        dims: tuple[int, ...],
        mlp_ratio: float,
        attention_last: bool = False,
        num_classes: int = 1000,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            _conv_gelu(3, dims[0], 3, 2),
            _conv_gelu(dims[0], dims[0], 3, 2, groups=dims[0]),
            _conv_gelu(dims[0], dims[0], 1),
        )
        stages: list[nn.Module] = []
        for i, (depth, dim) in enumerate(zip(layers, dims)):
            attention = attention_last and i == len(layers) - 1
            block = AttentionBlock if attention else RepMixerBlock
            stage: list[nn.Module] = [_patch_embed(dims[i - 1], dim)] if i > 0 else []
            if attention:  # RepCPE: a 7x7 depthwise conv with its skip connection in the kernel
                stage.append(_conv(dim, dim, 7, groups=dim))
            stage += [block(dim, mlp_ratio) for _ in range(depth)]
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        width = 2 * dims[-1]  # a MobileOne block with squeeze-excite, channel multiplier 2
        self.conv_exp = nn.Sequential(_conv(dims[-1], width, 3, groups=dims[-1]), SqueezeExcite(width), nn.GELU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_exp(self.stages(self.stem(x)))
        return self.head(self.pool(x).flatten(1))


def fastvit_t8() -> FastViT:
    return FastViT((2, 2, 4, 2), (48, 96, 192, 384), mlp_ratio=3)


def fastvit_s12() -> FastViT:
    return FastViT((2, 2, 6, 2), (64, 128, 256, 512), mlp_ratio=4)


def fastvit_sa12() -> FastViT:
    return FastViT((2, 2, 6, 2), (64, 128, 256, 512), mlp_ratio=4, attention_last=True)


def fastvit_sa24() -> FastViT:
    return FastViT((4, 4, 12, 4), (64, 128, 256, 512), mlp_ratio=4, attention_last=True)


def fastvit_sa36() -> FastViT:
    return FastViT((6, 6, 18, 6), (64, 128, 256, 512), mlp_ratio=4, attention_last=True)
