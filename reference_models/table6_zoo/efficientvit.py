"""MIT EfficientViT B1 / B2 / B3 classifiers, described for counting only (no weights, no training).

Source: Cai et al., "EfficientViT: Multi-Scale Linear Attention for High-Resolution Dense Prediction"
(ICCV 2023), github.com/mit-han-lab/efficientvit: ``efficientvit/models/efficientvit/backbone.py``
(``EfficientViTBackbone``, ``efficientvit_backbone_b1..b3``), ``cls.py`` (``ClsHead``, ``efficientvit_cls_b*``)
and ``models/nn/ops.py`` (``ConvLayer``, ``DSConv``, ``MBConv``, ``LiteMLA``, ``EfficientViTBlock``);
cross-read with timm's ``timm/models/efficientvit_mit.py``. Written from those readings, not copied.

Layout: a 3x3 s2 stem conv and DSConv residual blocks; stages 1-2 of MBConv (expand 4, the first one
stride 2 and without shortcut); stages 3-4 a stride-2 MBConv in "fewer norm" form (biases on the first
two convs, BN only after the last) followed by EfficientViT blocks (LiteMLA context module with one 5x5
multi-scale aggregation, then a fewer-norm MBConv local module). Hard-swish throughout. Head: 1x1 conv +
BN + hswish, global average pool, Linear + LayerNorm + hswish, Linear to the classes.

BatchNorm stays a separate module (its gamma/beta are parameters, as the paper counts them; the cost
counter gives it no row and FlopCounterMode no MACs). The linear-attention core is its own
parameter-free module, ``counted_as = "attention"``, so its two matmuls form one row.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias)


class ConvLayer(nn.Sequential):
    """Conv, then BN and activation when given (the official ``ConvLayer``; bias only where BN is absent)."""

    def __init__(self, cin, cout, k=1, stride=1, groups=1, bias=False, norm=True, act=False):
        layers = [_conv(cin, cout, k, stride, groups, bias)]
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        if act:
            layers.append(nn.Hardswish())
        super().__init__(*layers)


class DSConv(nn.Sequential):
    """Depthwise 3x3 + BN + hswish, pointwise 1x1 + BN (the stem's residual blocks)."""

    def __init__(self, chs: int):
        super().__init__(ConvLayer(chs, chs, 3, groups=chs, act=True), ConvLayer(chs, chs))


class MBConv(nn.Sequential):
    """Inverted bottleneck 1x1 -> dw 3x3 -> 1x1. ``fewer_norm``: the first two convs carry biases
    instead of BN, as in stages 3-4 and the EfficientViT blocks' local module."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: float = 4, fewer_norm: bool = False):
        mid = round(cin * expand)
        super().__init__(
            ConvLayer(cin, mid, bias=fewer_norm, norm=not fewer_norm, act=True),
            ConvLayer(mid, mid, 3, stride, groups=mid, bias=fewer_norm, norm=not fewer_norm, act=True),
            ConvLayer(mid, cout),
        )


class Residual(nn.Module):
    """``x + f(x)``."""

    def __init__(self, main: nn.Module):
        super().__init__()
        self.main = main

    def forward(self, x):
        return x + self.main(x)


class ReLULinearAttention(nn.Module):
    """The parameter-free core of LiteMLA: ReLU kernel on q and k, v padded with a row of ones,
    ``(v k^T) q`` and division by the padded row (the normaliser). One cost row: its two matmuls.

    Input: the concatenated multi-scale qkv map [B, G*3*dim, H, W], G groups of (q, k, v) per channel
    block. Like the official code, maps with H*W <= dim take the quadratic form (k^T q, then v @ att).
    """

    counted_as = "attention"

    def __init__(self, dim: int, eps: float = 1.0e-15):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.kernel = nn.ReLU()

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        b, _, h, w = qkv.shape
        d = self.dim
        qkv = qkv.reshape(b, -1, 3 * d, h * w)
        q, k, v = self.kernel(qkv[:, :, :d]), self.kernel(qkv[:, :, d : 2 * d]), qkv[:, :, 2 * d :]
        if h * w > d:
            v = torch.cat([v, torch.ones_like(v[:, :, :1])], dim=2)  # [B, G, d+1, N]
            out = torch.matmul(torch.matmul(v, k.transpose(-1, -2)), q)  # (d+1)xd, then (d+1)xN
            out = out[:, :, :-1] / (out[:, :, -1:] + self.eps)
        else:
            att = torch.matmul(k.transpose(-1, -2), q)  # N x N
            att = att / (att.sum(dim=2, keepdim=True) + self.eps)
            out = torch.matmul(v, att)
        return out.reshape(b, -1, h, w)


class LiteMLA(nn.Module):
    """Lightweight multi-scale linear attention: 1x1 qkv conv, a 5x5 aggregation branch (depthwise 5x5 +
    1x1 grouped by 3*heads), attention on both scales, 1x1 projection + BN."""

    def __init__(self, chs: int, dim: int, scale: int = 5):
        super().__init__()
        heads = chs // dim
        total = heads * dim
        self.qkv = ConvLayer(chs, 3 * total, norm=False)
        self.aggreg = nn.Sequential(
            _conv(3 * total, 3 * total, scale, groups=3 * total), _conv(3 * total, 3 * total, groups=3 * heads)
        )
        self.attn = ReLULinearAttention(dim)
        self.proj = ConvLayer(2 * total, chs)

    def forward(self, x):
        qkv = self.qkv(x)
        qkv = torch.cat([qkv, self.aggreg(qkv)], dim=1)
        return self.proj(self.attn(qkv))


class EfficientViTBlock(nn.Sequential):
    """Context (LiteMLA) then local (fewer-norm MBConv) module, each residual."""

    def __init__(self, chs: int, dim: int, expand: float = 4):
        super().__init__(Residual(LiteMLA(chs, dim)), Residual(MBConv(chs, chs, expand=expand, fewer_norm=True)))


class ClsHead(nn.Sequential):
    """1x1 conv + BN + hswish, GAP, Linear (no bias) + LayerNorm + hswish, Linear to the classes."""

    def __init__(self, cin: int, widths: tuple[int, int], num_classes: int = 1000):
        super().__init__(
            ConvLayer(cin, widths[0], act=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(widths[0], widths[1], bias=False),
            nn.LayerNorm(widths[1]),
            nn.Hardswish(),
            nn.Linear(widths[1], num_classes),
        )


class EfficientViT(nn.Module):
    """``EfficientViTBackbone`` + ``ClsHead`` for the B series."""

    def __init__(self, widths, depths, dim, head_widths, expand: float = 4, num_classes: int = 1000):
        super().__init__()
        w0 = widths[0]
        self.stem = nn.Sequential(ConvLayer(3, w0, 3, 2, act=True), *(Residual(DSConv(w0)) for _ in range(depths[0])))
        stages, cin = [], w0
        for i, (w, d) in enumerate(zip(widths[1:], depths[1:])):
            if i < 2:  # MBConv stages: d blocks, the first one downsamples (no shortcut)
                blocks = [MBConv(cin, w, 2, expand)] + [Residual(MBConv(w, w, 1, expand)) for _ in range(d - 1)]
            else:  # a fewer-norm downsampling MBConv, then d EfficientViT blocks
                blocks = [MBConv(cin, w, 2, expand, fewer_norm=True)]
                blocks += [EfficientViTBlock(w, dim, expand) for _ in range(d)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.head = ClsHead(cin, head_widths, num_classes)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def efficientvit_b1(num_classes: int = 1000) -> EfficientViT:
    return EfficientViT((16, 32, 64, 128, 256), (1, 2, 3, 3, 4), 16, (1536, 1600), num_classes=num_classes)


def efficientvit_b2(num_classes: int = 1000) -> EfficientViT:
    return EfficientViT((24, 48, 96, 192, 384), (1, 3, 4, 4, 6), 32, (2304, 2560), num_classes=num_classes)


def efficientvit_b3(num_classes: int = 1000) -> EfficientViT:
    return EfficientViT((32, 64, 128, 256, 512), (1, 4, 6, 6, 9), 32, (2304, 2560), num_classes=num_classes)
