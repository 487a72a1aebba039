"""`mnv4suite info MODEL`: a model's size and its per-layer cost table.

The per-layer rows (MACs, weight bytes, activation bytes) are the inputs of the roofline model.
"""

from __future__ import annotations

from tabulate import tabulate

from mnv4suite.api import ModelSpec


def render_info(spec: ModelSpec, resolution: int | None = None, bytes_per_element: float = 1.0) -> str:
    import torch

    from mnv4suite.reference_models.counting import profile

    resolution = resolution or spec.resolution
    torch.manual_seed(0)
    report = profile(spec.build(), resolution, bytes_per_element)
    published = spec.published or {}
    lines = [
        f"{spec.id} ({spec.family or 'model'}, {spec.kind}) at {resolution}x{resolution}",
        f"  params          {report.params:,}",
        f"  MACs            {report.macs:,} ({report.gmacs:.3f} G; attention {report.attention_macs / 1e9:.3f} G)",
        f"  bytes/element   {bytes_per_element:g} (weights and activations)",
    ]
    if published:
        shown = ", ".join(f"{k} {v}" for k, v in published.items() if k != "source")
        lines.append(f"  published       {shown}  [{published.get('source', 'source not given')}]")
    if spec.aliases:
        lines.append(f"  aliases         {', '.join(spec.aliases)}")
    rows = [
        [layer.name, layer.op, f"{layer.macs / 1e6:.2f}", f"{layer.weight_bytes / 1024:.1f}",
         f"{layer.activation_bytes / 1024:.1f}", f"{layer.intensity:.1f}"]
        for layer in report.layers
    ]
    table = tabulate(rows, ["layer", "op", "MMACs", "weights KiB", "activations KiB", "MACs/byte"], disable_numparse=True)
    return "\n".join(lines) + "\n\n" + table
