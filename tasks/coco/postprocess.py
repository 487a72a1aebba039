"""From the detector's raw output to at most 100 boxes per image: the same numpy code for every backend.

RetinaNet's standard inference (detectron2 and TF Model Garden agree on the steps): per level, the
(anchor, class) pairs scoring above 0.05, at most the 1000 best of them; their boxes decoded from the
anchors and clipped to the image content (the padding holds nothing); class-aware greedy NMS at IoU
0.5 over all levels; the 100 best that survive.

The score threshold is applied to the logits (sigmoid is monotonic), so only the chosen candidates
pass through exp, not all 2.2 million logits (3 ms of the 6 ms an image took otherwise on one core).
NMS stops at the 100th kept box. Ties are broken by position (level, anchor, class), so a given
output always gives the same detections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .anchors import AnchorSet, anchors
from .preprocess import Letterbox

SCORE_THRESHOLD = 0.05
CANDIDATES_PER_LEVEL = 1000
NMS_IOU = 0.5
MAX_DETECTIONS = 100
#: exp() of the size deltas is capped here, as in the Faster R-CNN box coder (boxes at most 62.5x the anchor)
SIZE_DELTA_CLIP = math.log(1000.0 / 16)
BOX_VALUES = 4

_LOGIT_THRESHOLD = math.log(SCORE_THRESHOLD / (1 - SCORE_THRESHOLD))


@dataclass
class Detections:
    """One image's detections, best first."""

    boxes: np.ndarray  # (n, 4) float64 [ymin, xmin, ymax, xmax], relative to the original image (0..1)
    scores: np.ndarray  # (n,) float32
    classes: np.ndarray  # (n,) int64 contiguous class index (0..C-1)

    def __len__(self) -> int:
        return len(self.scores)


def check_output(outputs: np.ndarray, anchor_set: AnchorSet, num_classes: int) -> np.ndarray:
    """The raw output as (A, 4 + C) float32; ValueError saying what shape the contract expects."""
    array = np.asarray(outputs)
    expected = (1, len(anchor_set), BOX_VALUES + num_classes)
    if array.shape != expected and array.shape != expected[1:]:
        raise ValueError(
            f"detector output has shape {tuple(array.shape)}, expected {expected}: for a {anchor_set.resolution} px "
            f"input, {len(anchor_set)} anchors (9 at each of {anchor_set.locations} locations on P3-P7) with "
            f"{BOX_VALUES} box deltas and {num_classes} class logits each, as the detector output contract fixes"
        )
    array = array.reshape(expected[1:])
    return array if array.dtype == np.float32 else array.astype(np.float32)


def decode_boxes(deltas: np.ndarray, anchor_rows: np.ndarray) -> np.ndarray:
    """[ty, tx, th, tw] against [yc, xc, h, w] anchors -> [ymin, xmin, ymax, xmax] (Faster R-CNN coder, weights 1)."""
    d = np.asarray(deltas, dtype=np.float64)
    ya, xa, ha, wa = anchor_rows.T
    yc, xc = d[:, 0] * ha + ya, d[:, 1] * wa + xa
    h = np.exp(np.minimum(d[:, 2], SIZE_DELTA_CLIP)) * ha
    w = np.exp(np.minimum(d[:, 3], SIZE_DELTA_CLIP)) * wa
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)


def encode_boxes(boxes: np.ndarray, anchor_rows: np.ndarray) -> np.ndarray:
    """The inverse of decode_boxes: the deltas that decode to `boxes` ([ymin, xmin, ymax, xmax])."""
    b = np.asarray(boxes, dtype=np.float64)
    ya, xa, ha, wa = anchor_rows.T
    h, w = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    yc, xc = b[:, 0] + h / 2, b[:, 1] + w / 2
    return np.stack([(yc - ya) / ha, (xc - xa) / wa, np.log(h / ha), np.log(w / wa)], axis=1)


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one [ymin, xmin, ymax, xmax] box with each of `others`."""
    top = np.maximum(box[0], others[:, 0])
    left = np.maximum(box[1], others[:, 1])
    bottom = np.minimum(box[2], others[:, 2])
    right = np.minimum(box[3], others[:, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float = NMS_IOU,
        max_keep: int = MAX_DETECTIONS) -> np.ndarray:
    """Class-aware greedy NMS: indices of the kept boxes, best first.

    A box is dropped when it overlaps a better box of the same class by IoU > threshold. Kept boxes
    come out in score order, so stopping at `max_keep` gives exactly the top `max_keep` of a full NMS.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores), kind="stable")
    boxes, classes = np.asarray(boxes)[order], np.asarray(classes)[order]
    # positions (in score order) of each class's boxes, ascending
    by_class = np.argsort(classes, kind="stable")
    cls_sorted = classes[by_class]
    starts = np.flatnonzero(np.r_[True, cls_sorted[1:] != cls_sorted[:-1]])
    members = dict(zip(cls_sorted[starts].tolist(), np.split(by_class, starts[1:])))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == max_keep:
            break
        same = members[int(classes[i])]
        later = same[np.searchsorted(same, i, side="right"):]
        if len(later):
            b, o = boxes[i], boxes[later]
            inter = (np.maximum(np.minimum(b[2], o[:, 2]) - np.maximum(b[0], o[:, 0]), 0.0)
                     * np.maximum(np.minimum(b[3], o[:, 3]) - np.maximum(b[1], o[:, 1]), 0.0))
            # IoU > t  <=>  inter > t * union, without a division (union > 0 for non-empty boxes)
            suppressed[later[inter > iou_threshold * (areas[i] + areas[later] - inter)]] = True
    return order[np.array(keep, dtype=np.int64)]


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values in increasing index order; ties at the cut go to lower indices."""
    n = len(values)
    if n <= k:
        return np.arange(n)
    kth = np.partition(values, n - k)[n - k]
    above = np.flatnonzero(values > kth)
    ties = np.flatnonzero(values == kth)[: k - len(above)]
    return np.sort(np.concatenate([above, ties]))


def candidates(out: np.ndarray, anchor_set: AnchorSet, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(anchor rows, classes, scores) of the pairs above the score threshold, at most 1000 per level,
    in (level, anchor, class) order."""
    logits = out[:, BOX_VALUES:]
    # One pass over all levels (a strided 2-D nonzero per level costs twice as much).
    flat = np.flatnonzero(logits > _LOGIT_THRESHOLD)  # NaN compares False: never a candidate
    all_rows = flat // num_classes
    all_classes = flat - all_rows * num_classes
    all_values = logits[all_rows, all_classes]
    bounds = np.searchsorted(all_rows, [s.start for _, s in anchor_set.level_slices] + [len(anchor_set)])
    chosen = np.concatenate([
        lo + top_k(all_values[lo:hi], CANDIDATES_PER_LEVEL) for lo, hi in zip(bounds[:-1], bounds[1:])
    ])
    scores = (1.0 / (1.0 + np.exp(-all_values[chosen].astype(np.float64)))).astype(np.float32)
    return all_rows[chosen], all_classes[chosen], scores


def detect(outputs: np.ndarray, box: Letterbox, num_classes: int) -> Detections:
    """Raw detector output (1, A, 4 + C) of one letterboxed image -> its detections."""
    anchor_set = anchors(box.resolution)
    out = check_output(outputs, anchor_set, num_classes)
    rows, classes, scores = candidates(out, anchor_set, num_classes)

    boxes = decode_boxes(out[rows, :BOX_VALUES], anchor_set.centers_sizes[rows])
    limits = np.array([box.content_height, box.content_width] * 2, dtype=np.float64)
    boxes = np.clip(boxes, 0.0, limits)  # the padding holds nothing
    usable = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, classes = boxes[usable], scores[usable], classes[usable]

    kept = nms(boxes, scores, classes)
    # The content spans the whole original image: dividing by its size gives relative coordinates.
    return Detections(boxes[kept] / limits, scores[kept], classes[kept].astype(np.int64))
