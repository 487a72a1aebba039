"""PyTorch building blocks for the MobileNet family, named so timm checkpoints load with strict=True.

Every module and attribute name here is part of the checkpoint format (see
``shared/reference/mnv4_architecture.md`` section 5): ``conv``/``bn`` inside a conv-norm layer,
``dw_start``/``pw_exp``/``dw_mid``/``pw_proj``/``layer_scale`` in a UIB, ``conv_exp``/``bn1``/
``conv_pwl``/``bn2`` in a FusedIB, ``norm``/``attn.{query,key,value,output}.proj`` in Mobile MQA,
and timm's ``conv_dw``/``bn1``/``conv_pw``/``bn2`` and ``se.conv_reduce``/``se.conv_expand`` for the
V1-V3 baselines' depthwise-separable block and squeeze-excite.
Absent optional layers are ``nn.Identity`` so they produce no state-dict keys and no branches.

Numerics follow the checkpoints' training code: symmetric padding, BatchNorm eps 1e-5, no conv
biases (squeeze-excite aside), exact GELU.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from . import specs

BN_EPS = 1e-5


def create_act(name: str | None) -> nn.Module:
    """Activation by spec name; None means none."""
    if name is None:
        return nn.Identity()
    factories = {
        "relu": lambda: nn.ReLU(inplace=True),
        "relu6": lambda: nn.ReLU6(inplace=True),
        "gelu": lambda: nn.GELU(approximate="none"),
        "hard_swish": lambda: nn.Hardswish(inplace=True),
        "silu": lambda: nn.SiLU(inplace=True),
    }
    try:
        return factories[name]()
    except KeyError:
        raise ValueError(f"unknown activation '{name}' (known: {', '.join(factories)})") from None


def get_padding(kernel: int, stride: int = 1, dilation: int = 1) -> int:
    """Symmetric PyTorch padding, as the checkpoints were trained (not TF 'SAME')."""
    return ((stride - 1) + dilation * (kernel - 1)) // 2


def create_conv(
    in_chs: int, out_chs: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False
) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, kernel, stride, get_padding(kernel, stride), groups=groups, bias=bias)


def create_bn(chs: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(chs, eps=BN_EPS)


class ConvNormAct(nn.Module):
    """conv -> BN -> optional activation (timm's ``ConvNormAct``: keys ``conv.*`` and ``bn.*``)."""

    def __init__(
        self, in_chs: int, out_chs: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = None
    ):
        super().__init__()
        self.conv = create_conv(in_chs, out_chs, kernel, stride, groups)
        self.bn = create_bn(out_chs)
        self.act = create_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class LayerScale2d(nn.Module):
    """Per-channel learnable scale of a residual branch (CaiT-style), key ``gamma``."""

    def __init__(self, chs: int, init_value: float = 1e-5):
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((chs,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)


class DropPath(nn.Module):
    """Stochastic depth on a residual branch: drops whole samples during training only."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def _drop_path(plan: specs.BlockPlan, drop_path_rate: float) -> nn.Module:
    rate = drop_path_rate * plan.drop_path
    return DropPath(rate) if plan.residual and rate > 0 else nn.Identity()


def _layer_scale(plan: specs.BlockPlan) -> nn.Module:
    return LayerScale2d(plan.out_chs, plan.layer_scale) if plan.layer_scale is not None else nn.Identity()


class SqueezeExcite(nn.Module):
    """MobileNetV3 squeeze-excite: x * hard_sigmoid(expand(relu(reduce(mean(x))))), 1x1 convs with bias."""

    def __init__(self, chs: int, rd_chs: int):
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.conv_expand(self.act1(self.conv_reduce(s))))


# --------------------------------------------------------------------------- blocks


class ConvBnActBlock(nn.Module):
    """``ConvBnAct`` spec: conv -> BN -> act (keys ``conv.*``, ``bn1.*``)."""

    def __init__(self, plan: specs.BlockPlan, drop_path_rate: float = 0.0):
        super().__init__()
        spec = plan.spec
        self.conv = create_conv(plan.in_chs, plan.out_chs, spec.kernel, plan.stride)
        self.bn1 = create_bn(plan.out_chs)
        self.act = create_act(plan.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn1(self.conv(x)))


class DepthwiseSeparableBlock(nn.Module):
    """``DepthwiseSeparable`` spec (timm ``DepthwiseSeparableConv``): k x k DW + BN + act, 1x1 + BN [+ act]."""

    def __init__(self, plan: specs.BlockPlan, drop_path_rate: float = 0.0):
        super().__init__()
        spec: specs.DepthwiseSeparable = plan.spec
        self.conv_dw = create_conv(plan.in_chs, plan.in_chs, spec.kernel, plan.stride, groups=plan.in_chs)
        self.bn1 = create_bn(plan.in_chs)
        self.act1 = create_act(plan.act)
        self.conv_pw = create_conv(plan.in_chs, plan.out_chs, 1)
        self.bn2 = create_bn(plan.out_chs)
        self.act2 = create_act(plan.act if spec.pw_act else None)
        self.residual = plan.residual
        self.drop_path = _drop_path(plan, drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv_dw(x)))
        y = self.act2(self.bn2(self.conv_pw(y)))
        return x + self.drop_path(y) if self.residual else y


class FusedIBBlock(nn.Module):
    """``FusedIB`` spec (timm ``EdgeResidual``): dense k x k expand + BN + act, 1x1 project + BN."""

    def __init__(self, plan: specs.BlockPlan, drop_path_rate: float = 0.0):
        super().__init__()
        spec = plan.spec
        self.conv_exp = create_conv(plan.in_chs, plan.mid_chs, spec.kernel, plan.stride)
        self.bn1 = create_bn(plan.mid_chs)
        self.act = create_act(plan.act)
        self.conv_pwl = create_conv(plan.mid_chs, plan.out_chs, 1)
        self.bn2 = create_bn(plan.out_chs)
        self.residual = plan.residual
        self.drop_path = _drop_path(plan, drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pwl(self.act(self.bn1(self.conv_exp(x)))))
        return x + self.drop_path(y) if self.residual else y


class UIBBlock(nn.Module):
    """``UIB`` spec: [start DW + BN] -> 1x1 expand + BN + act -> [mid DW + BN + act] -> [SE] -> 1x1 + BN.

    The start DW has no activation (it mixes space before the expansion); the stride sits on the
    middle DW if present. Layer scale (hybrids) multiplies the branch before the residual add;
    squeeze-excite (MobileNetV3) gates the expanded channels where timm's inverted residual does.
    """

    def __init__(self, plan: specs.BlockPlan, drop_path_rate: float = 0.0):
        super().__init__()
        spec: specs.UIB = plan.spec
        in_chs, mid_chs = plan.in_chs, plan.mid_chs
        if spec.start_dw:
            start_stride = 1 if spec.mid_dw else plan.stride
            self.dw_start = ConvNormAct(in_chs, in_chs, spec.start_dw, start_stride, groups=in_chs)
        else:
            self.dw_start = nn.Identity()
        self.pw_exp = ConvNormAct(in_chs, mid_chs, 1, act=plan.act)
        if spec.mid_dw:
            self.dw_mid = ConvNormAct(mid_chs, mid_chs, spec.mid_dw, plan.stride, groups=mid_chs, act=plan.act)
        else:
            self.dw_mid = nn.Identity()
        self.se = SqueezeExcite(mid_chs, plan.se_chs) if plan.se_chs else nn.Identity()
        self.pw_proj = ConvNormAct(mid_chs, plan.out_chs, 1)
        self.layer_scale = _layer_scale(plan)
        self.residual = plan.residual
        self.drop_path = _drop_path(plan, drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw_start(x)
        y = self.pw_exp(y)
        y = self.dw_mid(y)
        y = self.se(y)
        y = self.pw_proj(y)
        y = self.layer_scale(y)
        return x + self.drop_path(y) if self.residual else y


class ScaledDotProductAttention(nn.Module):
    """softmax(q k^T / sqrt(d)) v as its own (parameter-free) module.

    Being a module lets the cost counter attribute the two attention matmuls to a named layer.
    """

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)


class MultiQueryAttention2d(nn.Module):
    """Multi-query attention on NCHW maps: ``heads`` query heads, one shared key and value head.

    Channel layout matches timm: the query projection is split heads-major (channel = head*dk + d),
    and so is the attention output fed to ``output.proj``. Since every head attends to the same
    keys, the heads are folded into the query sequence ([B, 1, heads*N, dk]); this is the same
    math as broadcasting K/V over heads, but gives SDPA plain shapes its fused kernels accept.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        heads: int,
        key_dim: int,
        value_dim: int,
        kv_stride: int = 1,
        kv_kernel: int = 3,
    ):
        super().__init__()
        self.heads, self.key_dim, self.value_dim, self.kv_stride = heads, key_dim, value_dim, kv_stride
        self.query = nn.Sequential(OrderedDict(proj=create_conv(dim, heads * key_dim, 1)))
        self.key = self._kv_branch(dim, key_dim, kv_stride, kv_kernel)
        self.value = self._kv_branch(dim, value_dim, kv_stride, kv_kernel)
        self.attend = ScaledDotProductAttention()
        self.output = nn.Sequential(OrderedDict(proj=create_conv(heads * value_dim, dim_out, 1)))

    @staticmethod
    def _kv_branch(dim: int, out_dim: int, stride: int, kernel: int) -> nn.Sequential:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if stride > 1:  # the paper's asymmetric spatial reduction of keys and values
            layers["down_conv"] = create_conv(dim, dim, kernel, stride, groups=dim)
            layers["norm"] = create_bn(dim)
        layers["proj"] = create_conv(dim, out_dim, 1)
        return nn.Sequential(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        q = self.query(x).reshape(b, self.heads, self.key_dim, n).transpose(-1, -2)  # [B, heads, N, dk]
        q = q.reshape(b, 1, self.heads * n, self.key_dim)
        # contiguous: fused SDPA kernels (CPU flash, CUDA flash/efficient) need a unit-stride last dim
        k = self.key(x).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # [B, 1, M, dk]
        v = self.value(x).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # [B, 1, M, dv]
        o = self.attend(q, k, v)  # [B, 1, heads*N, dv]
        o = o.reshape(b, self.heads, n, self.value_dim).transpose(-1, -2)  # [B, heads, dv, N]
        o = o.reshape(b, self.heads * self.value_dim, h, w)  # channel = head * dv + d
        return self.output(o)


class MobileMQABlock(nn.Module):
    """``MobileMQA`` spec: x + layer_scale(MQA(BN(x))) (pre-norm, no activation, no MLP)."""

    def __init__(self, plan: specs.BlockPlan, drop_path_rate: float = 0.0):
        super().__init__()
        spec: specs.MobileMQA = plan.spec
        self.norm = create_bn(plan.in_chs)
        self.attn = MultiQueryAttention2d(
            plan.in_chs, plan.out_chs, spec.heads, spec.key_dim, spec.v_dim, spec.kv_stride, spec.kv_kernel
        )
        self.layer_scale = _layer_scale(plan)
        self.residual = plan.residual
        self.drop_path = _drop_path(plan, drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer_scale(self.attn(self.norm(x)))
        return x + self.drop_path(y) if self.residual else y


#: spec type -> PyTorch block; a new block type in specs.py needs one entry here.
BLOCKS: dict[type, type[nn.Module]] = {
    specs.ConvBnAct: ConvBnActBlock,
    specs.DepthwiseSeparable: DepthwiseSeparableBlock,
    specs.FusedIB: FusedIBBlock,
    specs.UIB: UIBBlock,
    specs.MobileMQA: MobileMQABlock,
}


def build_block(plan: specs.BlockPlan, drop_path_rate: float = 0.0) -> nn.Module:
    try:
        block_cls = BLOCKS[type(plan.spec)]
    except KeyError:
        raise NotImplementedError(f"no PyTorch block for {type(plan.spec).__name__}") from None
    return block_cls(plan, drop_path_rate)
