"""Sweeps on a real two-node Ray cluster: placement by hardware, one latency job per node, results in
the local layout that `mnv4suite validate` accepts, artifacts built once, `--resume` and `--node`."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from mnv4suite import results
from mnv4suite.reports import submission as subs

SUBMISSION_YAML = """\
format: mnv4suite-submission-1
submitter: Lab Test
system: {name: lab node, soc: Test SoC, cpu: 2 cores, os: Linux, frameworks: {onnxruntime: "1.32"}}
plugin: {distribution: mnv4suite, version: "0.1.0"}
"""


def read_results(out: Path) -> dict[str, dict]:
    return {p.parent.name: results.read(p) for p in sorted(out.glob("*/*/result.json"))}


def spans(found: dict[str, dict]):
    for name, r in found.items():
        timing = r["timing"]
        yield (r["node"]["ray_node_id"], datetime.fromisoformat(timing["started"]),
               datetime.fromisoformat(timing["finished"]), r["latency"] is not None, name)


@pytest.fixture(scope="module")
def sweep(two_node_lab, tmp_path_factory):
    """One sweep, shared by the checks below: 3 backends x 2 scenarios on generated ImageNet-style data."""
    from support import make_image_folder

    base = tmp_path_factory.mktemp("sweep")
    data = make_image_folder(base / "imagenet", [f"n{i:08d}" for i in range(3)], per_class=4)
    (data / "LOC_synset_mapping.txt").write_text("".join(f"n{i:08d} class {i}\n" for i in range(1000)))
    # --batch 1: both onnxruntime-cpu jobs need the same (batch-1) export, which the lab builds once
    run = two_node_lab.driver("--backend", "onnxruntime-cpu,lab-npu,fake-npu", "--model", "tiny-cnn",
                              "--scenario", "SingleStream,Offline", "--batch", "1", "--preset", "rapid",
                              "--data", str(data), "--out", "out", cwd=base)
    assert run.returncode == 0, run.stdout + run.stderr
    [run_dir] = (base / "out").iterdir()
    return run, run_dir, data


def test_each_job_runs_on_a_node_holding_its_hardware(two_node_lab, sweep):
    run, run_dir, _ = sweep
    found = read_results(run_dir.parent)
    assert len(found) == 6
    # the plan printed before the run says where each job goes
    assert "imagenet__tiny-cnn__lab-npu__Offline: measured on npu-box" in run.stderr
    assert "fake-npu__SingleStream: prepared, stood in for and estimated on" in run.stderr
    for name, r in found.items():
        node = r["node"]
        assert node["ray_node_id"] in {two_node_lab.node_id(n) for n in ("alpha", "npu-box")}
        assert node["name"] in ("alpha", "npu-box") and node["hostname"]
        backend = r["backend"]["id"]
        if backend == "lab-npu":  # only npu-box holds the test NPU, and there it is measured
            assert node["name"] == "npu-box", name
            assert r["backend"]["available"] and r["backend"]["accelerator"] == "test NPU (PyTorch eager)"
            assert r["latency"]["kind"] == "measured" and r["validity"]["result"] == "VALID"
        elif backend == "fake-npu":  # no node holds it: prepared, stood in for and estimated, as locally
            assert not r["backend"]["available"] and r["latency"] is None
            assert r["estimate"]["kind"] == "estimated" and r["accuracy"]["executor"].startswith("stand-in")
        else:
            assert r["latency"]["kind"] == "measured" and r["accuracy"]["samples"] == 12


def test_no_node_runs_a_latency_job_beside_another_job(sweep):
    _, run_dir, _ = sweep
    by_node: dict[str, list] = {}
    for node, start, end, timed, name in spans(read_results(run_dir.parent)):
        by_node.setdefault(node, []).append((start, end, timed, name))
    for node, jobs in by_node.items():
        for i, (start, end, timed, name) in enumerate(jobs):
            for other_start, other_end, other_timed, other in jobs[i + 1:]:
                overlap = start < other_end and other_start < end
                assert not (overlap and (timed or other_timed)), f"{name} and {other} overlapped on node {node[:8]}"


def test_artifacts_are_built_once_and_shipped(two_node_lab, sweep):
    run, run_dir, _ = sweep
    # one build for the two onnxruntime-cpu jobs (SingleStream, Offline); the other backends keep the module in memory
    assert "artifacts: 1 build(s) shipped to 2 job(s)" in run.stderr
    onnx = [r for r in read_results(run_dir.parent).values() if r["backend"]["id"] == "onnxruntime-cpu"]
    assert len(onnx) == 2
    for r in onnx:  # neither job exported the model: each found the shipped file in its node's cache
        assert r["backend"]["artifact"]["cached"] is True
        assert r["backend"]["artifact"]["path"].startswith(two_node_lab.envs[r["node"]["name"]]["MNV4SUITE_CACHE"])
    assert onnx[0]["backend"]["artifact"]["sha256"] == onnx[1]["backend"]["artifact"]["sha256"]


def test_results_have_the_local_layout_and_pass_validate(sweep, run_cli, tmp_path):
    _, run_dir, data = sweep
    local = run_cli("run", "--backend", "onnxruntime-cpu", "--model", "tiny-cnn", "--preset", "rapid",
                    "--data", str(data), "--out", "local")
    assert local.returncode == 0, local.output
    [local_run] = (tmp_path / "local").iterdir()

    def layout(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    job = "imagenet__tiny-cnn__onnxruntime-cpu__SingleStream"
    assert layout(run_dir / job) == layout(local_run / job)
    assert (run_dir / "run.json").is_file() and (local_run / "run.json").is_file()
    assert results.read(run_dir / job / "result.json")["node"]["ray_node_id"]
    assert results.read(local_run / job / "result.json")["node"]["ray_node_id"] is None

    submission = tmp_path / "submission"
    for job_dir in run_dir.iterdir():
        if "onnxruntime-cpu" in job_dir.name:
            shutil.copytree(job_dir, submission / run_dir.name / job_dir.name)
    (submission / subs.SUBMISSION_FILE).write_text(SUBMISSION_YAML)
    verdict = subs.validate_submission(submission, subs.get_rules("development"))
    assert verdict.accepted, verdict.all_reasons()


def test_resume_runs_only_what_is_missing(two_node_lab, sweep, tmp_path):
    _, run_dir, _ = sweep
    copy = tmp_path / "out" / run_dir.name
    shutil.copytree(run_dir, copy)
    missing = copy / "imagenet__tiny-cnn__lab-npu__Offline"
    (missing / "result.json").unlink()
    shutil.rmtree(missing / "loadgen")
    kept = {p: p.read_bytes() for p in copy.glob("*/result.json")}

    run = two_node_lab.driver("--resume", str(copy), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"resuming {copy.name}: 5 of 6 job(s) already have a valid result" in run.stderr
    assert "[6/6] tiny-cnn on lab-npu (Offline" in run.stderr and "[5/6]" not in run.stderr
    for path, data in kept.items():
        assert path.read_bytes() == data, f"{path.parent.name} was run again"
    again = results.read(missing / "result.json")
    assert again["node"]["name"] == "npu-box" and again["run_id"] == copy.name


def test_node_pins_every_job_to_one_node(two_node_lab, tmp_path):
    run = two_node_lab.driver("--node", "alpha", "--backend", "lab-npu", "--model", "tiny-cnn", "--preset", "rapid",
                              "--out", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    [r] = read_results(tmp_path / "out").values()
    # alpha holds no NPU: the job is prepared there and labelled, never measured elsewhere
    assert r["node"]["name"] == "alpha" and r["backend"]["available"] is False and r["latency"] is None
    unknown = two_node_lab.driver("--node", "nowhere", "--backend", "lab-npu", "--model", "tiny-cnn", cwd=tmp_path)
    assert unknown.returncode != 0 and "--node nowhere: no lab node has that name" in unknown.stderr
    assert "alpha" in unknown.stderr and "Traceback" not in unknown.stderr


def test_lab_nodes_lists_every_node_and_its_hardware(two_node_lab, tmp_path):
    import os
    import subprocess
    import sys

    from labkit import node_env

    proc = subprocess.run([sys.executable, "-m", "mnv4suite", "lab", "nodes", "--ray", two_node_lab.address],
                          cwd=tmp_path, env={**os.environ, **node_env(tmp_path / "cache")},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert set(lines) == {"alpha", "npu-box"}
    assert "hardware: host-cpu, test-npu;" in lines["npu-box"] and "lab-npu" in lines["npu-box"]
    assert "test-npu" not in lines["alpha"] and "measures: onnxruntime-cpu" in lines["alpha"]
