"""`mnv4suite report` from the command line, on hand-made results and on a real tiny `mnv4suite run` sweep."""

from __future__ import annotations

import json
import re

import pytest

from mnv4suite import results
from mnv4suite.reports import pareto
from reportdata import make_result, write_results

FILES = {"report.md", "report.html", "report.json"}


def check_front_is_non_dominated(data):
    for group in data["pareto"]["groups"]:
        pts = group["points"]
        pairs = [(p["latency_ms"], p["accuracy"]) for p in pts]
        # only measured accuracy takes part: a published figure is drawn apart, never joined into a front
        placed = [i for i, p in enumerate(pts) if p["latency_ms"] is not None and p["accuracy"] is not None
                  and p["accuracy_kind"] == "measured"]
        expected = [i for i in placed if not any(pareto.dominates(pairs[j], pairs[i]) for j in placed if j != i)]
        assert group["front"] == expected
        assert [i for i, p in enumerate(pts) if p["on_front"]] == expected


def test_cli_on_hand_made_results(run_cli, tmp_path):
    write_results(tmp_path / "res", [make_result("mnv4-conv-s", latency_ms=2.0),
                                     make_result("mnv4-conv-m", latency_ms=1.5, accuracy=70.0)])
    run = run_cli("report", "res", "--out", "out", "--no-roofline", "--no-paper", "--format", "md,json,html,svg")
    assert run.returncode == 0, run.output
    assert {p.name for p in (tmp_path / "out").iterdir()} == FILES | {"plots"}
    assert not list((tmp_path / "out" / "plots").glob("*.png"))
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    check_front_is_non_dominated(data)
    assert "2 result(s) in 1 group(s), 1 on a Pareto front" in run.stderr  # conv-s has published accuracy only


@pytest.mark.slow
def test_report_on_a_real_tiny_sweep_writes_all_four_formats(run_cli, tmp_path, image_folder):
    sweep = run_cli("run", "--backend", "pytorch-cpu,onnxruntime-cpu,fake-npu", "--model", "tiny-cnn",
                    "--preset", "rapid", "--data", str(image_folder), "--out", "runs")
    assert sweep.returncode == 0, sweep.output
    paths = sorted((tmp_path / "runs").rglob("result.json"))
    assert len(paths) == 3 and all(results.read(p) for p in paths)

    rep = run_cli("report", "runs", "--out", "report")
    assert rep.returncode == 0, rep.output
    out = tmp_path / "report"
    assert FILES <= {p.name for p in out.iterdir()}
    plots = {p.name for p in (out / "plots").iterdir()}
    for stem in ("pareto-01-imagenet__host-cpu__SingleStream", "pareto-02-imagenet__pixel8_edgetpu__SingleStream",
                 "roofline-sweep", "roofline-fronts", "roofline-layers", "paper-latency"):
        assert {f"{stem}.svg", f"{stem}.png"} <= plots

    data = json.loads((out / "report.json").read_text())
    check_front_is_non_dominated(data)
    [cpu, npu] = data["pareto"]["groups"]
    assert {p["backend"] for p in cpu["points"]} == {"pytorch-cpu", "onnxruntime-cpu"}
    assert all(p["latency_kind"] == "measured" and p["accuracy_kind"] == "measured" for p in cpu["points"])
    [est] = npu["points"]
    assert est["latency_kind"] == "estimated" and est["on_front"]
    assert data["roofline"]["models"] and len(data["paper"]["devices"]) == 7

    md = (out / "report.md").read_text()
    assert re.search(r"\| ★ +\| tiny-cnn +\| fake-npu .*\| ~0\.\d+ +\| estimated", md)
    html = (out / "report.html").read_text()
    assert not re.search(r"https?://", html) and html.count("<svg") == 6


@pytest.mark.slow
def test_report_without_results_gives_the_roofline_and_paper_sections(run_cli, tmp_path):
    run = run_cli("report", "--out", "out", "--format", "md,json")
    assert run.returncode == 0, run.output
    assert "no result files given" in run.stderr
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Roofline" in md and "## Comparison with the paper" in md and "No result files were given." in md
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["pareto"]["groups"] == [] and data["paper"]["sizes"]
