"""`mnv4suite leaderboard SUBMISSIONS_DIR --out SITE_DIR`: a static site from validated submissions only.

Every folder in SUBMISSIONS_DIR is validated (reports/submission.py); accepted submissions fill one page
per task x hardware target (the SoC named in submission.yaml), with a sortable table and the Pareto plot
per scenario; the index lists every submission, and every reason for each rejected one.

Everything from a submission is untrusted text. Pages are rendered by jinja2 with autoescaping on; plots
are SVG bytes from reports/plots.py embedded as base64 `<img>` data, which a browser never runs as script
and which cannot become markup of the page; file names are slugs plus a hash, never submission text. A
Content-Security-Policy admits only the page's own inline script and style (by hash), so even a mistake in
escaping would not execute. The site has no external URLs. Nothing is read but the submission folders
(through the validator's hardened reader) and the suite's own templates.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from mnv4suite.errors import UserError
from mnv4suite.fileio import atomic_write_bytes
from mnv4suite.safeparse import printable

from mnv4suite.results import per_query_latency

from . import submission as subs

TEMPLATE_PREFIX = "leaderboard"
VERDICT_FILE = "verdicts.json"
#: Written last into every site folder: the files this command made there, so `--clean` removes
#: those and nothing else.
SITE_MARKER = ".mnv4suite-site.json"


@dataclass
class Row:
    """One accepted result in a page's table."""

    submission: str
    submitter: str
    system: str
    model: str
    precision: str
    backend: str
    accelerator: str
    hardware_profile: str
    cpu_fallback_ops: int
    p50_ms: float | None
    p90_ms: float | None
    es_p90_ms: float | None
    samples_per_s: float | None
    accuracy: float | None
    accuracy_metric: str | None
    accuracy_note: str
    latency_ms: float | None
    on_front: bool
    result_path: str


@dataclass
class Section:
    scenario: str
    latency_metric: str
    accuracy_metric: str
    rows: list[Row]
    plot_data_uri: str
    plot_alt: str


@dataclass
class Page:
    task: str
    hardware: str
    file_name: str
    sections: list[Section] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.task} on {self.hardware}"

    @property
    def result_count(self) -> int:
        return sum(len(s.rows) for s in self.sections)


def slug(*parts: str) -> str:
    """A file name for untrusted text: lowercase letters, digits and dashes, plus a hash against collisions."""
    text = "--".join(parts)
    readable = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "page"
    return f"{readable}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:10]}"


def find_submissions(submissions_dir: Path) -> tuple[list[Path], list[subs.SubmissionVerdict]]:
    """Sub-folders to validate, and a rejection for every entry that cannot be one (a symlink, a file)."""
    folders: list[Path] = []
    refused: list[subs.SubmissionVerdict] = []
    for entry in sorted(submissions_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            verdict = subs.SubmissionVerdict(path=str(entry), rules=subs.RULES["submission"])
            verdict.reject("files", "the submission folder is a symlink: refused, copy it in")
            refused.append(verdict)
        elif entry.is_dir():
            folders.append(entry)
    return folders, refused


def build_pages(accepted: list[subs.SubmissionVerdict]) -> list[Page]:
    """Pareto points per submission (accuracy is never borrowed across submitters), then one page per
    task x SoC with a section per scenario."""
    from . import pareto, plots

    points: list[Any] = []
    info: dict[str, tuple[subs.SubmissionVerdict, subs.ResultVerdict]] = {}
    for sub in accepted:
        verdicts = [r for r in sub.results if r.accepted]
        sources = [f"{sub.name}/{r.path}" for r in verdicts]
        soc = sub.meta["system"]["soc"]
        for point in pareto.points_from_results([r.result for r in verdicts], published=None, sources=sources):
            points.append(replace(point, hardware=soc))
        info.update({source: (sub, r) for source, r in zip(sources, verdicts)})

    pages: dict[tuple[str, str], Page] = {}
    for group in pareto.groups(points):
        page = pages.setdefault((group.task, group.hardware),
                                Page(group.task, group.hardware, slug(group.task, group.hardware) + ".html"))
        rows = [_row(p, *info[p.source]) for p in group.points]
        figure = plots.pareto_figure(group, title=f"{group.task} on {group.hardware} ({group.scenario})")
        svg = plots.to_svg(figure, salt=slug(group.key))
        page.sections.append(Section(
            scenario=group.scenario,
            latency_metric=", ".join(group.latency_metrics) or "-",
            accuracy_metric=group.accuracy_metric,
            rows=rows,
            plot_data_uri="data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii"),
            plot_alt=f"Pareto plot: {group.accuracy_metric} against latency, {group.title}",
        ))
    return sorted(pages.values(), key=lambda p: (p.task, p.hardware))


def _row(point, sub: subs.SubmissionVerdict, verdict: subs.ResultVerdict) -> Row:
    r = verdict.result
    latency, throughput = per_query_latency(r), (r["latency"] or {}).get("samples_per_s")
    return Row(
        submission=sub.name, submitter=sub.meta["submitter"], system=sub.meta["system"]["name"],
        model=r["model"]["id"], precision=r["model"]["precision"], backend=r["backend"]["id"],
        accelerator=r["backend"]["accelerator"], hardware_profile=r["backend"]["hardware"],
        cpu_fallback_ops=len(r["backend"].get("cpu_fallback_ops") or []),
        p50_ms=latency.get("p50_ms"), p90_ms=latency.get("p90_ms"), es_p90_ms=latency.get("early_stopping_p90_ms"),
        samples_per_s=throughput, accuracy=point.accuracy, accuracy_metric=point.accuracy_metric,
        accuracy_note=point.accuracy_note, latency_ms=point.latency_ms, on_front=point.on_front,
        result_path=verdict.path,
    )


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mnv4suite.reports", "templates"),
        autoescape=True,  # every template, whatever its extension: submission text is untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, digits=3: "-" if v is None else f"{v:.{digits}f}"
    env.filters["sortkey"] = lambda v: "" if v is None else repr(float(v))
    return env


def _static(name: str) -> str:
    """The page's script or style, verbatim (never rendered). Named *.j2 so the package data ships them."""
    return resources.files("mnv4suite.reports").joinpath("templates", name).read_text(encoding="utf-8")


def _csp(script: str, style: str) -> str:
    """Only this page's own inline script and style run; images only from data: URIs; nothing external."""
    digest = lambda text: base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")  # noqa: E731
    return (f"default-src 'none'; script-src 'sha256-{digest(script)}'; style-src 'sha256-{digest(style)}'; "
            "img-src data:; base-uri 'none'; form-action 'none'")


def build_site(submissions_dir: Path, out_dir: Path, rules: subs.Rules = subs.RULES["submission"]) -> dict[str, Any]:
    """Validate every submission and write the site; returns the machine verdict (also written as JSON)."""
    submissions_dir = Path(submissions_dir)
    if not submissions_dir.is_dir():
        raise UserError(f"submissions folder {submissions_dir} does not exist")
    out_dir = Path(out_dir)
    check_site_folder(submissions_dir, out_dir)
    if not _made_here(out_dir):
        raise UserError(f"--out {out_dir} holds files but no {SITE_MARKER}, so this command did not make it and "
                        "writing the site there would replace files of yours: give an empty or new folder")
    folders, verdicts = find_submissions(submissions_dir)
    verdicts += [subs.validate_submission(folder, rules) for folder in folders]
    verdicts.sort(key=lambda v: v.name)
    accepted = [v for v in verdicts if v.accepted]
    rejected = [v for v in verdicts if not v.accepted]
    pages = build_pages(accepted)

    env = _environment()
    script, style = _static("leaderboard_script.js.j2"), _static("leaderboard_style.css.j2")
    common = {"rules": rules, "script": script, "style": style, "csp": _csp(script, style), "pages": pages}
    out_dir.mkdir(parents=True, exist_ok=True)
    for page in pages:
        html = env.get_template("leaderboard_task.html.j2").render(page=page, **common)
        atomic_write_bytes(out_dir / page.file_name, html.encode("utf-8"))
    index = env.get_template("leaderboard_index.html.j2").render(accepted=accepted, rejected=rejected, **common)
    atomic_write_bytes(out_dir / "index.html", index.encode("utf-8"))
    report = subs.verdict_json(verdicts)
    report["pages"] = [{"task": p.task, "hardware": p.hardware, "file": p.file_name, "results": p.result_count}
                       for p in pages]
    atomic_write_bytes(out_dir / VERDICT_FILE, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    written = [page.file_name for page in pages] + ["index.html", VERDICT_FILE]
    atomic_write_bytes(out_dir / SITE_MARKER, (json.dumps({"files": written}, indent=2) + "\n").encode("utf-8"))
    return report


def check_site_folder(submissions_dir: Path, out_dir: Path) -> None:
    """The site never shares a folder with its input, in either direction; raised before anything is written."""
    site, subs_dir = Path(out_dir).resolve(), Path(submissions_dir).resolve()
    if site.is_relative_to(subs_dir):
        raise UserError(f"--out {out_dir} is inside the submissions folder {submissions_dir}: "
                        "write the site somewhere else")
    if subs_dir.is_relative_to(site):
        raise UserError(f"the submissions folder {submissions_dir} is inside --out {out_dir}: "
                        "write the site to a folder of its own")
    if site.exists() and not site.is_dir():
        raise UserError(f"--out {out_dir} is a file: give a folder for the site")


def _made_here(site: Path) -> bool:
    """Whether a folder is new, empty, or holds a site this command wrote (its marker says so)."""
    marker = site / SITE_MARKER
    return not site.is_dir() or (marker.is_file() and not marker.is_symlink()) or not any(site.iterdir())


def clean_site(out_dir: Path) -> list[Path]:
    """Remove the files an earlier `mnv4suite leaderboard` wrote to out_dir, and nothing else.

    A folder with files but no marker was not made by this command, and the working directory (or a
    folder holding it) is never cleaned: both are refused before anything is removed."""
    site = Path(out_dir).resolve()
    if not site.is_dir():
        return []
    if Path.cwd().resolve().is_relative_to(site):
        raise UserError(f"--clean: {out_dir} is (or holds) the working directory, which is never cleaned: "
                        "give the site a folder of its own")
    if not _made_here(site):
        raise UserError(f"--clean: {out_dir} holds files but no {SITE_MARKER}, so this command did not make it: "
                        "give an empty or new folder")
    marker = site / SITE_MARKER
    if not marker.is_file():
        return []  # empty
    try:
        listed = json.loads(marker.read_bytes()[:1 << 20])["files"]
        names = [name for name in listed if isinstance(name, str)]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"--clean: {marker} is damaged ({exc}): remove the site's files by hand") from None
    removed = []
    # Plain names only: a marker is ours, but a damaged one must not reach outside the folder. The marker
    # itself stays: the folder is still the site's, and the build that follows rewrites it.
    for name in names:
        path = site / name
        if os.sep in name or name in ("", ".", "..") or path.is_symlink() or not path.is_file():
            continue
        path.unlink()
        removed.append(path)
    return removed


# --------------------------------------------------------------------------- CLI


LEADERBOARD_HELP = "build a static leaderboard site from a folder of submissions (validated first)"


def add_leaderboard_arguments(parser) -> None:
    parser.add_argument("submissions_dir", metavar="SUBMISSIONS_DIR", help="folder with one sub-folder per submission")
    parser.add_argument("--out", required=True, metavar="SITE_DIR", help="where the site is written")
    parser.add_argument("--rules", choices=tuple(subs.RULES), default="submission",
                        help="submission (default) or development (preset rapid allowed; every page says so)")
    parser.add_argument("--clean", action="store_true", help="first remove the files an earlier leaderboard wrote to SITE_DIR (nothing else)")


def cmd_leaderboard(args) -> int:
    """Exit 0 when the site is built, even with rejected submissions: their reasons are on the index."""
    rules = subs.get_rules(args.rules)
    out_dir, submissions_dir = Path(args.out), Path(args.submissions_dir)
    if not submissions_dir.is_dir():
        raise UserError(f"submissions folder {submissions_dir} does not exist")
    check_site_folder(submissions_dir, out_dir)  # before --clean removes anything
    if args.clean:
        clean_site(out_dir)
    report = build_site(submissions_dir, out_dir, rules)
    rejected = [s for s in report["submissions"] if not s["accepted"]]
    print(f"{len(report['submissions']) - len(rejected)} submission(s) accepted, {len(rejected)} rejected; "
          f"{len(report['pages'])} page(s); site at {out_dir / 'index.html'}")
    for s in rejected:
        print(f"  rejected {printable(s['name'])}: {len(s['reasons']) + sum(len(r['reasons']) for r in s['results'])} reason(s), "
              "listed on the index page")
    return 0
