"""Report plots with matplotlib, drawn on bare ``Figure`` objects: no pyplot, so no display and no
global figure state, safe in a server or a test.

Public API (also used by the leaderboard):

* :func:`pareto_figure` - accuracy vs latency of a :class:`~mnv4suite.reports.pareto.Group`: a colour
  per backend, measured latency filled, estimated hollow, published accuracy square (never in a front),
  the measured front joined, labels placed clear of each other (adjustText), the legend outside.
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

    from .pareto import Group, Point

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


#: One colour per backend, in the order the backends first appear (matplotlib's tab10, then tab20).
def backend_colors(backends: Sequence[str]) -> dict[str, str]:
    from matplotlib import colormaps

    palette = [colormaps["tab10"](i) for i in range(10)] + [colormaps["tab20"](i) for i in range(1, 20, 2)]
    return {b: palette[i % len(palette)] for i, b in enumerate(dict.fromkeys(backends))}


def readable_log_axis(axis) -> None:
    """Log ticks at 1, 2, 5 x 10^k written as plain numbers ("0.5", "2", "20"), unlabelled minor ticks:
    matplotlib's default labels every minor tick as "2x10^0 3x10^0 ..." on a short axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def place_labels(ax, texts: list, points: Sequence[tuple[float, float]]) -> None:
    """Move labels off each other and off the points (adjustText), with a thin leader line where one moved."""
    if not texts:
        return
    from adjustText import adjust_text

    xs, ys = zip(*points)
    adjust_text(texts, x=list(xs), y=list(ys), ax=ax, expand=(1.2, 1.4), ensure_inside_axes=True,
                arrowprops={"arrowstyle": "-", "color": "gray", "lw": 0.5})


def pareto_figure(group: "Group", title: str | None = None) -> "Figure":
    """Accuracy vs latency of one group: a colour per backend, the measured front joined by a step line,
    every point labelled with its model (labels placed clear of each other), the legend outside the axes.
    Points placed by the paper's published accuracy are squares, drawn fainter and never in a front."""
    from matplotlib.lines import Line2D

    fig = new_figure(8.5, 4.8)
    ax = fig.add_subplot()
    placed = [p for p in group.points if p.placed]
    colors = backend_colors([p.backend for p in placed])
    for p in placed:
        published = p.accuracy_kind == "published"
        ax.plot(
            [p.latency_ms], [p.accuracy],
            marker=ACCURACY_MARKER.get(p.accuracy_kind, "o"),
            fillstyle=LATENCY_STYLE.get(p.latency_kind, "full"),
            markersize=9 if p.on_front else 7,
            color=colors[p.backend],
            markeredgecolor="black" if p.on_front else colors[p.backend],
            markeredgewidth=1.6,
            alpha=0.55 if published else 1.0,
            linestyle="none",
        )
    # one label per model and accuracy, at its fastest point: the backends of a model share its accuracy
    # (always so for a published one) and sit on one horizontal line, told apart by colour
    labelled: dict[tuple[str, float, str], "Point"] = {}
    for p in sorted(placed, key=lambda p: p.latency_ms):
        suffix = ("~" if p.latency_kind == "estimated" else "") + (" (partial)" if p.status == "partial" else "")
        labelled.setdefault((p.model, p.accuracy, suffix), p)
    texts = [ax.text(p.latency_ms, p.accuracy, plain(model + suffix), fontsize=7, color="#333333")
             for (model, _, suffix), p in labelled.items()]
    on_front = sorted((p for p in placed if p.on_front), key=lambda p: p.latency_ms)
    if len(on_front) > 1:
        ax.step([p.latency_ms for p in on_front], [p.accuracy for p in on_front], where="post",
                color="black", linewidth=1, alpha=0.5)
    latencies = [p.latency_ms for p in placed]
    if latencies and min(latencies) > 0 and max(latencies) / min(latencies) > 20:
        ax.set_xscale("log")
        readable_log_axis(ax.xaxis)
    ax.margins(x=0.08, y=0.1)
    ax.set_xlabel(plain("latency, ms (" + ", ".join(group.latency_metrics) + ")"))
    ax.set_ylabel(plain(f"{group.accuracy_metric} %"))
    ax.set_title(plain(title or group.title))
    ax.grid(True, alpha=0.3)
    place_labels(ax, texts, [(p.latency_ms, p.accuracy) for p in placed])  # clear of every point, labelled or not
    kinds = {(p.latency_kind, p.accuracy_kind) for p in placed}
    handles = [Line2D([], [], marker="o", color=c, linestyle="none", label=plain(b)) for b, c in colors.items()]
    handles += [
        Line2D([], [], marker="o", fillstyle="full", color="gray", linestyle="none", label="latency measured (LoadGen)"),
        Line2D([], [], marker="o", fillstyle="none", color="gray", linestyle="none", label="latency estimated (roofline) ~"),
    ]
    if any(a == "published" for _, a in kinds):
        handles.append(Line2D([], [], marker="s", color="gray", alpha=0.55, linestyle="none",
                              label="accuracy published (paper),\nnot measured: in no front"))
    if on_front:
        handles.append(Line2D([], [], marker="o", color="white", markeredgecolor="black", linestyle="-",
                              label="Pareto front (measured)"))
    fig.legend(handles=handles, fontsize=7, loc="outside right upper")
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
    for (device, ridge), height in zip(sorted((markers or {}).items(), key=lambda item: item[1]),
                                       _staggered([r for r in sorted((markers or {}).values())], ridge_points)):
        ax.axvline(ridge, color="gray", linewidth=0.6, linestyle=":")
        ax.text(ridge, height, plain(device), rotation=90, fontsize=6, va="top", ha="right",
                transform=ax.get_xaxis_transform(), bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    ax.set_yscale("log")
    ax.set_xlabel("ridge point, MACs/byte (int8, 1 byte per element)")
    ax.set_ylabel("latency x peak, G MAC-equivalents" if not normalised else "latency relative to the MAC count")
    ax.set_title("Roofline latency over the ridge point (paper Figure 2)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    return fig


def _staggered(ridges: Sequence[float], axis_values: Sequence[float], gap: float = 0.04) -> list[float]:
    """Heights (axes fraction) for labels on vertical lines: a line within ``gap`` of the axis width of the
    previous one gets its label lower down, so neighbouring device names never pile up."""
    span = (max(axis_values) - min(axis_values)) or 1.0
    heights, previous, level = [], None, 0
    for ridge in ridges:
        level = level + 1 if previous is not None and (ridge - previous) / span < gap else 0
        heights.append(0.98 - 0.3 * (level % 3))
        previous = ridge
    return heights


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
        texts = [ax.text(p["relative_latency"], p["top1"], plain(p["model"]), fontsize=6) for p in pts]
        line = sorted((p for p in pts if p["on_front"]), key=lambda p: p["relative_latency"])
        ax.step([p["relative_latency"] for p in line], [p["top1"] for p in line], where="post",
                color=FRONT_COLOR, linewidth=0.8, alpha=0.6)
        ax.set_xscale("log")
        readable_log_axis(ax.xaxis)
        ax.margins(x=0.35, y=0.1)  # room inside the axes for the labels of the slowest and the best models
        place_labels(ax, texts, [(p["relative_latency"], p["top1"]) for p in pts])
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
        readable_log_axis(ax.xaxis)
        readable_log_axis(ax.yaxis)
        ax.set_title(plain(device), fontsize=9)
        ax.set_xlabel("paper, measured ms", fontsize=7)
        ax.set_ylabel("roofline, estimated ms", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(True, alpha=0.3, which="both")
    return fig
