"""Known answers for the COCO metric: ground truth scores 100, a perturbation scores what pycocotools
says when run on its own, and a raw detector output encoding the ground truth scores 100 through
anchors, decoding, NMS, letterbox mapping and category ids."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

import coco_data
from coco_data import make_coco, perfect_output
from mnv4suite.api import ModelSpec
from mnv4suite.errors import UserError
from mnv4suite.loadgen_log import read_accuracy_payloads
from mnv4suite.tasks import coco as plugin
from mnv4suite.tasks.coco.task import METRICS, CocoTask

# The metric is pycocotools' COCOeval: without the 'coco' extra these tests cannot run (and say so).
pytest.importorskip("pycocotools", reason="pip install 'mnv4suite[coco]'")

R = 384
AP_KEYS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")


def detector(resolution: int = R) -> ModelSpec:
    return ModelSpec(id="det", builder="unused:unused", resolution=resolution, num_classes=80, kind="detection")


@pytest.fixture
def task() -> CocoTask:
    return plugin.register_tasks()[0].create()


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> coco_data.CocoFixture:
    return make_coco(tmp_path_factory.mktemp("coco"), images=12, seed=5, crowd=2, empty=1)


def payload_rows(index: int, rows) -> bytes:
    """MLPerf rows [index, ymin, xmin, ymax, xmax, score, category id], normalised boxes."""
    return np.array([[index, *row] for row in rows], dtype="<f4").reshape(-1, 7).tobytes()


def truth_rows(coco, image, shift=(0.0, 0.0), score=1.0):
    """The non-crowd ground truth of `image` as payload rows (boxes moved by `shift` pixels)."""
    w, h = image["width"], image["height"]
    rows = []
    for ann in coco.annotations_of(image["id"]):
        if ann["iscrowd"]:
            continue
        x, y, bw, bh = ann["bbox"]
        x, y = x + shift[0], y + shift[1]
        rows.append([y / h, x / w, (y + bh) / h, (x + bw) / w, score, ann["category_id"]])
    return rows


def pycocotools_directly(annotation_file, results, image_ids, tmp_path):
    """The independent path: pycocotools' own file loaders on a results json."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotation_file))
        evaluation = COCOeval(gt, gt.loadRes(str(path)), "bbox")
        evaluation.params.imgIds = image_ids
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {key: 100.0 * evaluation.stats[pos] for key, pos in METRICS.items()}


def test_generated_set_covers_every_size_and_a_crowd(coco):
    anns = coco.data["annotations"]
    assert any(a["iscrowd"] for a in anns)
    assert not coco.annotations_of(coco.images[-1]["id"])  # one image without objects


def test_ground_truth_scores_100(task, coco):
    ds = task.dataset(detector(), coco.root)
    payloads = {i: payload_rows(i, truth_rows(coco, im)) for i, im in enumerate(coco.images)}
    got = task.metric(payloads, ds)
    assert got["samples"] == 12
    for key in AP_KEYS:
        assert got[key] == pytest.approx(100.0, abs=1e-9), key


def test_a_perturbation_scores_what_pycocotools_computes(task, coco, tmp_path):
    """Shifted boxes, dropped objects, false positives and lower scores: compared with pycocotools run
    on a results json written from the same detections in original pixels."""
    ds = task.dataset(detector(), coco.root)
    rng = np.random.default_rng(7)
    payloads, results = {}, []
    for i, image in enumerate(coco.images):
        rows = truth_rows(coco, image, shift=(i % 4 * 2.5, -(i % 3) * 1.5), score=0.9)
        rows = [r for k, r in enumerate(rows) if (i + k) % 4 != 0]  # drop every fourth object
        for r in rows:
            r[4] = float(rng.uniform(0.3, 1.0))
        rows.append([0.1, 0.1, 0.3, 0.4, float(rng.uniform(0.2, 0.95)), 1])  # a false positive
        payloads[i] = payload_rows(i, rows)
        w, h = image["width"], image["height"]
        for ymin, xmin, ymax, xmax, score, cat in np.frombuffer(payloads[i], "<f4").reshape(-1, 7)[:, 1:].tolist():
            results.append({"image_id": image["id"], "category_id": int(cat), "score": score,
                            "bbox": [xmin * w, ymin * h, (xmax - xmin) * w, (ymax - ymin) * h]})
    got = task.metric(payloads, ds)
    expected = pycocotools_directly(coco.annotation_file, results, ds.image_ids, tmp_path)
    assert 20 < expected["ap"] < 90  # a real perturbation, not a degenerate one
    for key in AP_KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key


def test_raw_output_encoding_the_ground_truth_scores_100(task, coco):
    """End to end: anchors, box decoding, NMS, letterbox mapping and category ids together."""
    ds = task.dataset(detector(), coco.root)
    payloads = {i: task.encode(perfect_output(coco, i, R), i, ds) for i in range(len(ds))}
    got = task.metric(payloads, ds)
    for key in AP_KEYS:
        assert got[key] == pytest.approx(100.0, abs=1e-6), key
    # and with the class logits shifted by one class, every box has the wrong category
    shifted = {}
    for i in range(len(ds)):
        out = perfect_output(coco, i, R)
        out[0, :, 4:] = np.roll(out[0, :, 4:], 1, axis=1)
        shifted[i] = task.encode(out, i, ds)
    assert task.metric(shifted, ds)["ap"] == 0.0


def test_raw_output_at_another_resolution(task, coco):
    ds = task.dataset(detector(256), coco.root, count=4)
    payloads = {i: task.encode(perfect_output(coco, [0, 3, 6, 9][i], 256), i, ds) for i in range(len(ds))}
    assert task.metric(payloads, ds)["ap"] == pytest.approx(100.0, abs=1e-6)


def test_only_the_evaluated_images_count(task, coco):
    """A subset, or skipped images, are left out of the evaluation, not scored as misses."""
    ds = task.dataset(detector(), coco.root, count=4)
    picked = [coco.images[i] for i in (0, 3, 6, 9)]
    assert ds.image_ids == [im["id"] for im in picked]
    payloads = {i: payload_rows(i, truth_rows(coco, im)) for i, im in enumerate(picked)}
    assert task.metric(payloads, ds)["ap"] == pytest.approx(100.0, abs=1e-9)


def test_skipped_images_are_not_misses(task, tmp_path):
    coco = make_coco(tmp_path / "coco", images=5, seed=2)
    coco_data.truncate(coco, 1)
    ds = task.dataset(detector(), coco.root, on_error="skip")
    assert len(ds.skipped) == 1 and len(ds) == 4
    kept = [im for k, im in enumerate(coco.images) if k != 1]
    payloads = {i: payload_rows(i, truth_rows(coco, im)) for i, im in enumerate(kept)}
    assert task.metric(payloads, ds)["ap"] == pytest.approx(100.0, abs=1e-9)


def test_no_detections_at_all_scores_zero(task, coco, capsys):
    ds = task.dataset(detector(), coco.root)
    got = task.metric({i: b"" for i in range(len(ds))}, ds)
    assert got == {**{key: 0.0 for key in AP_KEYS}, "samples": 12}
    assert capsys.readouterr().out == ""  # pycocotools' prints are captured


def test_empty_payloads_logged_by_loadgen_mean_no_detections(task, coco, tmp_path):
    """LoadGen logs a zero-size response as "data": "": an image without detections, not a missing one."""
    ds = task.dataset(detector(), coco.root)
    entries = [{"seq_id": i, "qsl_idx": i, "data": payload_rows(i, truth_rows(coco, im)).hex() if i % 2 else ""}
               for i, im in enumerate(coco.images)]
    (tmp_path / "mlperf_log_accuracy.json").write_text(json.dumps(entries))
    payloads = read_accuracy_payloads(tmp_path)
    assert payloads[0] == b""
    got = task.metric(payloads, ds)
    assert 0 < got["ap"] < 100


def test_a_size_without_ground_truth_is_left_out(task, tmp_path):
    coco = make_coco(tmp_path / "coco", images=3)
    coco.data["annotations"] = [a for a in coco.data["annotations"] if a["area"] < 96**2]
    coco.save()
    ds = task.dataset(detector(), coco.root)
    payloads = {i: payload_rows(i, truth_rows(coco, im)) for i, im in enumerate(coco.images)}
    got = task.metric(payloads, ds)
    assert "ap_large" not in got and got["ap_medium"] == pytest.approx(100.0)


def test_missing_and_foreign_results_are_errors(task, coco):
    ds = task.dataset(detector(), coco.root)
    every = {i: b"" for i in range(len(ds))}
    with pytest.raises(ValueError, match="1 of 12 samples have no result"):
        task.metric({i: p for i, p in every.items() if i != 5}, ds)
    with pytest.raises(ValueError, match="does not have"):
        task.metric({**every, 12: b""}, ds)
    with pytest.raises(ValueError, match="sample 3: payload of 5 bytes"):
        task.metric({**every, 3: b"\x00" * 5}, ds)
    with pytest.raises(ValueError, match="sample 2: payload is for sample 7"):
        task.metric({**every, 2: payload_rows(7, [[0, 0, 0.5, 0.5, 0.9, 1]])}, ds)
    with pytest.raises(ValueError, match=r"categories \[12\]"):
        task.metric({**every, 2: payload_rows(2, [[0, 0, 0.5, 0.5, 0.9, 12]])}, ds)


def test_synthetic_data_has_no_accuracy(task):
    ds = task.dataset(detector(), None, count=2)
    with pytest.raises(UserError, match="--data"):
        task.metric({0: b"", 1: b""}, ds)
    ds.load([0])
    assert isinstance(task.encode(np.random.default_rng(0).normal(-4.6, 1, (1, 27621, 84)).astype(np.float32), 0, ds),
                      bytes)


def perturbed(task, coco, ds, class_ids=None) -> dict[int, bytes]:
    """Raw outputs encoding the ground truth, with every third object's box moved and one object dropped."""
    payloads = {}
    for i in range(len(ds)):
        out = perfect_output(coco, i, R, class_ids=class_ids)
        hits = np.flatnonzero(out[0, :, 4:].max(axis=1) > 0)
        out[0, hits[::3], 0] += 0.4  # move the box centre by 0.4 anchor widths
        if i == 1 and len(hits) > 1:
            out[0, hits[1], 4:] = -10.0
        payloads[i] = task.encode(out, i, ds)
    return payloads


def test_shuffled_image_order_scores_as_mlcommons_scores_it(task, tmp_path):
    coco = make_coco(tmp_path / "coco", images=8, seed=11)
    coco.data["images"] = [coco.data["images"][i] for i in (5, 2, 7, 0, 3, 6, 1, 4)]
    coco.save()
    ds = task.dataset(detector(), coco.root)
    perfect = {i: task.encode(perfect_output(coco, i, R), i, ds) for i in range(len(ds))}
    assert task.metric(perfect, ds)["ap"] == pytest.approx(100.0, abs=1e-6)
    payloads = perturbed(task, coco, ds)
    got = task.metric(payloads, ds)["ap"]
    log = [{"seq_id": i, "qsl_idx": i, "data": p.hex()} for i, p in payloads.items()]
    assert 10 < got < 95 and got == pytest.approx(coco_data.mlcommons_style_ap(log, coco.annotation_file), abs=1e-4)


def test_a_category_subset_scores_only_its_categories(task, tmp_path):
    """An 80-class detector on a person/car file: standard mapping, the file's categories scored."""
    from mnv4suite.tasks.coco.categories import COCO_IDS

    coco = make_coco(tmp_path / "coco", images=8, seed=12)
    kept = sorted({a["category_id"] for a in coco.data["annotations"]})[:3]
    coco.data["categories"] = [c for c in coco.data["categories"] if c["id"] in kept]
    coco.data["annotations"] = [a for a in coco.data["annotations"] if a["category_id"] in kept]
    coco.save()
    ds = task.dataset(detector(), coco.root)
    payloads = perturbed(task, coco, ds, class_ids=list(COCO_IDS))
    extra = {}  # and a confident detection of a category the file does not list, on every image
    for i, payload in payloads.items():
        stray = np.array([[i, 0.1, 0.1, 0.5, 0.5, 0.99, 90 if 90 not in kept else 1]], "<f4")
        extra[i] = payload + stray.tobytes()
    got = task.metric(extra, ds)["ap"]
    log = [{"seq_id": i, "qsl_idx": i, "data": p.hex()} for i, p in extra.items()]
    assert 2 < got < 95 and got == pytest.approx(coco_data.mlcommons_style_ap(log, coco.annotation_file), abs=1e-4)
    assert got == pytest.approx(task.metric(payloads, ds)["ap"], abs=1e-9)  # the stray category changes nothing
