"""Logs that MLCommons' accuracy scripts score unmodified: the label or annotation file of exactly the
run's samples is written beside the accuracy log, and the result names the command. The scoring here
follows the scripts' documented reading of the files (qsl_idx = line / position, first entry wins)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from mnv4suite import results

import coco_data


def result_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))


def imagenet_style_top1(log_dir: Path, val_file: str) -> tuple[int, int]:
    """(good, total) as accuracy-imagenet.py --dtype int32 counts them."""
    labels = [int(line.split()[1]) for line in (log_dir / val_file).read_text().splitlines()]
    seen, good = set(), 0
    for entry in json.loads((log_dir / "mlperf_log_accuracy.json").read_text()):
        if entry["qsl_idx"] in seen:
            continue
        seen.add(entry["qsl_idx"])
        good += int(np.frombuffer(bytes.fromhex(entry["data"]), "<i4")[0] == labels[entry["qsl_idx"]])
    return good, len(seen)


def test_imagenet_count_subset_writes_its_own_label_file(run_cli, tmp_path, image_folder):
    run = run_cli("run", "--backend", "pytorch-cpu", "--model", "tiny-cnn", "--mode", "accuracy",
                  "--data", str(image_folder), "--count", "5")
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    command = result["accuracy"]["mlcommons_command"]
    args = shlex.split(command)
    assert args[:2] == ["python", "accuracy-imagenet.py"] and "--dtype" in args
    log_dir = path.parent / "loadgen"
    val_file = args[args.index("--imagenet-val-file") + 1]
    lines = (log_dir / val_file).read_text().splitlines()
    assert len(lines) == 5 == result["accuracy"]["samples"]  # the subset, not the 12 images of the folder
    wnids = [w.split()[0] for w in (image_folder / "LOC_synset_mapping.txt").read_text().splitlines()]
    for line in lines:  # each line: the sample's file and its label, in sample order
        name, label = line.split()
        [file] = image_folder.rglob(name)
        assert wnids.index(file.parent.name) == int(label)
    good, total = imagenet_style_top1(log_dir, val_file)
    assert total == 5 and 100.0 * good / total == result["accuracy"]["metrics"]["top1"]


@pytest.fixture
def shuffled_coco(tmp_path):
    pytest.importorskip("pycocotools", reason="pip install 'mnv4suite[coco]'")
    coco = coco_data.make_coco(tmp_path / "coco", images=8, seed=3)
    coco.data["images"] = [coco.data["images"][i] for i in (6, 1, 4, 0, 7, 2, 5, 3)]
    coco.save()
    return coco


def test_coco_subset_on_a_shuffled_file_scores_the_same_with_mlcommons_reading(run_cli, tmp_path, shuffled_coco):
    run = run_cli("run", "--task", "coco", "--backend", "onnxruntime-cpu", "--model", "tiny-det",
                  "--mode", "accuracy", "--data", str(shuffled_coco.root), "--count", "5")
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    args = shlex.split(result["accuracy"]["mlcommons_command"])
    assert args[:2] == ["python", "accuracy-coco.py"]
    log_dir = path.parent / "loadgen"
    written = log_dir / args[args.index("--coco-dir") + 1] / "annotations" / "instances_val2017.json"
    subset = json.loads(written.read_text())
    ids = [im["id"] for im in shuffled_coco.data["images"]]
    assert [im["id"] for im in subset["images"]] == [ids[0], ids[1], ids[3], ids[4], ids[6]]  # sample order
    assert subset["categories"] == shuffled_coco.data["categories"]
    assert {a["image_id"] for a in subset["annotations"]} <= set(ids)
    log = json.loads((log_dir / "mlperf_log_accuracy.json").read_text())
    assert sum(len(e["data"]) for e in log) > 0, "the random detector finds boxes, so equal AP is not 0 == 0"
    ap = result["accuracy"]["metrics"]["ap"]
    assert ap == pytest.approx(coco_data.mlcommons_style_ap(log, written), abs=1e-4)


def test_a_run_over_the_whole_val2017_file_points_at_it(run_cli, tmp_path, shuffled_coco):
    run = run_cli("run", "--task", "coco", "--backend", "onnxruntime-cpu", "--model", "tiny-det",
                  "--mode", "accuracy", "--data", str(shuffled_coco.root))
    assert run.returncode == 0, run.output
    [path] = result_files(tmp_path)
    result = results.read(path)
    args = shlex.split(result["accuracy"]["mlcommons_command"])
    assert args[args.index("--coco-dir") + 1] == str(shuffled_coco.root)
    assert not (path.parent / "loadgen" / "mlcommons").exists()
    log = json.loads((path.parent / "loadgen" / "mlperf_log_accuracy.json").read_text())
    assert result["accuracy"]["metrics"]["ap"] == pytest.approx(
        coco_data.mlcommons_style_ap(log, shuffled_coco.annotation_file), abs=1e-4)
