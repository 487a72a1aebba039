"""Inference-time rewrites of a PyTorch module: BatchNorm folding and channels-last layout.

Folding replaces every BatchNorm2d that reads the output of a Conv2d (and nothing else reads that
output) by an adjusted conv: ``w' = w * g / sqrt(var + eps)``, ``b' = (b - mean) * g / sqrt(var + eps)
+ beta``. The pairs are found on a ``torch.fx`` trace of the module, not by module names, so any
model works: a model fx cannot trace is left unfolded, and the report says so. The rewrite is
applied to a deep copy of the original module (same class, same names; folded BNs become
``nn.Identity``), never to the caller's module.

BatchNorms that follow something other than a conv (the pre-norm of MNv4's Mobile MQA blocks,
which reads a residual sum) stay as they are: folding them into the *next* conv is exact only
without zero padding, and the key/value down-sampling convs pad.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


@dataclass
class FoldReport:
    """What ``fold_batchnorm`` did."""

    folded: list[tuple[str, str]] = field(default_factory=list)  # (conv, bn) qualified names
    kept: list[str] = field(default_factory=list)  # BatchNorms left in place (no conv before them)
    error: str | None = None  # why nothing was folded, when tracing failed

    def as_dict(self) -> dict:
        return {"bn_folded": len(self.folded), "bn_kept": len(self.kept), "bn_kept_names": self.kept[:16],
                **({"bn_fold_error": self.error} if self.error else {})}


def _get(module: nn.Module, name: str) -> nn.Module:
    return module.get_submodule(name)


def _set(module: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    setattr(parent, child, new)


def find_conv_bn_pairs(module: nn.Module) -> tuple[list[tuple[str, str]], list[str]]:
    """(conv, bn) pairs where the BN is the conv's only reader, and the BNs left unpaired.

    Raises whatever ``torch.fx`` raises on a module it cannot trace.
    """
    graph = fx.Tracer().trace(module)
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs, kept = [], []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(_get(module, node.target), nn.BatchNorm2d):
            continue
        source = node.args[0] if node.args else None
        ok = (
            isinstance(source, fx.Node)
            and source.op == "call_module"
            and isinstance(_get(module, source.target), nn.Conv2d)
            and len(source.users) == 1  # nothing else reads the un-normalised conv output
            and calls[source.target] == 1 and calls[node.target] == 1  # neither module is shared
            and _get(module, node.target).track_running_stats
        )
        if ok:
            pairs.append((source.target, node.target))
        else:
            kept.append(node.target)
    return pairs, kept


def fold_batchnorm(module: nn.Module) -> tuple[nn.Module, FoldReport]:
    """An eval-mode copy of ``module`` with every conv -> BN pair folded into the conv."""
    folded = copy.deepcopy(module).eval()
    report = FoldReport()
    try:
        pairs, report.kept = find_conv_bn_pairs(folded)
    except Exception as exc:  # noqa: BLE001 - an untraceable model is still runnable, just unfolded
        report.error = f"torch.fx could not trace {type(module).__name__}: {type(exc).__name__}: {exc}"
        return folded, report
    with torch.no_grad():
        for conv_name, bn_name in pairs:
            _set(folded, conv_name, fuse_conv_bn_eval(_get(folded, conv_name), _get(folded, bn_name)))
            _set(folded, bn_name, nn.Identity())
    report.folded = pairs
    return folded, report


def channels_last(module: nn.Module) -> nn.Module:
    """Convert 4-d parameters and buffers to channels-last (NHWC strides), in place."""
    return module.to(memory_format=torch.channels_last)


def optimize_for_inference(module: nn.Module, layout: str = "channels_last") -> tuple[nn.Module, dict]:
    """Folded (and by default channels-last) eval copy of ``module``, with a record of what changed."""
    if layout not in ("channels_last", "contiguous"):
        raise ValueError(f"layout must be 'channels_last' or 'contiguous', got '{layout}'")
    folded, report = fold_batchnorm(module)
    if layout == "channels_last":
        channels_last(folded)
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded, {**report.as_dict(), "memory_format": layout}
