"""`mnv4suite leaderboard`: a static site from validated submissions only, every submission's text escaped,
rejected submissions listed with every reason; opened in a real headless Chromium when one is installed."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from mnv4suite.reports import leaderboard
from mnv4suite.reports import submission as subs
from test_submission import SUBMISSION_YAML, build_submission, edit_result, result_path

EVIL = "<script>alert('owned')</script>"


@pytest.fixture(scope="session")
def built_submission(tmp_path_factory) -> Path:
    return build_submission(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def site(built_submission, tmp_path_factory) -> tuple[Path, dict]:
    """Four submissions (good; a <script> in its names; an edited latency; a missing log), one site."""
    root = tmp_path_factory.mktemp("leaderboard")
    subs_dir = root / "submissions"
    for name in ("good", "evil", "edited-latency", "missing-log"):
        shutil.copytree(built_submission, subs_dir / name)
    (subs_dir / "evil" / subs.SUBMISSION_FILE).write_text(
        SUBMISSION_YAML.format(name=json.dumps(EVIL + " phone")).replace("Test Lab", json.dumps("Lab " + EVIL)))
    edit_result(subs_dir / "edited-latency", "onnxruntime-cpu",
                lambda r: r["latency"].update(p90_ms=r["latency"]["p90_ms"] / 2))
    (result_path(subs_dir / "missing-log", "onnxruntime-cpu").parent / "loadgen" / "mlperf_log_accuracy.json").unlink()

    parser = argparse.ArgumentParser()
    leaderboard.add_leaderboard_arguments(parser)
    args = parser.parse_args([str(subs_dir), "--out", str(root / "site"), "--rules", "development"])
    assert leaderboard.cmd_leaderboard(args) == 0
    return root / "site", json.loads((root / "site" / leaderboard.VERDICT_FILE).read_text())


def pages(site_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(site_dir.glob("*.html"))}


def test_only_validated_submissions_are_ranked_and_rejections_give_every_reason(site):
    site_dir, verdict = site
    accepted = {s["name"]: s["accepted"] for s in verdict["submissions"]}
    assert accepted == {"good": True, "evil": True, "edited-latency": False, "missing-log": False}
    [page] = verdict["pages"]
    assert page["task"] == "imagenet" and page["hardware"] == "Test SoC 9000" and page["results"] == 4

    index = pages(site_dir)["index.html"]
    rejected = index.split("<h2>Rejected submissions</h2>")[1]
    assert "edited-latency" in rejected and "[figures] latency.p90_ms is" in rejected
    assert "missing-log" in rejected and "mlperf_log_accuracy.json is missing" in rejected
    assert f'href="{page["file"]}"' in index

    task_page = pages(site_dir)[page["file"]]
    rows = re.findall(r"<tr[^>]*>\s*<td>tiny-cnn</td>", task_page)
    assert len(rows) == 4  # good and evil, two results each; nothing from the rejected ones
    assert "edited-latency" not in task_page and "missing-log" not in task_page
    assert 'class="sortable results"' in task_page and 'class="plot" src="data:image/svg+xml;base64,' in task_page


def test_script_in_a_submission_is_text_on_every_page(site):
    site_dir, _ = site
    for name, html in pages(site_dir).items():
        assert EVIL not in html, name
        assert html.count("<script>") == 1, name  # the page's own script, nothing else
        assert "Content-Security-Policy" in html and "script-src 'sha256-" in unescape(html)
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), f"{name} refers to an external URL"
    escaped = "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;"
    index = pages(site_dir)["index.html"]
    assert escaped + " phone" in index and "Lab " + escaped in index
    [task_page] = [html for name, html in pages(site_dir).items() if name != "index.html"]
    assert escaped + " phone" in task_page


def test_the_csp_hash_matches_the_inline_script(site):
    import base64
    import hashlib

    html = pages(site[0])["index.html"]
    script = html.split("<script>")[1].split("</script>")[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in unescape(html)  # the attribute value, as a browser reads it


def test_a_symlinked_submission_folder_is_listed_as_rejected(built_submission, tmp_path):
    subs_dir = tmp_path / "submissions"
    subs_dir.mkdir()
    shutil.copytree(built_submission, tmp_path / "outside")
    (subs_dir / "linked").symlink_to(tmp_path / "outside")
    report = leaderboard.build_site(subs_dir, tmp_path / "site", subs.RULES["development"])
    [only] = report["submissions"]
    assert not only["accepted"] and "symlink" in only["reasons"][0]
    assert report["pages"] == []
    assert "the submission folder is a symlink" in (tmp_path / "site" / "index.html").read_text()


def test_the_site_is_never_written_into_the_submissions(tmp_path):
    from mnv4suite.errors import UserError

    (tmp_path / "submissions").mkdir()
    with pytest.raises(UserError, match="write the site somewhere else"):
        leaderboard.build_site(tmp_path / "submissions", tmp_path / "submissions" / "site")


def test_submission_rules_reject_the_rapid_preset_on_the_index(built_submission, tmp_path):
    shutil.copytree(built_submission, tmp_path / "submissions" / "good")
    report = leaderboard.build_site(tmp_path / "submissions", tmp_path / "site")
    assert report["pages"] == [] and not report["submissions"][0]["accepted"]
    index = (tmp_path / "site" / "index.html").read_text()
    assert "[preset] preset rapid" in index and 'id="rules-note"' not in index


# --------------------------------------------------------------------------- a real browser


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render(url: str, profile: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and every console message (Chromium logs them all as CONSOLE lines)."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_pages_render_in_headless_chromium_with_no_console_errors(site, tmp_path):
    site_dir, verdict = site
    # the console capture works: a page with a failing script is seen failing
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    _, console = render(broken.as_uri(), tmp_path / "profile")
    assert any("undefinedFunction is not defined" in line for line in console), console

    dom, console = render((site_dir / "index.html").as_uri(), tmp_path / "profile")
    assert console == []
    assert 'data-leaderboard-script="ran"' in dom
    assert re.search(r'<table class="sortable" id="accepted" data-sort-ready="true">', dom)
    assert "<button" in dom  # the script turned the headings into sort buttons
    assert dom.count("<script") == 1 and "&lt;script&gt;alert('owned')&lt;/script&gt; phone" in dom

    dom, console = render((site_dir / verdict["pages"][0]["file"]).as_uri(), tmp_path / "profile")
    assert console == []
    assert 'data-leaderboard-script="ran"' in dom
    assert re.search(r'<table class="sortable results" data-sort-ready="true">', dom)
    assert len(re.findall(r"<td>tiny-cnn</td>", dom)) == 4
    assert re.search(r'<img class="plot" [^>]*data-rendered="true"', dom), "the Pareto plot did not load"
    assert dom.count("<script") == 1


def test_clean_refuses_a_folder_that_is_not_a_site(tmp_path):
    from mnv4suite.errors import UserError

    (tmp_path / "submissions").mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "precious.txt").write_text("keep")
    parser = argparse.ArgumentParser()
    leaderboard.add_leaderboard_arguments(parser)
    args = parser.parse_args([str(tmp_path / "submissions"), "--out", str(tmp_path / "home"), "--clean"])
    with pytest.raises(UserError, match="this command did not make it"):
        leaderboard.cmd_leaderboard(args)
    assert (tmp_path / "home" / "precious.txt").exists()
    args = parser.parse_args([str(tmp_path / "submissions"), "--out", str(tmp_path / "site"), "--clean"])
    assert leaderboard.cmd_leaderboard(args) == 0
    assert leaderboard.cmd_leaderboard(args) == 0  # an earlier site is replaced
    assert "No accepted results yet." in (tmp_path / "site" / "index.html").read_text()


def _leaderboard_args(*argv):
    parser = argparse.ArgumentParser()
    leaderboard.add_leaderboard_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def test_the_site_is_never_written_over_files_this_command_did_not_write(tmp_path):
    """A folder with a page of the user's own is not a site: its index.html is never replaced."""
    from mnv4suite.errors import UserError

    (tmp_path / "submissions").mkdir()
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("my own page")
    with pytest.raises(UserError, match="would replace files of yours: give an empty or new folder"):
        leaderboard.cmd_leaderboard(_leaderboard_args(tmp_path / "submissions", "--out", www))
    assert (www / "index.html").read_text() == "my own page" and sorted(www.iterdir()) == [www / "index.html"]
    site = _leaderboard_args(tmp_path / "submissions", "--out", tmp_path / "site")
    assert leaderboard.cmd_leaderboard(site) == 0
    assert leaderboard.cmd_leaderboard(site) == 0  # a site of its own is rebuilt in place


def test_clean_never_deletes_submissions_inside_the_site(tmp_path):
    from mnv4suite.errors import UserError

    site = tmp_path / "site"
    (site / "subs" / "acme").mkdir(parents=True)
    (site / "subs" / "acme" / "submission.yaml").write_text("submitter: acme\n")
    (site / leaderboard.VERDICT_FILE).write_text("{}")  # looks like an earlier site
    with pytest.raises(UserError, match="inside --out"):
        leaderboard.cmd_leaderboard(_leaderboard_args(site / "subs", "--out", site, "--clean"))
    assert (site / "subs" / "acme" / "submission.yaml").read_text() == "submitter: acme\n"
    with pytest.raises(UserError, match="inside the submissions folder"):
        leaderboard.cmd_leaderboard(_leaderboard_args(site, "--out", site / "subs" / "out", "--clean"))
    assert (site / "subs" / "acme" / "submission.yaml").exists()


def test_clean_never_touches_the_working_directory(tmp_path, monkeypatch):
    from mnv4suite.errors import UserError

    (tmp_path / "submissions").mkdir()
    work = tmp_path / "lab" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert leaderboard.cmd_leaderboard(_leaderboard_args(tmp_path / "submissions", "--out", ".")) == 0
    (work / "notes.txt").write_text("mine")
    for out in (".", tmp_path / "lab"):
        with pytest.raises(UserError, match="working directory"):
            leaderboard.cmd_leaderboard(_leaderboard_args(tmp_path / "submissions", "--out", out, "--clean"))
    assert (work / "notes.txt").read_text() == "mine" and (work / "index.html").exists()


def test_clean_removes_only_what_the_site_wrote(tmp_path):
    (tmp_path / "submissions").mkdir()
    site = tmp_path / "site"
    args = _leaderboard_args(tmp_path / "submissions", "--out", site, "--clean")
    assert leaderboard.cmd_leaderboard(args) == 0
    (site / "README.txt").write_text("the maintainer's own file")
    (site / "old-page.html").write_text("stale")
    marker = json.loads((site / leaderboard.SITE_MARKER).read_text())
    marker["files"] += ["old-page.html", "../outside.txt", "/etc/passwd"]
    (site / leaderboard.SITE_MARKER).write_text(json.dumps(marker))
    (tmp_path / "outside.txt").write_text("keep")
    assert leaderboard.cmd_leaderboard(args) == 0
    assert not (site / "old-page.html").exists()  # listed by the earlier build: removed
    assert (site / "README.txt").read_text() == "the maintainer's own file"
    assert (tmp_path / "outside.txt").read_text() == "keep"
    assert (site / "index.html").exists() and (site / leaderboard.SITE_MARKER).exists()


def test_out_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
    from mnv4suite.errors import UserError

    (tmp_path / "submissions").mkdir()
    (tmp_path / "site").write_text("a file")
    with pytest.raises(UserError, match="is a file"):
        leaderboard.cmd_leaderboard(_leaderboard_args(tmp_path / "submissions", "--out", tmp_path / "site", "--clean"))
    assert (tmp_path / "site").read_text() == "a file"
