"""Faults on a real multi-node Ray cluster: nothing finished is lost. A job whose node died runs again
where its hardware still is, or fails with the reason, and --resume finishes it; one node's user error
fails only its jobs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from labkit import advertised, start_lab
from mnv4suite import results



def wait_for_job_on(workdir: Path, proc, timeout: float = 120.0) -> None:
    """Until a job folder appears in the node's work folder: a job is running there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if workdir.is_dir() and any(workdir.glob("mnv4suite-job-*/*/job.json")):
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise AssertionError(f"no job started under {workdir}")


@pytest.mark.slow
def test_a_node_dying_mid_sweep_loses_nothing(tmp_path):
    nodes = {name: {"MNV4SUITE_LAB_WORKDIR": str(tmp_path / f"work-{name}"),
                    **({"MNV4SUITE_TEST_NPU": "1"} if name != "alpha" else {})}
             for name in ("alpha", "npu-1", "npu-2")}
    for spec in nodes.values():
        Path(spec["MNV4SUITE_LAB_WORKDIR"]).mkdir()
    lab = start_lab(tmp_path, nodes)
    try:
        # 1. Two NPU nodes; one dies while running a job: the job runs again on the other one.
        proc = lab.driver("--backend", "lab-npu", "--model", "tiny-cnn", "--scenario", "SingleStream,Offline",
                          "--preset", "rapid", "--out", "out", cwd=tmp_path, background=True)
        wait_for_job_on(tmp_path / "work-npu-2", proc)
        lab.cluster.remove_node(lab.nodes.pop("npu-2"), allow_graceful=False)
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, output
        [run_dir] = (tmp_path / "out").iterdir()
        found = [results.read(p) for p in run_dir.glob("*/result.json")]
        assert len(found) == 2 and {r["node"]["name"] for r in found} == {"npu-1"}
        assert all(r["latency"]["kind"] == "measured" for r in found)

        # 2. The last NPU node dies mid-job: that job fails with the reason, the others finish.
        proc = lab.driver("--backend", "lab-npu,onnxruntime-cpu", "--model", "tiny-cnn", "--preset", "rapid",
                          "--out", "out2", cwd=tmp_path, background=True)
        wait_for_job_on(tmp_path / "work-npu-1", proc)
        lab.cluster.remove_node(lab.nodes.pop("npu-1"), allow_graceful=False)
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == 1, output
        [run_dir] = (tmp_path / "out2").iterdir()
        npu_job = run_dir / "imagenet__tiny-cnn__lab-npu__SingleStream"
        error = json.loads((npu_job / "error.json").read_text())
        assert error["kind"] == "NoNodeLeft" and "mnv4suite:measures:lab-npu" in error["message"]
        assert not (npu_job / "result.json").exists()
        onnx = results.read(run_dir / "imagenet__tiny-cnn__onnxruntime-cpu__SingleStream" / "result.json")
        assert onnx["latency"]["kind"] == "measured"
        assert f"mnv4suite run --resume {run_dir}" in output and "Traceback" not in output

        # 3. The NPU is back on a new node: --resume runs only the failed job.
        lab.nodes["npu-3"] = lab.cluster.add_node(num_cpus=2, resources=advertised("npu-3", lab.envs["npu-2"]),
                                                  env_vars=lab.envs["npu-2"])
        lab.cluster.wait_for_nodes()
        onnx_bytes = (run_dir / "imagenet__tiny-cnn__onnxruntime-cpu__SingleStream" / "result.json").read_bytes()
        run = lab.driver("--resume", str(run_dir), cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
        assert results.read(npu_job / "result.json")["node"]["name"] == "npu-3"
        assert json.loads((npu_job / "previous-error.json").read_text())["kind"] == "NoNodeLeft"
        assert (run_dir / "imagenet__tiny-cnn__onnxruntime-cpu__SingleStream" / "result.json").read_bytes() == onnx_bytes
    finally:
        lab.shutdown()



def test_one_nodes_user_error_fails_its_job_and_the_other_nodes_finish_theirs(tmp_path):
    """A local run stops at a user error, which the next jobs would repeat; in a lab it is one node's (its
    driver, its disk): the job running on the healthy node is not cancelled, and its result comes home."""
    lab = start_lab(tmp_path, {"good": {"MNV4SUITE_TEST_NPU": "1"},
                               "broken": {"MNV4SUITE_TEST_NPU": "1", "MNV4SUITE_TEST_NPU_FAULT": "driver"}})
    try:
        run = lab.driver("--backend", "lab-npu", "--model", "tiny-cnn", "--scenario", "SingleStream,Offline",
                         "--preset", "rapid", "--out", "out", cwd=tmp_path)
        output = run.stdout + run.stderr
        assert run.returncode == 2, output  # the user error is still the run's answer
        [run_dir] = (tmp_path / "out").iterdir()
        found = [results.read(p) for p in run_dir.glob("*/result.json")]
        errors = [json.loads(p.read_text()) for p in run_dir.glob("*/error.json")]
        assert len(found) + len(errors) == 2, output  # every job ended one way or the other: none cancelled
        assert found and {r["node"]["name"] for r in found} == {"good"}, output
        assert errors and all(e["kind"] == "UnavailableError" and "driver on this node" in e["message"]
                              for e in errors), errors
        assert f"mnv4suite run --resume {run_dir}" in output and "Traceback" not in output
    finally:
        lab.shutdown()


def _processes_under(path: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in text:
            found.append(text)
    return found


@pytest.mark.slow
def test_ctrl_c_cancels_the_lab_jobs_and_keeps_what_finished(tmp_path):
    import signal

    work = tmp_path / "work"
    work.mkdir()
    lab = start_lab(tmp_path, {"npu": {"MNV4SUITE_TEST_NPU": "1", "MNV4SUITE_LAB_WORKDIR": str(work)}})
    try:
        proc = lab.driver("--backend", "lab-npu", "--model", "tiny-cnn", "--scenario", "SingleStream,Offline",
                          "--preset", "rapid", "--out", "out", cwd=tmp_path, background=True)
        deadline = time.monotonic() + 180
        while not list((tmp_path / "out").glob("*/*/result.json")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.2)
        [finished] = list((tmp_path / "out").glob("*/*/result.json"))
        wait_for_job_on(work, proc)  # the second job is running on the node
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)[0]
        assert proc.returncode == 130, output
        assert "interrupted; finished results are kept" in output and "Traceback" not in output
        assert results.read(finished)["latency"]["kind"] == "measured"
        assert len(list((tmp_path / "out").glob("*/*/result.json"))) == 1
        deadline = time.monotonic() + 30  # the cancelled job's process on the node stops too
        while _processes_under(work) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _processes_under(work), _processes_under(work)
    finally:
        lab.shutdown()
