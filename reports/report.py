"""`mnv4suite report`: result files in; Markdown, one self-contained HTML page, JSON and SVG/PNG plots out.

Every number says what it is: estimated latencies carry "~" and a kind column (hollow markers in the
plots), published accuracy is labelled "published" (square markers), partial runs "partial". Strings
from result files are escaped in HTML (jinja2 autoescape) and in Markdown tables.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from mnv4suite.api import install_command
from mnv4suite.fileio import atomic_write_bytes
from mnv4suite.errors import UserError

from . import pareto
from .collect import Collected, collect

FORMATS = ("md", "html", "json", "png", "svg")
DOMINANCE_NOTE = (
    "Pareto front: the points no other point dominates, per task, hardware target and scenario; q dominates p "
    "when q's latency is no higher and its accuracy no lower, one of them strictly. Equal points are both on the "
    "front; of equal latencies only the most accurate can be."
)


def parse_formats(text: str | Sequence[str] | None) -> list[str]:
    if not text:
        return list(FORMATS)
    items = text.split(",") if isinstance(text, str) else [f for t in text for f in t.split(",")]
    chosen = [f.strip().lower() for f in items if f.strip()]
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown:
        raise UserError(f"unknown report format(s) {', '.join(unknown)}: choose from {','.join(FORMATS)}")
    return [f for f in FORMATS if f in chosen]


@dataclass
class Figure:
    name: str  # file stem under plots/
    title: str
    svg: bytes | None = None
    png: bytes | None = None

    def inline_svg(self) -> str:
        """The SVG element alone, for embedding: no XML declaration, no DOCTYPE (it names an external DTD)."""
        text = (self.svg or b"").decode("utf-8")
        start = text.find("<svg")
        if start < 0:
            return ""
        text = re.sub(r"<metadata>.*?</metadata>\s*", "", text[start:], flags=re.S)
        # HTML needs no namespace declarations on inline SVG: the page then names no URL at all
        return re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text, count=2)


@dataclass
class Report:
    collected: Collected
    groups: list[pareto.Group] = field(default_factory=list)
    roofline: dict[str, Any] | None = None
    paper: dict[str, Any] | None = None
    skipped_sections: dict[str, str] = field(default_factory=dict)  # section -> why
    figures: list[Figure] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def _published_lookup() -> pareto.PublishedLookup:
    from mnv4suite.registry import get_registry

    return pareto.catalog_published(get_registry().models.items)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "group"


def build(
    paths: Sequence[str | Path],
    out: str | Path,
    formats: Sequence[str] = FORMATS,
    roofline: bool = True,
    paper: bool = True,
    layer_model: str | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> Report:
    """Collect, analyse and write. Raises UserError for a missing path or when no given file is valid."""
    formats = list(formats)
    collected = collect(paths)
    for path, why in collected.invalid:
        log(f"skipping invalid result file {path}: {why.splitlines()[0]}")
    if paths and not collected.results:
        found = len(collected.invalid)
        raise UserError(
            f"no valid result files under {', '.join(map(str, paths))} ({found} invalid): give the folders "
            "`mnv4suite run` wrote, or result.json files"
        )
    report = Report(collected)
    if collected.results:
        points = pareto.points_from_results(collected.results, _published_lookup(), collected.paths)
        report.groups = pareto.groups(points)
    else:
        log("no result files given: writing the roofline and paper sections only")
    if roofline:
        try:
            from . import ridge

            report.roofline = ridge.sweep_report(layer_model=layer_model or ridge.DEFAULT_LAYER_MODEL)
        except ImportError as exc:
            report.skipped_sections["roofline"] = f"needs torch to cost the models ({exc}): {install_command('torch')}"
    if paper:
        try:
            from . import paper as paper_mod

            report.paper = paper_mod.paper_report()
        except ImportError as exc:
            report.skipped_sections["paper"] = f"needs torch to cost the models ({exc}): {install_command('torch')}"
    for section, why in report.skipped_sections.items():
        log(f"{section} section skipped: {why}")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if {"html", "svg", "png", "md"} & set(formats):
        report.figures = _figures(report, formats)
    if {"svg", "png"} & set(formats):
        (out / "plots").mkdir(exist_ok=True)
        for fig in report.figures:
            for ext, data in (("svg", fig.svg), ("png", fig.png)):
                if ext in formats and data is not None:
                    path = out / "plots" / f"{fig.name}.{ext}"
                    atomic_write_bytes(path, data)
                    report.written.append(path)
    if "json" in formats:
        report.written.append(_write(out / "report.json", json.dumps(_clean(to_json(report)), indent=1, allow_nan=False)))
    if "md" in formats:
        report.written.append(_write(out / "report.md", render_markdown(report, formats)))
    if "html" in formats:
        report.written.append(_write(out / "report.html", render_html(report)))
    return report


def _write(path: Path, text: str) -> Path:
    """Replaced whole or not at all: an interrupted rebuild leaves the last report readable."""
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def _figures(report: Report, formats: Sequence[str]) -> list[Figure]:
    from . import plots

    want_svg = bool({"svg", "html"} & set(formats))
    want_png = "png" in formats
    made: list[tuple[str, str, Any]] = []
    for i, group in enumerate(report.groups, 1):
        made.append((f"pareto-{i:02d}-{_slug(group.key)}", f"Pareto front: {group.title}", plots.pareto_figure(group)))
    if report.roofline:
        r = report.roofline
        curves = {m["id"]: [v / 1e9 for v in m["mac_equivalents"]] for m in r["models"]}
        made.append(("roofline-sweep", "Roofline latency over the ridge point (Figure 2)",
                     plots.sweep_figure(r["ridge_points"], curves, r["device_ridges"], normalised=False)))
        made.append(("roofline-fronts", "Accuracy vs roofline latency at six ridge points (Figure 2)",
                     plots.front_panels_figure(r["panels"])))
        layers = r["layers"]
        made.append(("roofline-layers", f"Per-layer cost of {layers['model']} (Figure 3)", plots.layers_figure(
            layers["model"],
            {label: [row["cost"][label] for row in layers["rows"]] for label in layers["ridge_points"]},
            {label: [row["memory_bound"][label] for row in layers["rows"]] for label in layers["ridge_points"]},
        )))
    if report.paper:
        rows = [{"device": d["device"], **row} for d in report.paper["devices"] for row in d["rows"]]
        if rows:
            made.append(("paper-latency", "Roofline estimates vs the paper's measured latency (Table 6)",
                         plots.paper_latency_figure(rows)))
    out = []
    for name, title, fig in made:
        out.append(Figure(name, title, plots.to_svg(fig, salt=name) if want_svg else None,
                          plots.to_png(fig) if want_png else None))
    return out


# --------------------------------------------------------------------------- cells


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def latency_cell(p: pareto.Point) -> str:
    if p.latency_ms is None:
        return "-"
    digits = 3 if p.latency_ms < 1 else 2
    if p.latency_kind != pareto.ESTIMATED:
        return f"{p.latency_ms:.{digits}f}"
    band = f" ±{p.latency_band_pct:.0f}%" if p.latency_band_pct is not None else " (error unknown)"
    return f"~{p.latency_ms:.{digits}f}{band}"  # an estimate is never shown without its error band


def accuracy_cell(p: pareto.Point) -> str:
    if p.accuracy is None:
        return "-"
    text = f"{p.accuracy:.2f}"
    if p.accuracy_kind == pareto.PUBLISHED:
        text += " (published)"
    if p.status == "partial" and p.accuracy_kind == pareto.MEASURED:
        text += " (partial)"
    return text


PARETO_HEADERS = ["front", "model", "backend", "precision", "latency ms", "latency", "accuracy", "accuracy from",
                  "status", "LoadGen"]


def accuracy_notes(group: pareto.Group) -> list[str]:
    """Each distinct note on where an accuracy comes from, once, in the order of the table: footnotes."""
    return list(dict.fromkeys(p.accuracy_note for p in group.points if p.accuracy_note))


def pareto_rows(group: pareto.Group) -> list[list[str]]:
    notes = {note: i for i, note in enumerate(accuracy_notes(group), 1)}
    return [
        [
            "★" if p.on_front else "",
            p.model,
            p.backend,
            p.precision,
            latency_cell(p),
            p.latency_kind or "none",
            accuracy_cell(p) + (f" {p.accuracy_metric}" if p.accuracy_metric and p.accuracy is not None else ""),
            (p.accuracy_kind or "none") + (f" [{notes[p.accuracy_note]}]" if p.accuracy_note else ""),
            p.status,
            p.validity,
        ]
        for p in group.points
    ]


def ridge_tables(r: dict[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    from .ridge import by_block

    panels = r["panels"]
    headers = ["model", "published top-1"] + [f"R={p['ridge_point']:g}" + (f" {p['label']}" if p["label"] else "") for p in panels]
    sweep_rows = []
    for m in r["models"]:
        row = [m["id"], fmt(m["published_top1"], 1)]
        for panel in panels:
            value = next((pt for pt in panel["points"] if pt["model"] == m["id"]), None)
            equiv = value["mac_equivalents"] if value else _mac_eq_at(m, r["ridge_points"], panel["ridge_point"])
            row.append(f"{equiv / 1e9:.3f}" + (" ★" if value and value["on_front"] else ""))
        sweep_rows.append(row)
    front_rows = [
        [m["id"], fmt(m["published_top1"], 1),
         ", ".join(f"{a:g}-{b:g}" if a != b else f"{a:g}" for a, b in m["on_front_at"]) or "never"]
        for m in r["models"] if m["published_top1"] is not None
    ]
    layers = r["layers"]
    labels = list(layers["ridge_points"])
    block_rows = [
        [b["block"], str(b["layers"]), f"{b['macs'] / 1e6:.1f}", f"{b['bytes'] / 1e6:.2f}"]
        + [f"{100 * b['cost'][label] / layers['totals'][label]:.1f}" for label in labels]
        for b in by_block(layers)
    ]
    device_rows = [[d, f"{ridge:g}"] for d, ridge in r["device_ridges"].items()]
    return {
        "sweep": (headers, sweep_rows),
        "fronts": (["model", "published top-1", "on the front at ridge points (MACs/byte)"], front_rows),
        "blocks": (["block", "layers", "MMACs", "MB (int8)"] + [f"% of latency, {label}" for label in labels], block_rows),
        "devices": (["device", "ridge point (int8 bytes)"], device_rows),
    }


def _mac_eq_at(model: dict[str, Any], ridges: list[float], ridge: float) -> float:
    import numpy as np

    return float(np.interp(ridge, ridges, model["mac_equivalents"]))


def paper_tables(p: dict[str, Any]) -> dict[str, Any]:
    sizes = (
        ["Table 6 row", "model", "params M (ours)", "params M (paper)", "GMACs (ours)", "GMACs (paper)", "top-1 (paper)"],
        [[s["row"], s["model"], fmt(s["params_m"]), fmt(s["paper_params_m"], 1), fmt(s["gmacs"], 3),
          fmt(s["paper_gmacs"], 1), fmt(s["top1"], 1)] for s in p["sizes"]],
    )
    spearman = (
        ["device", "precision", "ridge point", "models", "Spearman roofline (in-sample)",
         "Spearman held out (nested leave-one-out)", "median error held out %", "Spearman MACs only",
         "paper (Table 16) roofline", "paper (Table 16) MACs"],
        [[d["device"], d["precision"], f"{d['ridge_point']:g} ({d['ridge_from']})",
          str(d["n"]), fmt(d["spearman_roofline"], 3), fmt(d.get("held_out_spearman"), 3),
          fmt(d.get("held_out_median_ape"), 1), fmt(d["spearman_macs"], 3),
          fmt(d["paper_spearman_roofline"], 3), fmt(d["paper_spearman_macs"], 3)] for d in p["devices"]],
    )
    per_device = {
        d["device"]: (
            ["Table 6 row", "model", "paper ms (measured)", "roofline ms (estimated, in-sample: fitted to these rows)",
             "ratio"],
            [[r["row"], r["model"], fmt(r["paper_ms"]), "~" + fmt(r["estimated_ms"]), fmt(r["ratio"])] for r in d["rows"]],
        )
        for d in p["devices"]
    }
    return {"sizes": sizes, "spearman": spearman, "per_device": per_device}


# --------------------------------------------------------------------------- JSON


def to_json(report: Report) -> dict[str, Any]:
    from mnv4suite import __version__

    figures = {f.name: f for f in report.figures}
    groups = []
    for i, group in enumerate(report.groups, 1):
        entry = group.to_dict()
        entry["plot"] = next((n for n in figures if n.startswith(f"pareto-{i:02d}-")), None)
        groups.append(entry)
    return {
        "report": "mnv4suite",
        "version": 1,
        "suite_version": __version__,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": {
            "results": report.collected.paths,
            "invalid": [{"path": p, "error": why} for p, why in report.collected.invalid],
        },
        "pareto": {"rule": DOMINANCE_NOTE, "groups": groups},
        "roofline": report.roofline,
        "paper": report.paper,
        "skipped_sections": report.skipped_sections,
        "plots": sorted(figures),
    }


def _clean(value: Any) -> Any:
    """NaN (a constant ranking has no Spearman) becomes null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# --------------------------------------------------------------------------- Markdown


def md_cell(text: Any) -> str:
    """A Markdown table cell that shows the text literally: no HTML, no column breaks."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("\n", " "))


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    from tabulate import tabulate

    if not rows:
        return "_(none)_"
    return tabulate([[md_cell(c) for c in row] for row in rows], headers=[md_cell(h) for h in headers],
                    tablefmt="github", disable_numparse=True)


def render_markdown(report: Report, formats: Sequence[str]) -> str:
    image_ext = "svg" if "svg" in formats else ("png" if "png" in formats else None)
    figures = {f.name: f for f in report.figures}

    def image(name: str) -> list[str]:
        if image_ext and name in figures:
            return [f"![{md_cell(figures[name].title)}](plots/{name}.{image_ext})", ""]
        return []

    lines = ["# mnv4suite report", ""]
    lines += [f"Result files: {len(report.collected.paths)} valid, {len(report.collected.invalid)} invalid.", ""]
    lines += ["Legend: `~` and latency \"estimated\" = roofline estimate, never a measurement; accuracy \"published\" = "
              "the paper's figure, shown only where no measured accuracy exists; ★ = on the Pareto front.", ""]
    if report.collected.invalid:
        lines += ["## Invalid result files (skipped)", ""]
        lines += [md_table(["file", "problem"], [[p, why] for p, why in report.collected.invalid]), ""]
    lines += ["## Pareto fronts: accuracy vs latency", "", DOMINANCE_NOTE, ""]
    if not report.groups:
        lines += ["No result files were given.", ""]
    for i, group in enumerate(report.groups, 1):
        lines += [f"### {md_cell(group.title)}", ""]
        lines += image(f"pareto-{i:02d}-{_slug(group.key)}")
        lines += [md_table(PARETO_HEADERS, pareto_rows(group)), ""]
        lines += [f"[{i}] {md_cell(note)}  " for i, note in enumerate(accuracy_notes(group), 1)]
        lines += [""] if accuracy_notes(group) else []
    if report.roofline:
        t = ridge_tables(report.roofline)
        lines += ["## Roofline: the paper's Figures 2 and 3", "", report.roofline["method"] + ".", ""]
        lines += image("roofline-sweep") + image("roofline-fronts")
        lines += ["Latency x peak in G MAC-equivalents at selected ridge points (★ = on the published-top-1 front there):", ""]
        lines += [md_table(*t["sweep"]), "", "Where each model is on the front over ridge points 0-500:", ""]
        lines += [md_table(*t["fronts"]), "", "The paper's devices at int8-equivalent ridge points:", ""]
        lines += [md_table(*t["devices"]), ""]
        lines += [f"### Per-layer cost of {report.roofline['layers']['model']} (Figure 3)", ""]
        lines += image("roofline-layers") + [md_table(*t["blocks"]), ""]
    if report.paper:
        t = paper_tables(report.paper)
        lines += ["## Comparison with the paper (Table 6)", "", f"Source: {md_cell(report.paper['source'])}.", ""]
        lines += ["### Params and MACs", "", md_table(*t["sizes"]), ""]
        lines += ["### Estimated latency vs the paper's measured latency", ""]
        lines += image("paper-latency") + [md_table(*t["spearman"]), ""]
        for device, table in t["per_device"].items():
            lines += [f"#### {device}", "", md_table(*table), ""]
    for section, why in report.skipped_sections.items():
        lines += [f"_{section} section skipped: {md_cell(why)}_", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML


def render_html(report: Report) -> str:
    from importlib import resources

    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: resources.files("mnv4suite.reports").joinpath("templates", name).read_text(encoding="utf-8")
        ),
        autoescape=True,  # every string from a result file is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    figures = {f.name: f for f in report.figures}
    groups = [
        {"title": g.title, "figure": figures.get(f"pareto-{i:02d}-{_slug(g.key)}"), "headers": PARETO_HEADERS,
         "rows": [{"cells": cells, "point": p} for cells, p in zip(pareto_rows(g), g.points)],
         "notes": accuracy_notes(g)}
        for i, g in enumerate(report.groups, 1)
    ]
    return env.get_template("report.html.j2").render(
        report=report,
        groups=groups,
        rule=DOMINANCE_NOTE,
        figures=figures,
        roofline=ridge_tables(report.roofline) if report.roofline else None,
        roofline_data=report.roofline,
        paper=paper_tables(report.paper) if report.paper else None,
        paper_data=report.paper,
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
