"""`mnv4suite run --task coco` end to end on the test detector: the same AP from every fp32 backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnv4suite import loadgen_log, results

from coco_data import make_coco, truncate

pytest.importorskip("pycocotools", reason="pip install 'mnv4suite[coco]'")


def result_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))


@pytest.fixture
def coco(tmp_path):
    return make_coco(tmp_path / "coco", images=8, seed=3)


def test_fp32_backends_give_the_same_ap(run_cli, tmp_path, coco):
    # `--model tiny-cnn` names the backbone: the coco task runs the detector built on it
    run = run_cli("run", "--task", "coco", "--backend", "pytorch-cpu", "--backend", "onnxruntime-cpu",
                  "--model", "tiny-cnn", "--mode", "accuracy", "--data", str(coco.root))
    assert run.returncode == 0, run.output
    by_backend = {r["backend"]["id"]: r for r in map(results.read, result_files(tmp_path))}
    assert set(by_backend) == {"pytorch-cpu", "onnxruntime-cpu"}
    for result in by_backend.values():
        assert result["model"]["id"] == "tiny-det" and result["status"] == "complete"
        assert result["task"]["dataset"]["details"]["annotation_file"] == str(coco.annotation_file)
        assert result["accuracy"]["samples"] == 8
        assert {"ap", "ap50", "ap75"} <= set(result["accuracy"]["metrics"])
    # the random-init detector does find boxes, so equal AP is not just 0 == 0
    log_dir = result_files(tmp_path)[0].parent / "loadgen"
    assert sum(len(p) for p in loadgen_log.read_accuracy_payloads(log_dir).values()) > 0
    torch_ap = by_backend["pytorch-cpu"]["accuracy"]["metrics"]
    onnx_ap = by_backend["onnxruntime-cpu"]["accuracy"]["metrics"]
    assert torch_ap["ap50"] > 0  # some random boxes do hit the generated objects
    for key in torch_ap:
        assert abs(torch_ap[key] - onnx_ap[key]) <= 0.1, (key, torch_ap[key], onnx_ap[key])


def test_broken_image_skipped_and_counted(run_cli, tmp_path, coco):
    broken = truncate(coco, 2)
    run = run_cli("run", "--task", "coco", "--backend", "onnxruntime-cpu", "--model", "tiny-det",
                  "--mode", "accuracy", "--data", str(coco.root), "--on-error", "skip")
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    assert result["status"] == "partial" and result["accuracy"]["samples"] == 7
    assert result["task"]["dataset"]["skipped_files"][0][0] == str(broken)
    assert "partial: 1 skipped" in run.stdout


def test_classification_task_refuses_a_detector(run_cli, coco):
    run = run_cli("run", "--task", "imagenet", "--backend", "onnxruntime-cpu", "--model", "tiny-det")
    assert run.returncode != 0
    assert "tiny-det" in run.output and "classification" in run.output
