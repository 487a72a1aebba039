"""Report outputs on hand-made results: kinds visible in every format, HTML self-contained and escaped."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from mnv4suite.errors import UserError
from mnv4suite.reports import report
from reportdata import make_result, write_results

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def result_dir(tmp_path):
    root = tmp_path / "results"
    write_results(root, [
        make_result("mnv4-conv-s", latency_ms=2.0),  # published top-1 (73.8) from the catalog
        make_result("mnv4-conv-m", latency_ms=4.0, accuracy=78.0),
        make_result("mnv4-conv-l", latency_ms=9.0, accuracy=77.0),  # dominated by conv-m
        # measured on another CPU, so on a front of its own (two machines never share one), named in the title
        make_result(EVIL, backend=EVIL, latency_ms=3.0, accuracy=60.0, cpu=EVIL),
        make_result("mnv4-conv-m", backend="fake-npu", hardware="pixel8_edgetpu", estimate_ms=1.1, accuracy=78.0,
                    precision="fp32", status="partial"),
    ])
    (root / "broken" ).mkdir()
    (root / "broken" / "result.json").write_text('{"schema_version": "1.0"}')
    return root


@pytest.fixture
def built(result_dir, tmp_path):
    notes = []
    rep = report.build([result_dir], tmp_path / "out", roofline=False, paper=False, log=notes.append)
    return rep, tmp_path / "out", notes


def test_all_formats_are_written(built):
    rep, out, _ = built
    assert {p.name for p in rep.written if p.parent == out} == {"report.md", "report.html", "report.json"}
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == sorted(f"pareto-{i:02d}-{key}.{ext}" for i, key in
                           [(1, "imagenet__host-cpu-script-alert-1-script-__SingleStream"),
                            (2, "imagenet__host-cpu-Test-CPU-__SingleStream"), (3, "imagenet__pixel8_edgetpu__SingleStream")]
                           for ext in ("png", "svg"))
    assert (out / "plots" / plots[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_invalid_file_is_named_and_skipped(built, result_dir):
    rep, out, notes = built
    [(path, why)] = rep.collected.invalid
    assert path.endswith("broken/result.json") and "does not match schema" in why
    assert any("broken/result.json" in n for n in notes)
    data = json.loads((out / "report.json").read_text())
    assert data["inputs"]["invalid"][0]["path"] == path
    assert "broken/result.json" in (out / "report.md").read_text()
    assert len(data["inputs"]["results"]) == 5


def test_json_carries_kinds_and_the_front(built):
    _, out, _ = built
    data = json.loads((out / "report.json").read_text())
    [evil_cpu, cpu, npu] = data["pareto"]["groups"]
    assert (evil_cpu["hardware"], cpu["hardware"]) == (f"host-cpu ({EVIL})", "host-cpu (Test CPU)")
    by_model = {p["model"]: p for p in cpu["points"]}
    assert by_model["mnv4-conv-s"]["accuracy_kind"] == "published" and by_model["mnv4-conv-s"]["accuracy"] == 73.8
    assert by_model["mnv4-conv-m"]["accuracy_kind"] == "measured"
    # conv-s is faster but placed by the paper's accuracy: drawn apart, never joined into the measured front
    assert {p["model"] for p in cpu["points"] if p["on_front"]} == {"mnv4-conv-m"}
    assert [cpu["points"][i]["model"] for i in cpu["front"]] == ["mnv4-conv-m"]
    [est] = npu["points"]
    assert (est["latency_kind"], est["status"], est["on_front"]) == ("estimated", "partial", True)
    assert all(p["latency_kind"] == "measured" for p in cpu["points"])


def test_markdown_marks_estimates_published_and_partial(built):
    _, out, _ = built
    md = (out / "report.md").read_text()
    row = next(line for line in md.splitlines() if "fake-npu" in line)
    assert "~1.10 (error unknown)" in row and "estimated" in row and "(partial)" in row
    conv_s = next(line for line in md.splitlines() if "| mnv4-conv-s" in line)
    assert "73.80 (published)" in conv_s and "★" not in conv_s and "~" not in conv_s
    # where the figure comes from: a footnote, said once under the table, not in every row
    assert "published [1]" in conv_s and md.count("\n[1] Qin et al.") == 1
    assert EVIL not in md and "&lt;script&gt;" in md
    assert "![Pareto front: imagenet on host-cpu (Test CPU) (SingleStream)](plots/pareto-02-" in md


def test_html_is_self_contained_escaped_and_marks_kinds(built):
    _, out, _ = built
    html = (out / "report.html").read_text()
    assert not re.search(r"https?://", html)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", html)
    assert "<link" not in html and "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<svg") == 3  # every plot inline
    assert re.search(r'<tr class="[^"]*estimated[^"]*partial', html)
    assert 'class="kind kind-estimated"' in html and 'class="kind kind-published"' in html
    assert "~1.100" not in html and "~1.10" in html


def test_svg_plots_escape_names_and_show_the_legend(built):
    _, out, _ = built
    svg = (out / "plots" / "pareto-01-imagenet__host-cpu-script-alert-1-script-__SingleStream.svg").read_text()
    assert EVIL not in svg and "&lt;script&gt;" in svg
    svg = (out / "plots" / "pareto-02-imagenet__host-cpu-Test-CPU-__SingleStream.svg").read_text()
    for label in ("latency measured (LoadGen)", "latency estimated (roofline) ~", "accuracy published (paper)", "Pareto front"):
        assert label in svg


def test_format_subset(result_dir, tmp_path):
    rep = report.build([result_dir], tmp_path / "md", report.parse_formats("md"), roofline=False, paper=False)
    assert [p.name for p in rep.written] == ["report.md"]
    assert "plots/" not in (tmp_path / "md" / "report.md").read_text()
    with pytest.raises(UserError, match="unknown report format"):
        report.parse_formats("md,pdf")


def test_missing_path_and_no_valid_results_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        report.build([tmp_path / "nope"], tmp_path / "out", roofline=False, paper=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no valid result files"):
        report.build([tmp_path / "empty"], tmp_path / "out", roofline=False, paper=False)


def test_cli_errors(run_cli, tmp_path):
    missing = run_cli("report", "nope", "--out", "out", "--no-roofline", "--no-paper")
    assert missing.returncode == 2 and "nope does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_listing_imports_neither_matplotlib_nor_jinja2(suite_env):
    code = ("import sys; from mnv4suite.cli import main; main(['list']);"
            "print('HEAVY', [m for m in ('matplotlib', 'jinja2', 'scipy') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], env=suite_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_an_offline_row_shows_its_throughput_not_completion_times_as_latency():
    """In Offline every sample is one query: LoadGen's "latency" of a sample is the time since the test
    began (61 ms p50 for 64 samples at 5 ms each), which the table must not print as a per-inference p50."""
    from mnv4suite.reports.table import results_table

    offline = make_result("a", latency_ms=5.0, scenario="Offline")
    offline["latency"].update(p50_ms=61.4, p90_ms=102.4, mean_ms=58.8, early_stopping_p90_ms=None, samples_per_s=195.0)
    [row] = [line for line in results_table([offline, make_result("b", latency_ms=6.0)]).splitlines() if line.startswith("a ")]
    assert row.split()[3:8] == ["-", "-", "-", "-", "195.0"] and "61.4" not in row


def test_an_estimate_in_a_pareto_table_carries_its_error_band():
    """Markdown has no plot axis to say it: the cell itself does (a profile's held-out median error)."""
    from mnv4suite.reports import pareto

    estimated = make_result("m", backend="fake-npu", hardware="pixel8_edgetpu", estimate_ms=3.96, accuracy=70.0)
    estimated["estimate"]["typical_error_pct"] = 8.5
    [group] = pareto.groups(pareto.points_from_results([estimated]))
    assert report.pareto_rows(group)[0][4] == "~3.96 ±8%"
