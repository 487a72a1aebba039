"""The lab's commands and pieces that need no cluster: advertised resources, job demands, node names,
artifacts checked on arrival, files coming home, and the messages for every misuse."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from mnv4suite import cli
from mnv4suite.api import BackendSpec, Requirement
from mnv4suite.cache import ArtifactCache
from mnv4suite.lab import commands, node as node_side
from mnv4suite.lab.resources import SHARED_SLOT, SLOT, Lab, Node, job_demand, measures, prepares


def test_resources_are_what_the_probes_find(run_cli, suite_env):
    plain = run_cli("lab", "resources", "--name", "bench-1")
    assert plain.returncode == 0, plain.output
    found = json.loads(plain.stdout)
    assert found[SLOT] == 1 and found["mnv4suite:node:bench-1"] == 1 and found["mnv4suite:hw:host-cpu"] == 1
    assert found[measures("pytorch-cpu")] == 1 and found[measures("onnxruntime-cpu")] == 1
    assert prepares("lab-npu") in found and measures("lab-npu") not in found  # its device is not here
    assert "mnv4suite:hw:test-npu" not in found and measures("fake-npu") not in found

    with_npu = run_cli("lab", "resources", "--name", "bench-1", env={**suite_env, "MNV4SUITE_TEST_NPU": "1"})
    found = json.loads(with_npu.stdout)
    assert found[measures("lab-npu")] == 1 and found["mnv4suite:hw:test-npu"] == 1


def test_a_latency_job_takes_the_whole_slot_and_others_share_it():
    assert job_demand("tflite-cpu", "performance", measured=True) == {measures("tflite-cpu"): 0.001, SLOT: 1.0}
    assert job_demand("tflite-cpu", "both", measured=True)[SLOT] == 1.0
    assert job_demand("tflite-cpu", "accuracy", measured=True)[SLOT] == SHARED_SLOT
    # no node holds the device: prepared, stood in for and estimated on a node with the packages
    assert job_demand("tflite-edgetpu", "performance", measured=False, pinned="pi") == {
        prepares("tflite-edgetpu"): 0.001, SLOT: SHARED_SLOT, "mnv4suite:node:pi": 0.001}


def _node(node_id, name, host="box", address="10.0.0.1", extra=()):
    resources = {SLOT: 1.0, f"mnv4suite:node:{name}": 1.0, prepares("tflite-edgetpu"): 1.0,
                 **{measures(b): 1.0 for b in extra}}
    return Node(id=node_id, hostname=host, address=address, resources=resources)


def test_the_lab_answers_the_planner_for_all_its_nodes():
    edgetpu = BackendSpec(id="tflite-edgetpu", framework="tflite", delegate="edgetpu", precision="int8",
                          hardware="pixel8_edgetpu", implementation="x:Y")
    lab = Lab([_node("aa" * 28, "head", address="10.0.0.1"),
               _node("bb" * 28, "coral", host="pi", address="10.0.0.2", extra=["tflite-edgetpu"]),
               Node(id="cc" * 28, hostname="plain", address="10.0.0.3", resources={"CPU": 4.0})])  # not a lab node
    assert [n.name for n in lab.nodes] == ["head", "coral"]
    assert lab.probe(edgetpu) and lab.probe(edgetpu).notes == ("on coral",)
    assert lab.resolve("coral") == lab.resolve("bbbbbb") == lab.resolve("pi") == lab.resolve("10.0.0.2") == "coral"
    lab.pinned = "head"
    found = lab.probe(edgetpu)
    assert not found and "no node 'head' holds pixel8_edgetpu" in found.explain()
    assert lab.requirements(edgetpu)  # head can still convert for it
    from mnv4suite.errors import UserError

    with pytest.raises(UserError, match="matches 2 nodes"):
        Lab([_node("aa" * 28, "x", host="twin"), _node("bb" * 28, "y", host="twin")]).resolve("twin")
    with pytest.raises(UserError, match="no lab node has that name.*head"):
        lab.resolve("nowhere")


def test_shipped_artifacts_are_checked_on_arrival(tmp_path):
    key = {"model": "tiny-cnn", "format": "onnx"}
    data = b"an exported model"
    good = {"key": key, "suffix": ".onnx", "sha256": hashlib.sha256(data).hexdigest(), "data": data}
    damaged = {**good, "key": {**key, "format": "tflite"}, "data": b"an exported modeL"}
    cache = ArtifactCache(tmp_path)
    notes = node_side.install_artifacts({"entries": [good, damaged]}, cache)
    assert len(notes) == 1 and "arrived damaged" in notes[0] and "building it on this node instead" in notes[0]

    def must_not_build(tmp):
        raise AssertionError("the installed artifact should be a cache hit")

    path, digest, cached = cache.fetch_or_build(key, ".onnx", must_not_build)
    assert cached and path.read_bytes() == data and digest == good["sha256"]
    assert not cache.entry_dir(damaged["key"]).joinpath("artifact.onnx").exists()


def test_files_come_home_inside_the_job_folder_only(tmp_path):
    job_dir = tmp_path / "run" / "job"
    node_side.bring_home({"result.json": b"{}", "loadgen/mlperf_log_summary.txt": b"ok"}, job_dir)
    assert (job_dir / "loadgen" / "mlperf_log_summary.txt").read_bytes() == b"ok"
    for name in ("../escape.txt", "/etc/evil", "loadgen/../../x"):
        with pytest.raises(ValueError, match="outside the job folder"):
            node_side.bring_home({name: b"x"}, job_dir)
    assert not (tmp_path / "run" / "escape.txt").exists() and not (tmp_path / "x").exists()


def test_join_starts_ray_with_the_advertised_resources():
    head = commands.ray_start_command(None, True, 6380, {SLOT: 1.0})
    assert head[1:4] == ["start", "--head", "--port=6380"] and head[-1] == '--resources={"mnv4suite:slot": 1.0}'
    node = commands.ray_start_command("10.0.0.5:6379", False, 6379, {SLOT: 1.0})
    assert node[1:3] == ["start", "--address=10.0.0.5:6379"]


@pytest.mark.parametrize("argv, message", [
    (["lab", "join"], "give the head node's ADDRESS, or --head"),
    (["run", "--node", "pi", "--backend", "pytorch-cpu"], "give the lab's address too (--ray ADDRESS)"),
    (["run", "--resume", "nowhere"], "no run.json there"),
    (["run", "--resume", "somewhere", "--model", "mnv4-conv-s"], "drop --model"),
])
def test_misuse_is_one_clear_message(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_without_ray_the_lab_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(commands, "RAY", Requirement("ray_is_not_installed_here", commands.RAY.install))
    for argv in (["run", "--ray", "auto", "--backend", "pytorch-cpu"], ["lab", "nodes"], ["lab", "join", "--head"]):
        assert cli.main(argv) != 0
        err = capsys.readouterr().err
        assert "pip install -c constraints.txt 'mnv4suite[ray]'" in err, err


def test_local_runs_never_import_ray(suite_env):
    code = ("import sys; from mnv4suite import cli, runner, worker, results, harness; "
            "from mnv4suite.lab import commands, resources, node; print('ray' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], env=suite_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
