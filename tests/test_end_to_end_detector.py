"""The paper's detector through `mnv4suite run --task coco`: the headline EdgeTPU run and fp32 AP
agreement between backends. Slow: a 384 px RetinaNet-MNv4 per backend, int8 conversion included."""

from __future__ import annotations

from pathlib import Path

import pytest

import numpy as np

from mnv4suite import loadgen_log, results
from mnv4suite.tasks.coco.task import decode_payload

from coco_data import make_coco

pytest.importorskip("pycocotools", reason="pip install 'mnv4suite[coco]'")
pytestmark = pytest.mark.slow

DETECTOR = "retinanet-mnv4-conv-m"


def result_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return make_coco(tmp_path_factory.mktemp("data") / "coco", images=12, seed=7)


@pytest.fixture(scope="module")
def scoring_checkpoint(tmp_path_factory) -> Path:
    """Detector weights whose class logits spread around the prior and whose boxes move off their
    anchors, so the untrained detector reports boxes (a few thousand anchors pass the 0.05 threshold)
    and the backends' detections can be compared box by box, not as 0 AP against 0 AP."""
    import torch
    from safetensors.torch import save_file

    from mnv4suite.reference_models.retinanet import create_detector

    torch.manual_seed(0)
    model = create_detector(DETECTOR)
    x = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        for out, columns, spread in ((model.head.cls_out, slice(4, None), 1.5), (model.head.box_out, slice(0, 4), 0.2)):
            out.pw.weight.normal_()
            found = (model(x)[..., columns] - out.pw.bias.mean()).std()
            out.pw.weight.mul_(spread / found)  # logits: prior +- 1.5; box deltas: +- 0.2
    path = tmp_path_factory.mktemp("weights") / "retinanet_scoring.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_edgetpu_headline_run(run_cli, tmp_path, coco):
    run = run_cli("run", "--task", "coco", "--backend", "tflite-edgetpu", "--model", "mnv4-conv-m",
                  "--data", str(coco.root), timeout=1500)
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)  # schema-valid
    assert result["model"]["id"] == DETECTOR and result["model"]["precision"] == "int8"
    assert result["model"]["calibration"]["samples"] == 12 and not result["model"]["calibration"]["synthetic"]
    backend = result["backend"]
    assert backend["available"] is False and backend["unavailable_because"]
    assert backend["artifact"]["kind"].startswith("tflite") and backend["artifact"]["details"]["precision"] == "int8"
    # AP measured on the CPU interpreter running the same int8 file, and labelled so
    assert result["mode"] == "accuracy" and result["accuracy"]["kind"] == "measured"
    assert result["accuracy"]["executor"].startswith("stand-in:")
    assert {"ap", "ap50", "ap75"} <= set(result["accuracy"]["metrics"])
    # the EdgeTPU latency is an estimate, never a measurement
    assert result["latency"] is None and result["validity"]["result"] == "ACCURACY-ONLY"
    assert result["estimate"]["kind"] == "estimated" and result["estimate"]["device"] == "pixel8_edgetpu"
    assert result["estimate"]["ms"] > 0
    assert "estimated" in run.stdout


def test_fp32_backends_agree_on_ap(run_cli, tmp_path, coco, scoring_checkpoint):
    run = run_cli("run", "--task", "coco", "--backend", "pytorch-cpu,onnxruntime-cpu", "--model", DETECTOR,
                  "--mode", "accuracy", "--data", str(coco.root), "--weights", str(scoring_checkpoint), timeout=1500)
    assert run.returncode == 0, run.output
    paths = {results.read(p)["backend"]["id"]: p for p in result_files(tmp_path)}
    torch_ap, onnx_ap = (results.read(paths[b])["accuracy"]["metrics"] for b in ("pytorch-cpu", "onnxruntime-cpu"))
    for key in torch_ap:
        assert abs(torch_ap[key] - onnx_ap[key]) <= 0.1, (key, torch_ap[key], onnx_ap[key])  # 0.001 as a fraction

    # Untrained boxes rarely hit an object, so compare what AP is computed from: the detections
    # LoadGen logged for each image, box by box.
    torch_log, onnx_log = (loadgen_log.read_accuracy_payloads(paths[b].parent / "loadgen")
                           for b in ("pytorch-cpu", "onnxruntime-cpu"))
    total = matched = 0
    for index, payload in torch_log.items():
        ours, theirs = decode_payload(payload, index), decode_payload(onnx_log[index], index)
        total += len(ours)
        for row in ours:  # same box (to 1e-3 of the image), category and score (to 1e-3)
            close = np.abs(theirs[:, 1:6] - row[1:6]).max(axis=1) < 1e-3
            matched += bool((close & (theirs[:, 6] == row[6])).any())
    assert total >= 12 * 50, total  # the untrained detector does report boxes
    assert matched / total >= 0.98, (matched, total)
