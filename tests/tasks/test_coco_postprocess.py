"""COCO post-processing: anchors, box coding, candidate selection, NMS and the MLPerf payload."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnv4suite.tasks.coco import postprocess as pp
from mnv4suite.tasks.coco.anchors import anchors, count, shapes_per_location
from mnv4suite.tasks.coco.categories import COCO_IDS
from mnv4suite.tasks.coco.postprocess import (
    Detections,
    candidates,
    check_output,
    decode_boxes,
    detect,
    encode_boxes,
    nms,
    top_k,
)
from mnv4suite.tasks.coco.preprocess import Letterbox
from mnv4suite.tasks.coco.task import CocoTask, decode_payload, encode_detections

R = 384
A = 27621
HIT, MISS = 10.0, -10.0


def blank(resolution: int = R) -> np.ndarray:
    """A raw output in which nothing scores above the threshold."""
    out = np.zeros((1, count(resolution), 84), np.float32)
    out[0, :, 4:] = MISS
    return out


def place(out: np.ndarray, row: int, box_yxyx, cls: int, logit: float = HIT, resolution: int = R) -> None:
    """Make anchor `row` predict `box_yxyx` (input pixels) for class `cls`."""
    out[0, row, :4] = encode_boxes(np.array([box_yxyx], float), anchors(resolution).centers_sizes[row:row + 1])[0]
    out[0, row, 4 + cls] = logit


class FakeDataset:
    """What encode() reads from a dataset."""

    def __init__(self, width=640, height=480, resolution=R):
        self.box = Letterbox.fit(width, height, resolution)
        self.category_ids = list(COCO_IDS)

    def letterbox(self, index):
        return self.box


# ---------------------------------------------------------------------------------------- anchors


def test_anchor_count():
    assert count(384) == len(anchors(384)) == A
    assert anchors(384).locations == 48 * 48 + 24 * 24 + 12 * 12 + 6 * 6 + 3 * 3 == 3069
    assert anchors(384).grid_sizes == (48, 24, 12, 6, 3)
    # sizes that do not divide round up: 300 px -> 38, 19, 10, 5, 3
    assert count(300) == 9 * (38**2 + 19**2 + 10**2 + 5**2 + 3**2)
    assert count(320) == 9 * (40**2 + 20**2 + 10**2 + 5**2 + 3**2)


def test_anchor_shapes_per_location():
    s3 = 2 ** (1 / 3)
    expected_level3 = [(32 * s3**o / math.sqrt(r), 32 * s3**o * math.sqrt(r)) for o in range(3) for r in (0.5, 1, 2)]
    np.testing.assert_allclose(shapes_per_location(3), expected_level3, rtol=1e-12)
    np.testing.assert_allclose(shapes_per_location(7)[0], [512 * math.sqrt(2), 512 / math.sqrt(2)])


def test_anchor_values_and_order():
    table = anchors(384).centers_sizes  # [yc, xc, h, w]
    np.testing.assert_allclose(table[0], [4, 4, 32 * math.sqrt(2), 32 / math.sqrt(2)])  # P3, y0 x0, k0: ratio 0.5
    np.testing.assert_allclose(table[1], [4, 4, 32, 32])  # k1: octave 0, ratio 1
    np.testing.assert_allclose(table[4], [4, 4, 32 * 2 ** (1 / 3), 32 * 2 ** (1 / 3)])  # k4: octave 1, ratio 1
    np.testing.assert_allclose(table[9], [4, 12, 32 * math.sqrt(2), 32 / math.sqrt(2)])  # next column
    np.testing.assert_allclose(table[9 * 48], [12, 4, 32 * math.sqrt(2), 32 / math.sqrt(2)])  # next row
    np.testing.assert_allclose(table[9 * 48 * 48], [8, 8, 64 * math.sqrt(2), 64 / math.sqrt(2)])  # P4 starts
    big = 512 * 2 ** (2 / 3)
    np.testing.assert_allclose(table[-1], [320, 320, big / math.sqrt(2), big * math.sqrt(2)])  # P7, y2 x2, k8
    assert not table.flags.writeable


def test_anchor_order_is_nhwc_reshaped():
    """Row r of level l is what (1, H, W, 9*C) reshaped to (1, H*W*9, C) puts there: (y, x, k)."""
    anchor_set = anchors(384)
    for level, rows in anchor_set.level_slices:
        n, stride = math.ceil(384 / 2**level), 2**level
        y, x, k = np.meshgrid(np.arange(n), np.arange(n), np.arange(9), indexing="ij")
        nhwc = np.stack([y, x, k], axis=-1).reshape(1, n, n, 9 * 3).reshape(1, n * n * 9, 3)[0]
        table = anchor_set.centers_sizes[rows]
        np.testing.assert_array_equal(table[:, 0], (nhwc[:, 0] + 0.5) * stride)
        np.testing.assert_array_equal(table[:, 1], (nhwc[:, 1] + 0.5) * stride)
        np.testing.assert_array_equal(table[:, 2:], shapes_per_location(level)[nhwc[:, 2]])


def test_anchors_are_computed_once_per_resolution():
    assert anchors(384) is anchors(384) and anchors(256) is not anchors(384)


# ---------------------------------------------------------------------------------------- box coding


def test_box_coding_round_trip():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, A, 500)
    anchor_rows = anchors(R).centers_sizes[rows]
    top_left = rng.uniform(0, 300, (500, 2))
    boxes = np.concatenate([top_left, top_left + rng.uniform(2, 200, (500, 2))], axis=1)
    np.testing.assert_allclose(decode_boxes(encode_boxes(boxes, anchor_rows), anchor_rows), boxes, atol=1e-9)


def test_decoding_by_hand_and_the_size_clip():
    anchor = np.array([[100.0, 50.0, 20.0, 40.0]])  # yc, xc, h, w
    got = decode_boxes(np.array([[0.5, -0.25, math.log(2), 0.0]]), anchor)
    np.testing.assert_allclose(got, [[110 - 20, 40 - 20, 110 + 20, 40 + 20]])
    huge = decode_boxes(np.array([[0, 0, 50.0, 50.0]]), anchor)[0]
    assert huge[2] - huge[0] == pytest.approx(20 * 1000 / 16) and huge[3] - huge[1] == pytest.approx(40 * 1000 / 16)


# ---------------------------------------------------------------------------------------- output shape


@pytest.mark.parametrize("shape", [(1, A - 9, 84), (1, A, 85), (2, A, 84), (A * 84,), (1, 84, A)])
def test_wrong_output_shape_is_a_clear_error(shape):
    with pytest.raises(ValueError, match=r"expected \(1, 27621, 84\).*9 at each of 3069 locations on P3-P7"):
        check_output(np.zeros(shape, np.float32), anchors(R), 80)


def test_output_without_batch_and_in_fp16_is_accepted():
    out = blank()
    place(out, 100, (10, 10, 50, 60), cls=3)
    expected = detect(out, Letterbox.fit(R, R, R), 80)
    for variant in (out[0], out.astype(np.float16)):
        got = detect(variant, Letterbox.fit(R, R, R), 80)
        assert got.classes.tolist() == [3]
        np.testing.assert_allclose(got.boxes, expected.boxes, atol=1e-3)


# ---------------------------------------------------------------------------------------- candidates and NMS


def test_score_threshold_is_005():
    out = blank()
    logit = math.log(0.05 / 0.95)
    out[0, 10, 4 + 1] = logit + 1e-4
    out[0, 20, 4 + 2] = logit - 1e-4
    rows, classes, scores = candidates(check_output(out, anchors(R), 80), anchors(R), 80)
    assert rows.tolist() == [10] and classes.tolist() == [1]
    assert scores[0] == pytest.approx(0.05, abs=1e-5)


def test_at_most_1000_candidates_per_level():
    out = blank()
    p3 = anchors(R).level_slices[0][1]
    rng = np.random.default_rng(1)
    chosen = rng.choice(np.arange(p3.start, p3.stop), 1500, replace=False)
    logits = np.linspace(0, 5, 1500, dtype=np.float32)
    out[0, chosen, 4 + 7] = logits
    out[0, p3.stop + 5, 4 + 9] = -1.0  # a weak P4 candidate survives its own level's cut
    rows, classes, scores = candidates(check_output(out, anchors(R), 80), anchors(R), 80)
    assert len(rows) == 1001
    assert set(rows[:1000].tolist()) == set(chosen[500:].tolist())  # the best 1000 of P3
    assert rows[-1] == p3.stop + 5 and classes[-1] == 9


def test_top_k_ties_go_to_lower_indices():
    assert top_k(np.array([1, 3, 3, 3, 2]), 2).tolist() == [1, 2]
    assert top_k(np.array([5, 1]), 3).tolist() == [0, 1]


def reference_nms(boxes, scores, classes, threshold):
    """Textbook greedy NMS, one box at a time, for comparison."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(classes[i] != classes[j] or pp.iou(boxes[j], boxes[i:i + 1])[0] <= threshold for j in keep):
            keep.append(i)
    return keep


def test_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [0, 1, 10, 11], [0, 0, 10, 10], [0, 5, 10, 15], [20, 20, 30, 30.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    classes = np.array([1, 1, 2, 1, 1])
    # box 1 overlaps box 0 by IoU 0.82 (dropped); box 2 is another class; box 3 overlaps box 0 by 1/3
    assert nms(boxes, scores, classes).tolist() == [0, 2, 3, 4]
    assert nms(boxes, scores, classes, max_keep=2).tolist() == [0, 2]
    # IoU exactly 0.5 is kept: only IoU > threshold suppresses
    half = np.array([[0, 0, 10, 30], [0, 10, 10, 30.0]])
    assert pp.iou(half[0], half[1:])[0] == pytest.approx(2 / 3)
    third = np.array([[0, 0, 10, 20], [0, 0, 10, 10.0]])
    assert pp.iou(third[0], third[1:])[0] == 0.5
    assert nms(third, np.array([0.9, 0.8]), np.array([0, 0])).tolist() == [0, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)).tolist() == []


def test_nms_agrees_with_the_textbook_version():
    rng = np.random.default_rng(3)
    for _ in range(5):
        tl = rng.uniform(0, 100, (300, 2))
        boxes = np.concatenate([tl, tl + rng.uniform(5, 40, (300, 2))], axis=1)
        scores = rng.uniform(0, 1, 300).astype(np.float32)
        classes = rng.integers(0, 4, 300)
        expected = reference_nms(boxes, scores, classes, 0.5)
        assert nms(boxes, scores, classes, max_keep=10_000).tolist() == expected
        assert nms(boxes, scores, classes).tolist() == expected[:100]


# ---------------------------------------------------------------------------------------- detect


def test_detections_are_clipped_to_the_content_and_relative_to_the_original():
    box = Letterbox.fit(640, 480, R)  # content 384 x 288, padding below
    out = blank()
    rows = anchors(R).centers_sizes
    place(out, 500, (0, 0, 144, 192), cls=0, logit=3.0)  # the top-left quarter of the image
    place(out, 900, (200, 300, 350, 420), cls=5, logit=2.0)  # runs past the right edge and into the padding
    pad_row = int(np.argmin(np.abs(rows[:, 0] - 340) + np.abs(rows[:, 1] - 100) + rows[:, 2]))
    place(out, pad_row, (300, 50, 380, 150), cls=6, logit=4.0)  # entirely in the padding: dropped
    found = detect(out, box, 80)
    assert found.classes.tolist() == [0, 5]
    np.testing.assert_allclose(found.boxes[0], [0, 0, 0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(found.boxes[1], [200 / 288, 300 / 384, 1, 1], atol=1e-9)
    assert found.scores.tolist() == pytest.approx([1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-2))])


def test_at_most_100_detections_best_first():
    out = blank()
    rows = np.arange(0, 9 * 48 * 48, 9 * 7)[:300]  # 300 separate locations of P3, one anchor each
    logits = np.linspace(-2, 6, 300)
    for row, logit in zip(rows, logits):
        out[0, row, 4 + 2] = logit
    found = detect(out, Letterbox.fit(R, R, R), 80)
    assert len(found) == 100
    assert np.all(np.diff(found.scores) <= 0)
    assert found.scores[-1] == pytest.approx(1 / (1 + math.exp(-logits[200])), rel=1e-6)


def test_broken_outputs_give_no_detections():
    out = blank()
    out[0, :, 4:] = np.nan
    assert len(detect(out, Letterbox.fit(R, R, R), 80)) == 0
    out = blank()
    out[0, 3, :4] = np.nan
    out[0, 3, 4] = HIT
    assert len(detect(out, Letterbox.fit(R, R, R), 80)) == 0


# ---------------------------------------------------------------------------------------- payload


def test_encode_gives_the_mlperf_payload():
    task = CocoTask.__new__(CocoTask)
    ds = FakeDataset()
    out = blank()
    place(out, 700, (0, 0, 144, 192), cls=79, logit=3.0)
    place(out, 20000, (100, 100, 200, 250), cls=11, logit=1.0)
    payload = task.encode(out, 42, ds)
    assert len(payload) == 2 * 28
    rows = np.frombuffer(payload, dtype="<f4").reshape(-1, 7)
    assert rows[:, 0].tolist() == [42, 42]
    assert rows[:, 6].tolist() == [90, 13]  # class 79 -> toothbrush (90), class 11 -> stop sign (13)
    np.testing.assert_allclose(rows[0, 1:5], [0, 0, 0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(rows[1, 1:5], [100 / 288, 100 / 384, 200 / 288, 250 / 384], atol=1e-6)
    np.testing.assert_allclose(rows[:, 5], [1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-1))], rtol=1e-6)
    np.testing.assert_array_equal(decode_payload(payload, 42, set(COCO_IDS)), rows)
    assert task.encode(blank(), 7, ds) == b""


def test_decode_payload_rejects_what_encode_never_writes():
    good = encode_detections(3, Detections(np.array([[0.1, 0.2, 0.3, 0.4]]), np.array([0.9], np.float32),
                                           np.array([0])), COCO_IDS)
    assert decode_payload(good, 3, {1}).shape == (1, 7)
    assert decode_payload(b"", 3).shape == (0, 7)
    with pytest.raises(ValueError, match="sample 3: payload of 27 bytes"):
        decode_payload(good[:-1], 3)
    with pytest.raises(ValueError, match="payload is for sample 3"):
        decode_payload(good, 4)
    with pytest.raises(ValueError, match=r"categories \[1\]"):
        decode_payload(good, 3, {2})
    bad = np.frombuffer(good, "<f4").copy()
    bad[3] = 0.05  # ymax < ymin
    with pytest.raises(ValueError, match="negative size"):
        decode_payload(bad.tobytes(), 3)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        decode_payload(bad.tobytes(), 3)
