"""Keras (NHWC) building blocks for the MobileNet family: the twin of ``torch_blocks.py``.

Each builder takes a ``specs.BlockPlan`` (the same resolved plan the PyTorch builder uses) and wires
standard Keras layers into a functional graph. Every layer that holds weights is *named after the
PyTorch module it mirrors* (``blocks.2.4.dw_start.conv``, ``blocks.2.4.attn.key.norm``, ...), so the
weight transfer in ``keras_model`` is a name lookup, not a second description of the architecture.

Numerics follow the PyTorch blocks, not TF Model Garden (``mnv4_architecture.md`` section 7.2):

* padding is PyTorch's symmetric ``k // 2``: an explicit ``ZeroPadding2D`` + ``'valid'`` conv
  wherever it differs from TF ``'same'`` (every stride-2 conv; TF would pad bottom/right only);
* BatchNorm epsilon 1e-5; no conv biases; exact (erf) GELU;
* multi-query attention with one shared key/value head and heads-major channels.

This module imports TensorFlow/Keras; ``mnv4suite.reference_models`` never imports it eagerly.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from . import specs

BN_EPS = 1e-5  # PyTorch's default, which the timm checkpoints were trained with (Keras defaults to 1e-3)
_PACKAGE = "mnv4suite"


def padding_for(kernel: int, stride: int = 1) -> int:
    """Symmetric PyTorch padding per side (same formula as ``torch_blocks.get_padding``)."""
    return ((stride - 1) + (kernel - 1)) // 2


def _pad_then(x, kernel: int, stride: int, name: str) -> tuple[object, str]:
    """Return (input, keras padding mode) that reproduces PyTorch's symmetric padding.

    For stride 1 and an odd kernel, TF 'same' pads (k-1)/2 on every side: identical, and one op
    fewer in the exported graph. Otherwise pad explicitly and run the conv 'valid'.
    """
    pad = padding_for(kernel, stride)
    if pad == 0:
        return x, "valid"
    if stride == 1 and 2 * pad == kernel - 1:
        return x, "same"
    return layers.ZeroPadding2D(pad, name=f"{name}.pad")(x), "valid"


def conv2d(x, filters: int, kernel: int, stride: int = 1, *, name: str, bias: bool = False):
    """Dense k x k conv named ``name`` (PyTorch ``nn.Conv2d`` with groups=1)."""
    x, mode = _pad_then(x, kernel, stride, name)
    return layers.Conv2D(filters, kernel, stride, padding=mode, use_bias=bias, name=name)(x)


def depthwise(x, kernel: int, stride: int = 1, *, name: str):
    """Depthwise k x k conv, one filter per channel (PyTorch ``groups=channels``), no bias."""
    x, mode = _pad_then(x, kernel, stride, name)
    return layers.DepthwiseConv2D(kernel, stride, padding=mode, use_bias=False, name=name)(x)


def batch_norm(x, *, name: str):
    return layers.BatchNormalization(epsilon=BN_EPS, name=name)(x)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def gelu_exact(x):
    """erf GELU, as torch ``nn.GELU()``; spelled out so a change of Keras' default cannot slip in."""
    return keras.activations.gelu(x, approximate=False)


def activation(x, act: str | None, *, name: str):
    """Activation by spec name (``specs.ACTIVATIONS``); None is the identity."""
    if act is None:
        return x
    if act == "relu":
        return layers.ReLU(name=name)(x)
    if act == "relu6":
        return layers.ReLU(max_value=6.0, name=name)(x)
    if act == "gelu":
        return layers.Activation(gelu_exact, name=name)(x)
    if act == "hard_swish":  # Keras 3 hard_silu = x * relu6(x + 3) / 6 = torch Hardswish
        return layers.Activation(keras.activations.hard_silu, name=name)(x)
    if act == "silu":
        return layers.Activation(keras.activations.silu, name=name)(x)
    raise ValueError(f"unknown activation '{act}' (known: {', '.join(specs.ACTIVATIONS)})")


def conv_norm_act(x, filters: int, kernel: int, stride: int = 1, *, name: str, act: str | None = None,
                  depthwise_conv: bool = False):
    """conv -> BN -> act, with layers ``{name}.conv`` / ``{name}.bn`` (timm ``ConvNormAct``)."""
    if depthwise_conv:
        x = depthwise(x, kernel, stride, name=f"{name}.conv")
    else:
        x = conv2d(x, filters, kernel, stride, name=f"{name}.conv")
    x = batch_norm(x, name=f"{name}.bn")
    return activation(x, act, name=f"{name}.act")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LayerScale(layers.Layer):
    """Per-channel scale of a residual branch; weight ``gamma`` of shape [C] (torch ``LayerScale2d``)."""

    def __init__(self, init_value: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.init_value = init_value

    def build(self, input_shape):
        self.gamma = self.add_weight(
            name="gamma", shape=(input_shape[-1],), initializer=keras.initializers.Constant(self.init_value)
        )

    def call(self, x):
        return x * self.gamma

    def get_config(self):
        return {**super().get_config(), "init_value": self.init_value}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MultiQueryAttend(layers.Layer):
    """softmax(q k^T / sqrt(dk)) v for ``heads`` query heads sharing one key and one value head.

    Inputs are NHWC maps: q [B, H, W, heads*dk] (channel = head*dk + d, heads-major as in torch),
    k [B, Hk, Wk, dk], v [B, Hk, Wk, dv]; output [B, H, W, heads*dv] with channel = head*dv + d.
    In NHWC the heads-major split needs no transpose: q reshaped to [B, H*W*heads, dk] has row
    (pixel, head), and the attention result reshaped back to [B, H, W, heads*dv] restores the
    channel order the output projection was trained on. Parameter-free, like the torch module.
    """

    def __init__(self, heads: int, key_dim: int, value_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim

    def call(self, q, k, v):
        h, w = _spatial(q)
        q = ops.reshape(q, (-1, h * w * self.heads, self.key_dim)) * (self.key_dim**-0.5)
        k = ops.reshape(k, (-1, _size(k), self.key_dim))  # [B, M, dk]
        v = ops.reshape(v, (-1, _size(v), self.value_dim))  # [B, M, dv]
        scores = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 2, 1))), axis=-1)  # [B, N*heads, M]
        out = ops.matmul(scores, v)  # [B, N*heads, dv]
        return ops.reshape(out, (-1, h, w, self.heads * self.value_dim))

    def compute_output_shape(self, q_shape, k_shape=None, v_shape=None):
        return (*q_shape[:3], self.heads * self.value_dim)

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "key_dim": self.key_dim, "value_dim": self.value_dim}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FlattenPooled(layers.Layer):
    """[B, 1, 1, C] -> [B, C] with a constant target shape.

    ``keras.layers.Flatten`` reads the batch size at run time, which turns into SHAPE /
    STRIDED_SLICE / PACK ops in TFLite and splits the graph between delegates.
    """

    def call(self, x):
        return ops.reshape(x, (-1, x.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def _spatial(t):
    """(H, W) of an NHWC tensor: static when known (keeps exported graphs shape-static), else dynamic."""
    h, w = t.shape[1], t.shape[2]
    if h is None or w is None:
        h, w = ops.shape(t)[1], ops.shape(t)[2]
    return h, w


def _size(t):
    h, w = _spatial(t)
    return h * w


# --------------------------------------------------------------------------- blocks


def _residual(x, y, plan: specs.BlockPlan):
    """Layer scale (hybrids) on the branch, then the identity shortcut when the plan has one."""
    if plan.layer_scale is not None:
        y = LayerScale(plan.layer_scale, name=f"{plan.name}.layer_scale")(y)
    return layers.Add(name=f"{plan.name}.add")([x, y]) if plan.residual else y


def conv_bn_act_block(x, plan: specs.BlockPlan):
    """``ConvBnAct``: conv -> BN -> act (layers ``conv``, ``bn1``)."""
    y = conv2d(x, plan.out_chs, plan.spec.kernel, plan.stride, name=f"{plan.name}.conv")
    y = batch_norm(y, name=f"{plan.name}.bn1")
    return activation(y, plan.act, name=f"{plan.name}.act")


def fused_ib_block(x, plan: specs.BlockPlan):
    """``FusedIB``: dense k x k expand + BN + act, linear 1x1 projection + BN."""
    y = conv2d(x, plan.mid_chs, plan.spec.kernel, plan.stride, name=f"{plan.name}.conv_exp")
    y = batch_norm(y, name=f"{plan.name}.bn1")
    y = activation(y, plan.act, name=f"{plan.name}.act")
    y = conv2d(y, plan.out_chs, 1, name=f"{plan.name}.conv_pwl")
    y = batch_norm(y, name=f"{plan.name}.bn2")
    return layers.Add(name=f"{plan.name}.add")([x, y]) if plan.residual else y


def uib_block(x, plan: specs.BlockPlan):
    """``UIB``: [start DW + BN] -> 1x1 + BN + act -> [mid DW + BN + act] -> 1x1 + BN -> [scale] (+x)."""
    spec: specs.UIB = plan.spec
    y = x
    if spec.start_dw:
        stride = 1 if spec.mid_dw else plan.stride
        y = conv_norm_act(y, plan.in_chs, spec.start_dw, stride, name=f"{plan.name}.dw_start", depthwise_conv=True)
    y = conv_norm_act(y, plan.mid_chs, 1, name=f"{plan.name}.pw_exp", act=plan.act)
    if spec.mid_dw:
        y = conv_norm_act(y, plan.mid_chs, spec.mid_dw, plan.stride, name=f"{plan.name}.dw_mid", act=plan.act,
                          depthwise_conv=True)
    y = conv_norm_act(y, plan.out_chs, 1, name=f"{plan.name}.pw_proj")
    return _residual(x, y, plan)


def mqa_block(x, plan: specs.BlockPlan):
    """``MobileMQA``: x + layer_scale(MQA(BN(x))); K/V reduced by their own DW conv + BN if kv_stride > 1."""
    spec: specs.MobileMQA = plan.spec
    attn = f"{plan.name}.attn"
    y = batch_norm(x, name=f"{plan.name}.norm")
    q = conv2d(y, spec.heads * spec.key_dim, 1, name=f"{attn}.query.proj")
    kv = []
    for branch, dim in (("key", spec.key_dim), ("value", spec.v_dim)):
        t = y
        if spec.kv_stride > 1:
            t = depthwise(t, spec.kv_kernel, spec.kv_stride, name=f"{attn}.{branch}.down_conv")
            t = batch_norm(t, name=f"{attn}.{branch}.norm")
        kv.append(conv2d(t, dim, 1, name=f"{attn}.{branch}.proj"))
    o = MultiQueryAttend(spec.heads, spec.key_dim, spec.v_dim, name=f"{attn}.attend")(q, *kv)
    o = conv2d(o, plan.out_chs, 1, name=f"{attn}.output.proj")
    return _residual(x, o, plan)


#: spec type -> Keras block builder; a new block type in specs.py needs one entry here (as in torch_blocks).
BLOCKS = {
    specs.ConvBnAct: conv_bn_act_block,
    specs.FusedIB: fused_ib_block,
    specs.UIB: uib_block,
    specs.MobileMQA: mqa_block,
}


def build_block(x, plan: specs.BlockPlan):
    try:
        builder = BLOCKS[type(plan.spec)]
    except KeyError:
        raise NotImplementedError(f"no Keras block for {type(plan.spec).__name__}") from None
    return builder(x, plan)
