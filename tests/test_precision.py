"""Precision variants against fp32 of the same weights in the same run: planning and comparison."""

from __future__ import annotations

import json

from mnv4suite import precision
from mnv4suite.api import Availability, BackendSpec
from mnv4suite.worker import Job

SPECS = {
    "cpu": BackendSpec(id="cpu", framework="f", delegate="cpu", precision="fp32", hardware="host-cpu",
                       implementation="x:Y"),
    "cpu-int8": BackendSpec(id="cpu-int8", framework="f", delegate="cpu", precision="int8", hardware="host-cpu",
                            implementation="x:Y", in_default_run=False, fp32_reference="cpu"),
    "gpu-fp16": BackendSpec(id="gpu-fp16", framework="f", delegate="gpu", precision="fp16", hardware="cuda-gpu",
                            implementation="x:Y", in_default_run=False, fp32_reference="gpu"),
    "gpu": BackendSpec(id="gpu", framework="f", delegate="gpu", precision="fp32", hardware="cuda-gpu",
                       implementation="x:Y"),
    "odd-int8": BackendSpec(id="odd-int8", framework="f", delegate="cpu", precision="int8", hardware="host-cpu",
                            implementation="x:Y", fp32_reference="not-installed"),
}


def probe(spec: BackendSpec) -> Availability:
    return Availability.missing("no GPU") if spec.hardware == "cuda-gpu" else Availability.ok()


def job(model: str, backend: str, mode: str = "both", scenario: str = "SingleStream", batch: int = 1) -> Job:
    return Job(task="imagenet", model=model, backend=backend, mode=mode, scenario=scenario, batch=batch,
               data="/data", out_dir=f"/runs/r/{model}__{backend}")


def test_a_variant_measuring_accuracy_gets_its_fp32_reference_once_per_model():
    jobs = [job("m1", "cpu-int8"), job("m1", "cpu-int8", scenario="Offline", batch=8), job("m2", "cpu-int8")]
    added, notes = precision.reference_jobs(jobs, SPECS.get, probe)
    assert [(j.model, j.backend, j.mode, j.scenario, j.batch, j.data) for j in added] == [
        ("m1", "cpu", "accuracy", "SingleStream", 1, "/data"), ("m2", "cpu", "accuracy", "SingleStream", 1, "/data")]
    assert notes == ["adding cpu accuracy jobs: the fp32 reference of cpu-int8 (same weights, same samples)"]


def test_no_reference_job_where_it_would_add_nothing():
    assert precision.reference_jobs([job("m1", "cpu-int8", mode="performance")], SPECS.get, probe) == ([], [])
    assert precision.reference_jobs([job("m1", "cpu-int8"), job("m1", "cpu")], SPECS.get, probe) == ([], [])
    assert precision.reference_jobs([job("m1", "cpu")], SPECS.get, probe) == ([], [])  # fp32 itself
    assert precision.reference_jobs([job("m1", "gpu-fp16")], SPECS.get, probe) == ([], [])  # variant not measured


def test_a_reference_that_is_not_installed_is_named():
    added, notes = precision.reference_jobs([job("m1", "odd-int8")], SPECS.get, probe)
    assert added == [] and notes == ["odd-int8's accuracy is not compared with fp32: its reference backend "
                                     "'not-installed' is not installed"]


def result(backend: str, top1: float, checksum: str = "a" * 64, samples: int = 12, precision_: str = "fp32") -> dict:
    return {"task": {"id": "imagenet", "dataset": {"synthetic": False, "path": "/data", "samples": samples}},
            "model": {"id": "m1", "checksum": checksum, "precision": precision_, "calibration": None},
            "backend": {"id": backend}, "accuracy": {"metrics": {"top1": top1, "top5": 90.0}}}


def test_compare_pairs_only_the_same_weights_and_samples():
    rows = precision.compare([result("cpu-int8", 70.5, precision_="int8"), result("cpu", 71.0)], SPECS.get)
    assert rows == [{"task": "imagenet", "model": "m1", "backend": "cpu-int8", "precision": "int8",
                     "reference": "cpu", "samples": 12, "calibration": None,
                     "metrics": {"top1": {"value": 70.5, "fp32": 71.0, "delta": -0.5},
                                 "top5": {"value": 90.0, "fp32": 90.0, "delta": 0.0}}}]
    assert "-0.50" in precision.render(rows)
    assert precision.compare([result("cpu-int8", 70.5), result("cpu", 71.0, checksum="b" * 64)], SPECS.get) == []
    assert precision.compare([result("cpu-int8", 70.5), result("cpu", 71.0, samples=50)], SPECS.get) == []
    assert precision.compare([result("cpu-int8", 70.5), result("unknown", 71.0)], SPECS.get) == []


def test_run_of_a_variant_with_data_reports_accuracy_against_fp32(run_cli, tmp_path, image_folder):
    run = run_cli("run", "--backend", "pytorch-cpu-bf16", "--model", "tiny-cnn", "--preset", "rapid",
                  "--data", str(image_folder), "--out", "out")
    assert run.returncode == 0, run.output
    assert "note: adding pytorch-cpu accuracy jobs: the fp32 reference of pytorch-cpu-bf16" in run.stderr
    assert "[2/2] tiny-cnn on pytorch-cpu (SingleStream, accuracy" in run.stderr
    [run_dir] = (tmp_path / "out").iterdir()
    [row] = json.loads((run_dir / precision.COMPARISON_FILE).read_text())
    assert (row["backend"], row["reference"], row["precision"], row["samples"]) == (
        "pytorch-cpu-bf16", "pytorch-cpu", "bf16", 12)
    bf16, fp32 = (json.loads((run_dir / f"imagenet__tiny-cnn__{b}__SingleStream" / "result.json").read_text())
                  for b in ("pytorch-cpu-bf16", "pytorch-cpu"))
    assert fp32["mode"] == "accuracy" and fp32["latency"] is None
    top1 = row["metrics"]["top1"]
    assert (top1["value"], top1["fp32"]) == (bf16["accuracy"]["metrics"]["top1"], fp32["accuracy"]["metrics"]["top1"])
    assert "accuracy against fp32 of the same weights" in run.stdout and f"{top1['delta']:+.2f}" in run.stdout


def test_a_variant_is_its_backend_at_another_precision():
    base = BackendSpec(id="rt-cpu", framework="f", delegate="cpu", precision="fp32", hardware="host-cpu",
                       implementation="x:Y", offline_batch=8, ships_artifact=False, supports=lambda m: None)
    int8 = base.variant("int8", summary="int8 on the same runtime", implementation="x:Z")
    assert (int8.id, int8.precision, int8.implementation, int8.fp32_reference, int8.in_default_run) == (
        "rt-cpu-int8", "int8", "x:Z", "rt-cpu", False)
    assert (int8.offline_batch, int8.ships_artifact, int8.supports, int8.hardware) == (
        8, False, base.supports, "host-cpu")
    assert base.variant("bf16", summary="s").implementation == "x:Y"
