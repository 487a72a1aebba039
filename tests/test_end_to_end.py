"""`mnv4suite run` end to end on the test CNN: real backends, real LoadGen, schema-valid results."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mnv4suite import loadgen_log, results
from mnv4suite.plugins.devices import PROFILES


def result_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))


def test_onnxruntime_rapid_run_writes_a_valid_result_with_loadgen_figures(run_cli, tmp_path):
    run = run_cli("run", "--task", "imagenet", "--backend", "onnxruntime-cpu", "--model", "tiny-cnn", "--preset", "rapid")
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)  # validates against the schema
    assert result["backend"]["id"] == "onnxruntime-cpu"
    assert result["backend"]["artifact"]["kind"] == "onnx" and not result["backend"]["artifact"]["cached"]
    assert result["latency"]["kind"] == "measured"
    assert result["latency"]["queries"] >= 64
    assert result["validity"]["result"] == "VALID"
    assert result["validity"]["min_duration_met"] and result["validity"]["min_queries_met"]
    assert result["task"]["dataset"]["synthetic"] is True and result["accuracy"] is None
    assert result["preset"] == {"name": "rapid", "min_query_count": 64, "min_duration_ms": 6000}
    assert set(result["seeds"]) == {"qsl", "sample_index", "schedule"}
    assert {"onnxruntime", "torch"} <= set(result["system"]["frameworks"])

    # every figure is LoadGen's own, and the raw logs sit beside the result
    log_dir = path.parent / result["loadgen"]["log_dir"]
    detail = loadgen_log.read_detail(log_dir)
    assert result["latency"]["p90_ms"] == detail["result_90.00_percentile_latency_ns"] / 1e6
    assert detail["effective_qsl_rng_seed"] == result["seeds"]["qsl"]
    assert "mlperf_log_summary.txt" in result["loadgen"]["logs"]
    assert "p90 ms" in run.stdout and "tiny-cnn" in run.stdout

    # the second run reuses the exported model
    again = run_cli("run", "--backend", "onnxruntime-cpu", "--model", "tiny-cnn", "--preset", "rapid")
    assert again.returncode == 0, again.output
    [second_path] = set(result_files(tmp_path)) - {path}
    second = results.read(second_path)
    assert second["backend"]["artifact"]["cached"] is True
    assert second["backend"]["artifact"]["sha256"] == result["backend"]["artifact"]["sha256"]


def test_accuracy_and_performance_on_a_generated_folder(run_cli, tmp_path, image_folder):
    (tmp_path / "run.yaml").write_text(
        f"task: imagenet\nbackend: pytorch-cpu\nmodel: tiny-cnn\npreset: rapid\ndata: {image_folder}\nscenario: offline\n"
    )
    run = run_cli("run", "--config", "run.yaml")
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    assert result["mode"] == "both" and result["scenario"] == "Offline"
    assert result["accuracy"]["samples"] == 12
    assert set(result["accuracy"]["metrics"]) == {"top1", "top5"}
    assert result["latency"]["samples_per_s"] > 0
    payloads = loadgen_log.read_accuracy_payloads(path.parent / "loadgen")
    assert sorted(payloads) == list(range(12))


def test_result_files_are_complete_json(run_cli, tmp_path):
    run = run_cli("run", "--backend", "pytorch-cpu", "--model", "tiny-cnn", "--preset", "rapid", "--out", "out")
    assert run.returncode == 0, run.output
    [path] = sorted((tmp_path / "out").glob("*/*/result.json"))
    assert json.loads(path.read_text())["status"] == "complete"
    assert not list(path.parent.glob(".*.tmp"))


def test_missing_device_still_prepares_stands_in_and_estimates(run_cli, tmp_path, image_folder):
    run = run_cli("run", "--backend", "fake-npu", "--model", "tiny-cnn", "--preset", "rapid", "--data", str(image_folder))
    assert run.returncode == 0, run.output
    assert "fake-npu cannot run here" in run.stderr and "/dev/fake_npu0" in run.stderr
    [path] = result_files(tmp_path)
    result = results.read(path)
    assert result["backend"]["available"] is False
    assert result["backend"]["unavailable_because"] == ["no accelerator device node /dev/fake_npu0"]
    assert result["latency"] is None, "a missing device is never measured"
    assert result["validity"]["result"] == "ACCURACY-ONLY" and result["mode"] == "accuracy"
    assert result["accuracy"]["executor"].startswith("stand-in: CPU")
    assert result["estimate"]["kind"] == "estimated" and result["estimate"]["device"] == "pixel8_edgetpu"
    assert result["estimate"]["ms"] > 0 and result["estimate"]["profile_source"]
    calibration = result["model"]["calibration"]
    assert calibration["synthetic"] is False and calibration["samples"] == 12
    assert str(image_folder) in calibration["source"]
    assert "estimated, pixel8_edgetpu" in run.stdout
    # never without its band: the profile's held-out error, in the result and the table
    assert result["estimate"]["typical_error_pct"] > 0 and result["estimate"]["cost_model"].startswith("roofline + ")
    # the estimate carries the Pixel 8 EdgeTPU profile's terms: a fixed time per inference, a dispatch time
    # per layer where its fit found one, and a peak of its own for 7x7 depthwise convs
    edgetpu = PROFILES["pixel8_edgetpu"]
    assert result["estimate"]["overhead_ms"] == pytest.approx(edgetpu.overhead_s * 1e3) and edgetpu.overhead_s > 0
    assert result["estimate"]["dispatch_ms_per_layer"] == pytest.approx(edgetpu.dispatch_s * 1e3)
    assert result["estimate"]["class_peaks"] == pytest.approx(dict(edgetpu.class_peaks))
    assert "general_depthwise" in result["estimate"]["class_peaks"]
    assert result["estimate"]["cpu_fallback_layers"] == []  # its delegate takes every op the model has
    assert f"±{result['estimate']['typical_error_pct']:.0f}% (estimated, pixel8_edgetpu)" in run.stdout


def test_missing_device_without_data_gives_only_the_estimate(run_cli, tmp_path):
    run = run_cli("run", "--backend", "fake-npu", "--model", "tiny-cnn", "--preset", "rapid")
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    assert result["mode"] == "none" and result["accuracy"] is None and result["latency"] is None
    assert result["validity"]["result"] == "NOT-MEASURED"
    calibration = result["model"]["calibration"]
    assert calibration["synthetic"] is True and calibration["samples"] == 4  # noise: a few, and labelled so
    assert "no --data given, so int8 accuracy means nothing" in calibration["source"]
    assert result["loadgen"]["logs"] == {}
    assert re.search(r"1 of 1 job\(s\) complete in \d+ min \d\d s", run.stderr)


def test_skipped_files_make_a_partial_result_and_stop_otherwise(run_cli, tmp_path, image_folder, suite_env):
    broken = next(image_folder.glob("*/*.JPEG"))
    broken.write_bytes(broken.read_bytes()[:60])
    args = ("run", "--backend", "onnxruntime-cpu", "--model", "tiny-cnn", "--mode", "accuracy", "--data", str(image_folder))

    stopped = run_cli(*args)
    assert stopped.returncode != 0 and str(broken) in stopped.output and "--on-error skip" in stopped.output
    assert result_files(tmp_path) == []  # nothing is reported as if it were complete

    skipped = run_cli(*args, "--on-error", "skip")
    assert skipped.returncode == 0, skipped.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    assert result["status"] == "partial"
    dataset = result["task"]["dataset"]
    assert (dataset["samples"], dataset["skipped"], dataset["requested"]) == (11, 1, 12)
    assert dataset["skipped_files"][0][0] == str(broken)
    assert json.loads((path.parent / "skipped-files.json").read_text()) == dataset["skipped_files"]
    assert result["accuracy"]["samples"] == 11
    assert dataset["details"]["layout"] == "folders"

    # the second run finds the pre-processed pack: same skips, nothing decoded again
    again = run_cli(*args, "--on-error", "skip")
    assert again.returncode == 0, again.output
    [second] = set(result_files(tmp_path)) - {path}
    details = results.read(second)["task"]["dataset"]["details"]
    assert details["input_cache"]["warm"] is True and results.read(second)["task"]["dataset"]["skipped"] == 1


def test_thousands_of_unusable_files_are_kept_beside_a_result_that_stays_readable(run_cli, tmp_path, image_folder):
    """A damaged copy of ImageNet can hold tens of thousands of unusable files: the result lists the first
    hundred, skipped-files.json beside it every one, and the result can still be read back."""
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    first_class = sorted(p for p in data.iterdir() if p.is_dir())[0]
    for i in range(150):
        (first_class / f"broken_{i:03d}.JPEG").write_bytes(b"\xff\xd8 not a JPEG")
    run = run_cli("run", "--backend", "onnxruntime-cpu", "--model", "tiny-cnn", "--mode", "accuracy",
                  "--data", str(data), "--on-error", "skip")
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    dataset = results.read(path)["task"]["dataset"]
    every = json.loads((path.parent / "skipped-files.json").read_text())
    assert dataset["skipped"] == len(every) == 150 and len(dataset["skipped_files"]) == 100
    assert dataset["skipped_files"] == every[:100] and all(name.endswith(".JPEG") for name, _ in every)


def test_threads_are_a_recorded_setting(run_cli, tmp_path):
    run = run_cli("run", "--backend", "pytorch-cpu,onnxruntime-cpu", "--model", "tiny-cnn", "--preset", "rapid",
                  "--threads", "1")
    assert run.returncode == 0, run.output
    for path in result_files(tmp_path):
        backend = results.read(path)["backend"]
        assert backend["threads"] == 1 and backend["threads_requested"] == 1, backend["id"]
        assert "1 threads" in backend["accelerator"]

    default = run_cli("run", "--backend", "onnxruntime-cpu", "--model", "tiny-cnn", "--preset", "rapid", "--out", "d")
    assert default.returncode == 0, default.output
    [path] = sorted((tmp_path / "d").glob("*/*/result.json"))
    backend = results.read(path)["backend"]
    import os

    assert backend["threads_requested"] is None and backend["threads"] == len(os.sched_getaffinity(0))


def test_offline_batches_answer_every_sample_with_the_same_accuracy(run_cli, tmp_path, image_folder):
    """12 images at batch 5: two full batches and a last one padded from 2 samples to 5."""
    found = {}
    for batch in ("1", "5"):
        run = run_cli("run", "--backend", "pytorch-cpu,onnxruntime-cpu", "--model", "tiny-cnn", "--scenario", "Offline",
                      "--mode", "accuracy", "--data", str(image_folder), "--batch", batch, "--out", f"b{batch}")
        assert run.returncode == 0, run.output
        for path in sorted((tmp_path / f"b{batch}").glob("*/*/result.json")):
            result = results.read(path)
            assert result["batch"] == int(batch)
            payloads = loadgen_log.read_accuracy_payloads(path.parent / "loadgen")
            assert sorted(payloads) == list(range(12))
            found[(result["backend"]["id"], batch)] = (result["accuracy"]["metrics"], payloads)
    for backend in ("pytorch-cpu", "onnxruntime-cpu"):
        assert found[(backend, "1")] == found[(backend, "5")], backend
    onnx = results.read(next((tmp_path / "b5").glob("*/*onnxruntime-cpu*/result.json")))
    assert onnx["backend"]["artifact"]["details"]["input_shape"] == [5, 3, 32, 32]  # exported at the batch size


def test_batch_is_for_offline_and_backends_that_batch(run_cli, tmp_path):
    run = run_cli("run", "--backend", "pytorch-cpu", "--model", "tiny-cnn", "--batch", "8")
    assert run.returncode != 0 and "batches are for the Offline scenario" in run.stderr
    run = run_cli("run", "--backend", "pytorch-cpu,fake-npu", "--model", "tiny-cnn", "--scenario", "Offline",
                  "--preset", "rapid")
    assert run.returncode == 0, run.output
    found = {r["backend"]["id"]: r for r in map(results.read, result_files(tmp_path))}
    assert found["pytorch-cpu"]["batch"] == 8  # the backend's own Offline default
    assert found["pytorch-cpu"]["validity"]["result"] == "VALID" and "samples/s at batch 8" in run.stderr
    assert found["fake-npu"]["batch"] == 1  # its sessions take batch 1
