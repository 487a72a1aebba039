"""Parameter, MAC and per-layer byte counts: the inputs of a roofline latency model.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2). It counts convs,
linear layers and matmuls - including the two attention matmuls - and not BN, activations,
pooling, softmax or adds, which matches how the paper and the fact sheet count MACs.

One gap is closed here: on CPU, ``F.scaled_dot_product_attention`` dispatches to
``aten._scaled_dot_product_flash_attention_for_cpu``, which FlopCounterMode (torch 2.13) does not
know and would count as zero. A formula for it is supplied via ``custom_mapping``.

Per-layer rows (convs, linears, attention cores) carry MACs, weight bytes and activation bytes
(inputs + outputs) for a chosen bytes-per-element, e.g. 1 for int8 as in the paper's roofline.
``model_costs`` builds the model on the ``meta`` device: shapes only, no memory, no arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .torch_blocks import ScaledDotProductAttention


def count_params(model: nn.Module) -> int:
    """Parameter count (BN running statistics are buffers and excluded, as timm and the paper count)."""
    return sum(p.numel() for p in model.parameters())


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs (2 per multiply-add) of q @ k^T and attn @ v for [B, H, L, E] tensors."""
    *batch, len_q, d_qk = query_shape
    len_kv, d_v = key_shape[-2], value_shape[-1]
    b = 1
    for n in batch:
        b *= n
    return 2 * b * len_q * len_kv * (d_qk + d_v)


def _custom_mapping() -> dict:
    ops = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        ops[op] = _sdpa_flops
    return ops


@dataclass(frozen=True)
class LayerCost:
    """One compute layer of a forward pass at batch 1."""

    name: str  # module path, e.g. "blocks.2.4.attn.query.proj"
    op: str  # "conv", "dwconv", "linear" or "attention"
    macs: int
    weight_bytes: int
    activation_bytes: int  # inputs + outputs
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes

    @property
    def intensity(self) -> float:
        """MACs per byte moved (operational intensity, for the roofline)."""
        return self.macs / self.bytes if self.bytes else 0.0


@dataclass
class CostReport:
    resolution: int
    bytes_per_element: float
    params: int
    macs: int  # whole model, from FlopCounterMode
    layers: list[LayerCost] = field(default_factory=list)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def attention_macs(self) -> int:
        return sum(layer.macs for layer in self.layers if layer.op == "attention")


def _op_type(module: nn.Module) -> str | None:
    if isinstance(module, nn.Conv2d):
        return "dwconv" if module.groups > 1 and module.groups == module.in_channels else "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, ScaledDotProductAttention):
        return "attention"
    return None


def profile(
    model: nn.Module,
    resolution: int,
    bytes_per_element: float = 1,
    device: str | torch.device | None = None,
    in_chans: int = 3,
) -> CostReport:
    """Count MACs (total and per layer) for one ``in_chans`` x ``resolution`` x ``resolution`` input.

    ``device`` defaults to the model's; a model built on the meta device is counted from shapes alone.
    """
    if device is None:
        device = next(model.parameters()).device
    x = torch.zeros(1, in_chans, resolution, resolution, device=device)
    shapes: dict[str, tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]] = {}
    handles = []
    named = {}
    for name, module in model.named_modules():
        if _op_type(module) is None:
            continue
        named[name] = module

        def hook(mod, inputs, output, name=name):
            shapes[name] = (tuple(tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor)), tuple(output.shape))

        handles.append(module.register_forward_hook(hook))

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, depth=None, custom_mapping=_custom_mapping())
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    per_module = counter.get_flop_counts()
    root = type(model).__name__
    layers = []
    for name, module in named.items():
        if name not in shapes:
            continue  # not used in forward
        in_shapes, out_shape = shapes[name]
        flops = sum(per_module.get(f"{root}.{name}", {}).values())
        weights = sum(p.numel() for p in module.parameters(recurse=False))
        acts = sum(_numel(s) for s in in_shapes) + _numel(out_shape)
        layers.append(
            LayerCost(
                name=name,
                op=_op_type(module),
                macs=flops // 2,
                weight_bytes=int(weights * bytes_per_element),
                activation_bytes=int(acts * bytes_per_element),
                input_shapes=in_shapes,
                output_shape=out_shape,
            )
        )
    return CostReport(
        resolution=resolution,
        bytes_per_element=bytes_per_element,
        params=count_params(model),
        macs=counter.get_total_flops() // 2,
        layers=layers,
    )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def count_macs(model: nn.Module, resolution: int) -> int:
    """MACs of one forward pass at batch 1 (convs + linears + attention matmuls)."""
    return profile(model, resolution).macs


def model_costs(
    name: str,
    resolution: int | None = None,
    width_multiplier: float = 1.0,
    bytes_per_element: float = 1,
    num_classes: int = 1000,
) -> CostReport:
    """Costs of a named model at ``resolution`` (default: its own), computed on the meta device."""
    from . import specs
    from .mobilenetv4 import MobileNet

    model_def = specs.get_model_def(name)
    with torch.device("meta"):
        model = MobileNet(model_def, num_classes=num_classes, width_multiplier=width_multiplier)
    return profile(model, resolution or model_def.resolution, bytes_per_element, device="meta")
