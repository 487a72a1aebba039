"""Report plots with matplotlib, drawn on bare ``Figure`` objects: no pyplot, so no display and no
global figure state, safe in a server or a test.

Public API (also used by the leaderboard):

* :func:`pareto_figure` - accuracy vs latency of a :class:`~mnv4suite.reports.pareto.Group`, front
  marked; measured latency filled, estimated hollow, published accuracy square, each in the legend.
* :func:`to_svg` / :func:`to_png` - a figure as bytes (reproducible SVG: fixed ids, no date).
* :func:`sweep_figure`, :func:`layers_figure`, :func:`paper_latency_figure` - the roofline and paper
  comparison plots.

matplotlib is imported inside the functions: ``mnv4suite list`` must not pay for it.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .pareto import Group

#: Marker fill per latency kind and marker shape per accuracy kind: the visible difference between
#: a measurement, an estimate and a published figure.
LATENCY_STYLE = {"measured": "full", "estimated": "none"}
ACCURACY_MARKER = {"measured": "o", "published": "s"}
FRONT_COLOR = "#c0392b"
POINT_COLOR = "#2c6fbb"


def plain(text: Any) -> str:
    """Text drawn literally: matplotlib would read ``$...$`` in a model name as mathtext."""
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


def new_figure(width: float = 7.0, height: float = 4.5) -> "Figure":
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig: "Figure", salt: str = "mnv4suite") -> bytes:
    """SVG bytes with text kept as text and ids fixed by ``salt`` (give each figure of a page its own)."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "mnv4suite", "Type": None, "Format": None})
    return buf.getvalue()


def to_png(fig: "Figure", dpi: int = 120) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": "mnv4suite"})
    return buf.getvalue()


def pareto_figure(group: "Group", title: str | None = None) -> "Figure":
    """Accuracy vs latency of one group: the front joined by a step line, every point labelled."""
    from matplotlib.lines import Line2D

    fig = new_figure()
    ax = fig.add_subplot()
    placed = [p for p in group.points if p.placed]
    for p in placed:
        ax.plot(
            [p.latency_ms], [p.accuracy],
            marker=ACCURACY_MARKER.get(p.accuracy_kind, "o"),
            fillstyle=LATENCY_STYLE.get(p.latency_kind, "full"),
            markersize=9 if p.on_front else 7,
            color=FRONT_COLOR if p.on_front else POINT_COLOR,
            markeredgewidth=1.6,
            linestyle="none",
        )
        name = plain(p.model + ("~" if p.latency_kind == "estimated" else ""))
        if p.status == "partial":
            name += " (partial)"
        ax.annotate(name, (p.latency_ms, p.accuracy), textcoords="offset points", xytext=(6, 4), fontsize=8)
    on_front = sorted((p for p in placed if p.on_front), key=lambda p: p.latency_ms)
    if len(on_front) > 1:
        ax.step([p.latency_ms for p in on_front], [p.accuracy for p in on_front], where="post",
                color=FRONT_COLOR, linewidth=1, alpha=0.6)
    latencies = [p.latency_ms for p in placed]
    if latencies and min(latencies) > 0 and max(latencies) / min(latencies) > 20:
        ax.set_xscale("log")
    ax.margins(x=0.15, y=0.08)  # room for the labels right of the points
    ax.set_xlabel(plain("latency, ms (" + ", ".join(group.latency_metrics) + ")"))
    ax.set_ylabel(plain(f"{group.accuracy_metric} %"))
    ax.set_title(plain(title or group.title))
    ax.grid(True, alpha=0.3)
    kinds = {(p.latency_kind, p.accuracy_kind) for p in placed}
    handles = [
        Line2D([], [], marker="o", fillstyle="full", color="gray", linestyle="none", label="latency measured (LoadGen)"),
        Line2D([], [], marker="o", fillstyle="none", color="gray", linestyle="none", label="latency estimated (roofline) ~"),
        Line2D([], [], marker="o", color="gray", linestyle="none", label="accuracy measured"),
        Line2D([], [], marker="s", color="gray", linestyle="none", label="accuracy published (paper)"),
        Line2D([], [], marker="o", color=FRONT_COLOR, linestyle="-", label="Pareto front"),
    ]
    if not any(a == "published" for _, a in kinds):
        handles.pop(3)
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    if not placed:
        ax.text(0.5, 0.5, "no result has both a latency and an accuracy", ha="center", va="center",
                transform=ax.transAxes)
    return fig


def sweep_figure(ridge_points: Sequence[float], curves: Mapping[str, Sequence[float]],
                 markers: Mapping[str, float] | None = None, normalised: bool = True) -> "Figure":
    """Figure 2 style: each model's roofline latency over the ridge point (MAC-equivalents, or normalised)."""
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    for name, values in curves.items():
        style = "-" if name.startswith("mnv4") else "--"
        ax.plot(ridge_points, values, style, linewidth=1.5 if style == "-" else 1.0, label=plain(name))
    for device, ridge in (markers or {}).items():
        ax.axvline(ridge, color="gray", linewidth=0.6, linestyle=":")
        ax.text(ridge, 1.0, plain(device), rotation=90, fontsize=6, va="top", ha="right",
                transform=ax.get_xaxis_transform())
    ax.set_yscale("log")
    ax.set_xlabel("ridge point, MACs/byte (int8, 1 byte per element)")
    ax.set_ylabel("latency x peak, G MAC-equivalents" if not normalised else "latency relative to the MAC count")
    ax.set_title("Roofline latency over the ridge point (paper Figure 2)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    return fig


def front_panels_figure(panels: Sequence[Mapping[str, Any]]) -> "Figure":
    """Accuracy vs normalised roofline latency at a few ridge points, the front at each joined."""
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(4.0 * cols, 3.3 * rows)
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        pts = panel["points"]
        for p in pts:
            mnv4 = p["model"].startswith("mnv4")
            ax.plot([p["relative_latency"]], [p["top1"]], marker="o" if mnv4 else "^", linestyle="none",
                    color=FRONT_COLOR if p["on_front"] else POINT_COLOR, fillstyle="full" if mnv4 else "none")
            ax.annotate(plain(p["model"]), (p["relative_latency"], p["top1"]), fontsize=6,
                        textcoords="offset points", xytext=(3, 2))
        line = sorted((p for p in pts if p["on_front"]), key=lambda p: p["relative_latency"])
        ax.step([p["relative_latency"] for p in line], [p["top1"] for p in line], where="post",
                color=FRONT_COLOR, linewidth=0.8, alpha=0.6)
        ax.set_xscale("log")
        ax.set_title(plain(f"ridge point {panel['ridge_point']:g}" + (f" ({panel['label']})" if panel.get("label") else "")),
                     fontsize=9)
        ax.set_xlabel("latency / fastest model's", fontsize=8)
        ax.set_ylabel("published top-1 %", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3, which="both")
    return fig


def layers_figure(model: str, series: Mapping[str, Sequence[float]], memory_bound: Mapping[str, Sequence[bool]]) -> "Figure":
    """Figure 3 style: each layer's share of the model's roofline latency along the network, per ridge point."""
    fig = new_figure(8.0, 4.2)
    ax = fig.add_subplot()
    for label, values in series.items():
        total = sum(values) or 1.0
        share = [100.0 * v / total for v in values]
        x = list(range(len(values)))
        line, = ax.plot(x, share, linewidth=1.2, label=plain(label))
        bound = memory_bound.get(label, [])
        mx = [i for i, b in zip(x, bound) if b]
        ax.plot(mx, [share[i] for i in mx], linestyle="none", marker=".", color=line.get_color(), markersize=4)
    ax.set_xlabel("layer index along the network (dots: memory-bound at that ridge point)")
    ax.set_ylabel("share of the model's latency, %")
    ax.set_title(plain(f"{model}: per-layer roofline cost (paper Figure 3)"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def paper_latency_figure(rows: Sequence[Mapping[str, Any]]) -> "Figure":
    """Per device: our roofline estimate against the paper's measured latency, log-log, with y = x."""
    devices = list(dict.fromkeys(r["device"] for r in rows))
    cols = min(4, max(1, len(devices)))
    nrows = math.ceil(len(devices) / cols) or 1
    fig = new_figure(3.3 * cols, 3.1 * nrows)
    for i, device in enumerate(devices):
        ax = fig.add_subplot(nrows, cols, i + 1)
        mine = [r for r in rows if r["device"] == device]
        xs = [r["paper_ms"] for r in mine]
        ys = [r["estimated_ms"] for r in mine]
        ax.plot(xs, ys, "o", fillstyle="none", color=POINT_COLOR)
        lo, hi = min(xs + ys), max(xs + ys)
        ax.plot([lo, hi], [lo, hi], color="gray", linewidth=0.6, linestyle=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(plain(device), fontsize=9)
        ax.set_xlabel("paper, measured ms", fontsize=7)
        ax.set_ylabel("roofline, estimated ms", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(True, alpha=0.3, which="both")
    return fig
