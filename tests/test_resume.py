"""`mnv4suite run --resume RUN_DIR` on this machine: the run is planned again from its run.json and
only the jobs without a valid result run."""

from __future__ import annotations

import json


def test_resume_runs_only_the_jobs_without_a_valid_result(run_cli, tmp_path):
    first = run_cli("run", "--backend", "pytorch-cpu,onnxruntime-cpu", "--model", "tiny-cnn", "--preset", "rapid",
                    "--out", "out")
    assert first.returncode == 0, first.output
    [run_dir] = (tmp_path / "out").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["config"]["backend"] == ["pytorch-cpu", "onnxruntime-cpu"]
    kept = run_dir / "imagenet__tiny-cnn__pytorch-cpu__SingleStream" / "result.json"
    damaged = run_dir / "imagenet__tiny-cnn__onnxruntime-cpu__SingleStream" / "result.json"
    kept_bytes = kept.read_bytes()
    damaged.write_text(damaged.read_text()[:100])  # cut short, as by a full disk

    again = run_cli("run", "--resume", str(run_dir))
    assert again.returncode == 0, again.output
    assert f"resuming {run_dir.name}: 1 of 2 job(s) already have a valid result" in again.stderr
    assert "[2/2] tiny-cnn on onnxruntime-cpu" in again.stderr and "[1/2]" not in again.stderr
    assert kept.read_bytes() == kept_bytes
    assert json.loads(damaged.read_text())["status"] == "complete"
    assert (damaged.parent / "previous-result.json").read_text().startswith("{")  # the damaged file, kept aside
    assert again.stdout.count("tiny-cnn") == 2  # the table shows the whole run

    done = run_cli("run", "--resume", str(run_dir))
    assert done.returncode == 0 and "2 of 2 job(s) already have a valid result" in done.stderr
