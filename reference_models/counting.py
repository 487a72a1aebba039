"""Parameter, MAC and per-layer byte counts: the inputs of a roofline latency model.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2). It counts convs,
linear layers and matmuls - including the two attention matmuls - and not BN, activations,
pooling, softmax or adds, which matches how the paper and the fact sheet count MACs.

One gap is closed here: on CPU, ``F.scaled_dot_product_attention`` dispatches to
``aten._scaled_dot_product_flash_attention_for_cpu``, which FlopCounterMode (torch 2.13) does not
know and would count as zero. A formula for it is supplied via ``custom_mapping``.

Per-layer rows, in execution order (convs, linears, attention cores, and the element-wise ops runtimes
do not fuse: GELU, hard-swish, norms, and the residual adds and squeeze-excite multiplies model code
writes between modules) carry MACs, weight bytes and activation bytes (inputs + outputs) for a chosen
bytes-per-element, e.g. 1 for int8 as in the paper's roofline.
A module that runs more than once per forward pass (the RetinaNet head's convs, shared by five
levels) gives one row per run, ``name[i]``, each with that run's shapes and bytes.
``model_costs`` builds the model on the ``meta`` device: shapes only, no memory, no arithmetic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
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
    op: str  # "conv", "dwconv", "mdwconv" (channel multiplier), "gconv" (grouped), "linear", "attention",
    # ELEMENTWISE's, or "add" / "mul" (two activations, _BinaryOps)
    macs: int
    weight_bytes: int
    activation_bytes: int  # inputs + outputs
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    kernel: int = 1  # a conv's (first) kernel size

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


#: Element-wise modules no runtime fuses into the conv before them, so they move their tensors
#: through memory on their own (ReLU/ReLU6 are fused; BatchNorm is folded): rows with no MACs.
#: The paper's roofline leaves them out (``roofline.PAPER_OPS``); a cost model may time them.
ELEMENTWISE = {nn.GELU: "gelu", nn.Hardswish: "hardswish", nn.LayerNorm: "layernorm", nn.GroupNorm: "groupnorm"}


def _op_type(module: nn.Module) -> str | None:
    """The layer's op class; a module may name its own with a ``counted_as`` attribute (e.g. a linear
    attention core written as plain matmuls says "attention")."""
    counted_as = getattr(module, "counted_as", None)
    if counted_as is not None:
        return counted_as
    if isinstance(module, nn.Conv2d):
        if module.groups == 1:
            return "conv"
        # depthwise: one channel in and out per group; with a channel multiplier (several out per group) or
        # wider groups, runtimes often take a slower general kernel
        if module.groups == module.in_channels:
            return "dwconv" if module.out_channels == module.in_channels else "mdwconv"
        return "gconv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, ScaledDotProductAttention):
        return "attention"
    return ELEMENTWISE.get(type(module))


class _BinaryOps(TorchDispatchMode):
    """Records the element-wise adds and multiplies of two activations that model code writes outside
    any counted module: residual adds and squeeze-excite's rescaling. Runtimes run them as ops of their
    own (ADD, MUL) that read both tensors and write one. A multiply by a parameter (a layer scale) or
    a constant is folded into the conv before it by every converter, so it is not one of them."""

    def __init__(self, constants: set[int]):
        super().__init__()
        self.constants = constants
        self.inside = 0  # how many counted modules are running: their internals are their own row's
        self.seq = 0  # ops dispatched so far: the execution order of every row
        self.running: list[str] = []  # names of the modules running, outermost first
        self.calls: list[tuple[int, str, str, tuple[tuple[int, ...], ...], tuple[int, ...]]] = []  # seq, name, op

    def _is_activation(self, t) -> bool:
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            return False
        while t is not None:
            if id(t) in self.constants:
                return False
            t = t._base
        return True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        op = _BINARY.get(func)
        if op and not self.inside and all(self._is_activation(a) for a in args[:2]) and out.numel() > 1:
            where = self.running[-1] if self.running else ""  # the module whose forward code does it ("": the root)
            name = f"{where}.{op}" if where else op
            self.calls.append((self.seq, name, op, (tuple(args[0].shape), tuple(args[1].shape)), tuple(out.shape)))
        self.seq += 1
        return out


_BINARY = {torch.ops.aten.add.Tensor: "add", torch.ops.aten.add_.Tensor: "add",
           torch.ops.aten.mul.Tensor: "mul", torch.ops.aten.mul_.Tensor: "mul"}


def profile(
    model: nn.Module,
    resolution: int,
    bytes_per_element: float = 1,
    device: str | torch.device | None = None,
    in_chans: int = 3,
) -> CostReport:
    """Count MACs (total and per layer) for one ``in_chans`` x ``resolution`` x ``resolution`` input.

    ``device`` defaults to the model's; a model built on the meta device is counted from shapes alone.
    Rows are in execution order (a delegate's partitioning follows it).
    """
    if device is None:
        device = next(model.parameters()).device
    x = torch.zeros(1, in_chans, resolution, resolution, device=device)
    binary = _BinaryOps({id(t) for t in (*model.parameters(), *model.buffers())})
    # every call of a module: a layer shared by several inputs (a detector head's convs) runs once per level
    calls: dict[str, list[tuple[int, tuple[tuple[int, ...], ...], tuple[int, ...]]]] = {}
    handles = []
    named = {}
    for name, module in model.named_modules():
        counted = _op_type(module) is not None
        if counted:
            named[name] = module

        def enter(mod, inputs, name=name, counted=counted):
            binary.running.append(name)
            binary.inside += counted

        def leave(mod, inputs, output, name=name, counted=counted):
            binary.running.pop()
            binary.inside -= counted
            if counted:
                in_shapes = tuple(tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor))
                calls.setdefault(name, []).append((binary.seq, in_shapes, tuple(output.shape)))

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, depth=None, custom_mapping=_custom_mapping())
    try:
        with torch.no_grad(), counter, binary:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    per_module = counter.get_flop_counts()
    root = type(model).__name__
    rows: list[tuple[int, LayerCost]] = []
    for name, module in named.items():
        if name not in calls:
            continue  # not used in forward
        macs = sum(per_module.get(f"{root}.{name}", {}).values()) // 2  # all calls together
        weights = sum(p.numel() for p in module.parameters(recurse=False))
        # a module called n times gives n rows, "name[i]", its MACs split by output size (exact for convs)
        outputs = [_numel(out_shape) for _, _, out_shape in calls[name]]
        split = _split(macs, outputs)
        for i, ((seq, in_shapes, out_shape), call_macs) in enumerate(zip(calls[name], split)):
            acts = sum(_numel(s) for s in in_shapes) + _numel(out_shape)
            rows.append((seq, LayerCost(
                name=name if len(split) == 1 else f"{name}[{i}]",
                op=_op_type(module),
                macs=call_macs,
                weight_bytes=int(weights * bytes_per_element),
                activation_bytes=int(acts * bytes_per_element),
                input_shapes=in_shapes,
                output_shape=out_shape,
                kernel=module.kernel_size[0] if isinstance(module, nn.Conv2d) else 1,
            )))
    repeats = Counter(name for _, name, _, _, _ in binary.calls)
    nth: Counter = Counter()
    for seq, name, op, in_shapes, out_shape in binary.calls:
        acts = sum(_numel(s) for s in in_shapes) + _numel(out_shape)
        nth[name] += 1
        row_name = name if repeats[name] == 1 else f"{name}[{nth[name] - 1}]"
        rows.append((seq, LayerCost(row_name, op, 0, 0, int(acts * bytes_per_element), in_shapes, out_shape)))
    return CostReport(
        resolution=resolution,
        bytes_per_element=bytes_per_element,
        params=count_params(model),
        macs=counter.get_total_flops() // 2,
        layers=[row for _, row in sorted(rows, key=lambda r: r[0])],
    )


def _split(total: int, weights: list[int]) -> list[int]:
    """``total`` in integer parts proportional to ``weights``, summing to ``total`` exactly."""
    if len(weights) == 1:
        return [total]
    parts = [total * w // sum(weights) for w in weights]
    parts[0] += total - sum(parts)
    return parts


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
    """Costs of a named model at ``resolution`` (default: its own), computed on the meta device.

    A detector id (``retinanet-mnv4-conv-m``) is counted as the detector, with its own class count
    (``num_classes`` applies to classifiers) and no width multiplier.
    """
    from . import detectors, specs
    from .mobilenetv4 import MobileNet

    if detectors.is_detector(name):
        if width_multiplier != 1.0:
            raise ValueError(f"{name}: detectors have no width multiplier")
        return detector_costs(name, resolution, bytes_per_element).report
    model_def = specs.get_model_def(name)
    with torch.device("meta"):
        model = MobileNet(model_def, num_classes=num_classes, width_multiplier=width_multiplier)
    return profile(model, resolution or model_def.resolution, bytes_per_element, device="meta")


# --------------------------------------------------------------------------- detectors

#: The parts of a RetinaNet detector, by module prefix.
DETECTOR_PARTS = ("backbone", "fpn", "head")


@dataclass
class DetectorCosts:
    """A detector's ``CostReport`` and its split into backbone / FPN / heads: {part: (params, macs)}."""

    id: str
    report: CostReport
    parts: dict[str, tuple[int, int]]
    bn_channels: int  # BatchNorm channels (each holds a moving mean and variance besides gamma and beta)


def detector_costs(
    name: str, resolution: int | None = None, bytes_per_element: float = 1, num_classes: int | None = None
) -> DetectorCosts:
    """Params and MACs of a RetinaNet-MNv4 detector, whole and per part, from shapes on the meta device."""
    from . import detectors
    from .retinanet import RetinaNet

    det = detectors.get_detector_def(name)
    with torch.device("meta"):
        model = RetinaNet(det, num_classes=num_classes)
    report = profile(model, resolution or det.resolution, bytes_per_element, device="meta")
    parts = {}
    for part in DETECTOR_PARTS:
        params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(f"{part}."))
        macs = sum(layer.macs for layer in report.layers if layer.name.startswith(f"{part}."))
        parts[part] = (params, macs)
    if sum(p for p, _ in parts.values()) != report.params or sum(m for _, m in parts.values()) != report.macs:
        raise AssertionError(f"{det.id}: the per-part costs do not add up to the model's")  # a layer outside the parts
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    return DetectorCosts(det.id, report, parts, bn_channels)


@dataclass(frozen=True)
class Table7Convention:
    """A detector's counts as the MobileNetV4 paper's Table 7 reports them (see ``detectors.py``).

    Table 7's params are a Keras ``count_params()`` of the TF Model Garden model: trainable and
    non-trainable weights of every layer it builds, whether the output uses it or not, with a
    91-class predictor. ``items`` lists what that adds to this implementation's count.
    """

    id: str
    params: int  # this implementation's
    macs: int
    items: dict[str, tuple[int, int]]  # what Model Garden's count adds: name -> (params, macs)

    @property
    def table7_params(self) -> int:
        return self.params + sum(p for p, _ in self.items.values())

    @property
    def table7_macs(self) -> int:
        return self.macs + sum(m for _, m in self.items.values())


def table7_convention(name: str) -> Table7Convention:
    """This detector counted the way Table 7 counts it (reproduces 9.79M / 11.15M to the digit)."""
    from . import detectors, specs

    det = detectors.get_detector_def(name)
    costs = detector_costs(det.id)
    plan = specs.plan(det.backbone_def())
    levels = tuple(lvl for lvl in det.levels if lvl <= 5)
    taps = detectors.feature_taps(plan, levels)
    # Model Garden builds the classifier's tail (the 960 conv after the deepest tap, pooling, the 1280 conv)
    # for its unused endpoint '6': conv weights and BN gamma/beta, at the deepest tap's spatial size
    tail = [b for b in plan.blocks if b.stage > taps[-1].stage]
    if not all(isinstance(b.spec, specs.ConvBnAct) for b in tail):
        raise ValueError(f"{det.id}: Table 7's convention is worked out for a backbone tail of convs (MNv4's 960)")
    h, w = detectors.level_shape(det.resolution, levels[-1])
    tail_params = sum(b.in_chs * b.out_chs * b.spec.kernel**2 + 2 * b.out_chs for b in tail)
    tail_macs = sum(b.in_chs * b.out_chs * b.spec.kernel**2 * h * w for b in tail)
    head_in, head_out = plan.num_features, plan.head_chs
    tail_params += head_in * head_out + 2 * head_out  # 1x1 on the pooled 1 x 1 map
    tail_macs += head_in * head_out
    tail_bn = sum(b.out_chs for b in tail) + head_out
    extra_classes = detectors.MODEL_GARDEN_COCO_CLASSES - det.num_classes
    anchors = det.anchors_per_location
    shapes = {lvl: detectors.level_shape(det.resolution, lvl) for lvl in det.levels}
    locations = sum(a * b for a, b in shapes.values())
    items = {
        "unused backbone tail (960 conv, 1280 head conv, their BN)": (tail_params, tail_macs),
        "BatchNorm moving mean and variance": (2 * (costs.bn_channels + tail_bn), 0),
        f"{extra_classes} more classes (Model Garden predicts 91)": (
            extra_classes * anchors * (det.head_channels + 1),
            extra_classes * anchors * det.head_channels * locations,
        ),
        "lateral 1x1 depthwise scales (SeparableConv2D with a 1x1 kernel)": (
            sum(t.out_chs for t in taps),
            sum(t.out_chs * shapes[lvl][0] * shapes[lvl][1] for t, lvl in zip(taps, levels)),
        ),
    }
    return Table7Convention(det.id, costs.report.params, costs.report.macs, items)
