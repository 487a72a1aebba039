"""Result files: schema validation and crash-safe writing."""

from __future__ import annotations

import copy
import json

import pytest

from mnv4suite import results
from mnv4suite.errors import UserError
from mnv4suite.fileio import atomic_write_json

SHA = "0" * 64


def sample_result() -> dict:
    return {
        "schema_version": "1.0",
        "run_id": "r1",
        "created": "2026-11-23T10:00:00+00:00",
        "status": "complete",
        "task": {"id": "imagenet", "dataset": {"synthetic": True, "path": None, "samples": 64, "skipped": 0, "skipped_files": []}},
        "model": {"id": "mnv4-conv-s", "resolution": 224, "params": 3774024, "macs": 186000000, "precision": "fp32",
                  "weights": "random-init (seed 0)", "checksum": SHA, "provider": "mnv4suite.reference_models.plugin",
                  "calibration": None},
        "backend": {"id": "pytorch-cpu", "framework": "torch", "framework_version": "2.13.0", "delegate": "cpu",
                    "available": True, "unavailable_because": [],
                    "accelerator": "CPU (PyTorch eager, 2 threads)", "cpu_fallback_ops": [], "hardware": "host-cpu",
                    "provider": "mnv4suite.plugins.pytorch",
                    "artifact": {"kind": "torch-eager", "path": None, "sha256": None, "cached": False, "details": {}}},
        "scenario": "SingleStream",
        "mode": "performance",
        "preset": {"name": "rapid", "min_query_count": 64, "min_duration_ms": 6000},
        "seeds": {"qsl": 1, "sample_index": 2, "schedule": 3},
        "latency": {"kind": "measured", "queries": 100, "mean_ms": 5.0, "min_ms": 4.0, "max_ms": 9.0, "p50_ms": 5.0,
                    "p90_ms": 6.0, "p99_ms": 8.0, "early_stopping_p90_ms": 6.2, "samples_per_s": 200.0, "warmup_ms": 4.1},
        "estimate": None,
        "accuracy": None,
        "validity": {"result": "VALID", "min_duration_met": True, "min_queries_met": True, "perf_constraints_met": True,
                     "early_stopping_met": True, "loadgen_errors": 0},
        "loadgen": {"version": "6.0.17", "log_dir": "loadgen", "logs": {"mlperf_log_detail.txt": SHA}},
        "system": {"cpu": "x", "cores": 2, "machine": "x86_64", "os": "Linux", "python": "3.11.7", "frameworks": {"torch": "2.13.0"}},
        "suite": {"version": "0.1.0", "git_commit": "unknown", "plugins": {}},
    }


def test_sample_result_is_valid():
    results.validate(sample_result())


def test_a_run_with_skipped_samples_is_partial():
    result = copy.deepcopy(sample_result())
    result["status"] = "partial"
    result["task"]["dataset"].update(skipped=1, skipped_files=[["/data/broken.JPEG", "image file is truncated"]])
    results.validate(result)


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda r: r.pop("seeds"), "seeds"),
        (lambda r: r["latency"].update(kind="estimated"), "latency"),
        (lambda r: r["model"].update(precision="fp64"), "model/precision"),
        (lambda r: r["model"].update(checksum="abc"), "model/checksum"),
        (lambda r: r.update(status="unfinished"), "status"),
        (lambda r: r.update(status="partial"), "task/dataset/skipped"),  # partial: something was skipped
        (lambda r: r["task"]["dataset"].update(skipped=2), "task/dataset/skipped"),  # complete: nothing was
        (lambda r: r.update(scenario="Server"), "scenario"),
        (lambda r: r["backend"].pop("accelerator"), "backend"),
    ],
)
def test_schema_rejects_incomplete_or_wrong_results(mutate, where):
    result = copy.deepcopy(sample_result())
    mutate(result)
    with pytest.raises(results.InvalidResultError) as info:
        results.validate(result)
    assert where in str(info.value)


def test_invalid_result_is_never_written(tmp_path):
    bad = sample_result()
    bad.pop("latency")
    with pytest.raises(results.InvalidResultError):
        results.write(bad, tmp_path / "result.json")
    assert not list(tmp_path.iterdir())


def test_a_result_too_large_to_read_back_is_never_written(tmp_path):
    """What ``write`` writes, ``read`` takes back: a result over MAX_RESULT_BYTES would be a measurement
    no report, resume or validate could ever read."""
    huge = sample_result()
    huge["status"] = "partial"
    huge["task"]["dataset"].update(skipped=1, skipped_files=[["x" * results.MAX_RESULT_BYTES, "too long"]])
    with pytest.raises(ValueError, match="more than the 4194304 a reader accepts"):
        results.write(huge, tmp_path / "result.json")
    assert not list(tmp_path.iterdir())


def test_an_unreadable_result_fails_its_job_not_the_run(tmp_path):
    """A damaged result.json is that job's failure, kept on disk for --resume to put aside; the run goes on."""
    from mnv4suite.runner import read_outcome

    (tmp_path / "result.json").write_text("{not json")
    outcome = read_outcome(job=None, job_dir=tmp_path)
    assert not outcome.ok and outcome.error["kind"] == "UnreadableResult" and not outcome.error["user_error"]
    assert "cannot read result file" in outcome.error["message"] and (tmp_path / "result.json").exists()


def test_crash_while_writing_keeps_the_old_file_whole(tmp_path):
    path = tmp_path / "result.json"
    results.write(sample_result(), path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        atomic_write_json(path, {"unserialisable": object()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    assert results.read(path)["run_id"] == "r1"


def test_schema_ships_with_the_package():
    schema = results.schema()
    assert schema["properties"]["schema_version"]["enum"] == ["1.0", "1.1", "1.2", "1.3", results.SCHEMA_VERSION] == ["1.0", "1.1", "1.2", "1.3", "1.4"]
    assert json.dumps(schema)


def test_a_1_0_result_still_reads_and_1_1_adds_optional_fields():
    """Results written before 1.1 stay valid; the 1.1 fields are optional so either version validates."""
    old = sample_result()
    assert old["schema_version"] == "1.0" and not results.schema_errors(old)
    new = sample_result()
    new["schema_version"] = "1.1"
    new["suite"]["git_dirty"] = False
    new["system"]["device"] = {"manufacturer": "Google", "model": "Pixel 8", "soc": "Tensor G3"}
    new["backend"]["vendor"] = "Google"
    assert not results.schema_errors(new)
    new["schema_version"] = "2.0"
    assert results.schema_errors(new)


@pytest.mark.parametrize("value, expected", [
    (float("nan"), "top1: nan is not a finite number"),
    (150.0, "150.0 is greater than the maximum of 100"),
    (-1.0, "-1.0 is less than the minimum of 0"),
])
def test_impossible_accuracy_figures_are_refused(value, expected):
    result = sample_result()
    result["accuracy"] = {"kind": "measured", "samples": 10, "metrics": {"top1": value}}
    assert any(expected in e for e in results.schema_errors(result)), results.schema_errors(result)


def test_a_result_file_with_nan_is_refused_by_name(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(sample_result()).replace('"preset": {', '"nan_here": NaN, "preset": {', 1))
    with pytest.raises(UserError, match="NaN is not a number JSON allows"):
        results.read(path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50000 + "]" * 50000)
    with pytest.raises(UserError, match="nests too deep to read"):
        results.read(deep)
