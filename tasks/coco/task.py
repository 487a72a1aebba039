"""COCO detection: data, post-processing and metric, the same for every backend.

Payload (the LoadGen accuracy-log entry of one sample), MLPerf's detection format: little-endian
float32, 7 values per detection, ``[sample index, ymin, xmin, ymax, xmax, score, category id]``, the
box relative to the original image (0..1) and the category the real COCO id. An image without
detections has an empty payload (LoadGen logs it as ``"data": ""``); a sample without any log entry
is an error, never "no detections".

The metric is pycocotools' COCOeval (bbox) over exactly the images evaluated: skipped images are not
counted as misses. Figures are percent, like the paper's Table 7.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from mnv4suite.api import Dataset, ModelSpec, Task
from mnv4suite.errors import UserError
from mnv4suite.tasks.common.images import check_options

from .dataset import SYNTHETIC_SAMPLES, CocoDataset, CocoSyntheticDataset
from .postprocess import Detections, detect

PAYLOAD_DTYPE = np.dtype("<f4")
FIELDS = 7  # index, ymin, xmin, ymax, xmax, score, category id
ENTRY_BYTES = FIELDS * PAYLOAD_DTYPE.itemsize
#: result key -> position in COCOeval.stats
METRICS = {"ap": 0, "ap50": 1, "ap75": 2, "ap_small": 3, "ap_medium": 4, "ap_large": 5}


class CocoTask(Task):
    payload_dtype = "float32"

    def dataset(self, model: ModelSpec, data: Path | None, count: int | None = None, on_error: str = "stop",
                cache_dir: Path | None = None) -> Dataset:
        """Real images from a COCO root `data` (see layout.py), or `count` (default 64) seeded random inputs
        when `data` is None. `count` with real data takes that many images evenly spaced in the file's order."""
        if model.kind != "detection":
            raise UserError(f"task 'coco' needs a detection model; '{model.id}' is a {model.kind} model")
        check_options(count, on_error)
        if data is None:
            return CocoSyntheticDataset(model.input_shape(1), count=count or SYNTHETIC_SAMPLES)
        return CocoDataset(data, model.resolution, count=count, on_error=on_error, num_classes=model.num_classes,
                           cache_dir=cache_dir)

    def encode(self, outputs: np.ndarray, index: int, dataset: Dataset) -> bytes:
        """Raw detector output (1, A, 4 + 80) of sample `index` -> its MLPerf detection payload."""
        category_ids = dataset.category_ids
        found = detect(outputs, dataset.letterbox(index), len(category_ids))
        return encode_detections(index, found, category_ids)

    def metric(self, payloads: dict[int, bytes], dataset: Dataset) -> dict[str, Any]:
        """AP figures in percent over every sample of `dataset`; each must have a payload (b"" = no detections).

        A figure pycocotools reports as -1 (no ground truth of that size among the evaluated images)
        is left out: it is undefined, not zero."""
        if dataset.synthetic:
            raise UserError(
                "accuracy needs real data: pass --data with a COCO folder holding annotations/instances_val2017.json "
                "and val2017/ (synthetic inputs have no boxes)"
            )
        n = len(dataset)
        missing = [i for i in range(n) if i not in payloads]
        if missing:
            raise ValueError(
                f"{len(missing)} of {n} samples have no result (first: sample {missing[0]}); AP would be biased"
            )
        unknown = sorted(i for i in payloads if not 0 <= i < n)
        if unknown:
            raise ValueError(f"results for samples {unknown[:5]} the dataset ({n} samples) does not have")
        known = set(dataset.category_ids)
        scored = np.asarray(dataset.annotations.category_ids)  # a category subset: the others are not scored
        results = []
        for index, image in enumerate(dataset.images):
            rows = decode_payload(payloads[index], index, known)
            rows = rows[np.isin(rows[:, 6], scored)]
            results += to_coco_results(rows, image.id, image.width, image.height)
        stats = evaluate(dataset.annotations.data, results, dataset.image_ids)
        metrics = {key: 100.0 * float(stats[pos]) for key, pos in METRICS.items() if stats[pos] >= 0}
        return {**metrics, "samples": n}


    def mlcommons_files(self, dataset: Dataset, log_dir: Path) -> str | None:
        """MLCommons' accuracy-coco.py reads `--coco-dir`/annotations/instances_val2017.json and takes
        qsl_idx i as its i-th image. A run over the whole of that file uses it where it is; any other
        selection (--count, skipped images, another split) gets a file of exactly its samples, in
        sample order, with their annotations and the file's categories, under `mlcommons/`."""
        if dataset.synthetic:
            return None
        official = dataset.layout.root / MLCOMMONS_ANNOTATIONS
        everything = [im.id for im in dataset.annotations.images]
        if dataset.layout.annotation_file == official and dataset.image_ids == everything:
            coco_dir = str(dataset.layout.root)
        else:
            data = dataset.annotations.data
            chosen = set(dataset.image_ids)
            entries = {im["id"]: im for im in data["images"] if im["id"] in chosen}
            subset = {key: value for key, value in data.items() if key not in ("images", "annotations")}
            subset["images"] = [entries[i] for i in dataset.image_ids]
            subset["annotations"] = [a for a in data["annotations"] if a["image_id"] in chosen]
            target = Path(log_dir) / MLCOMMONS_DIR / MLCOMMONS_ANNOTATIONS
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(subset), encoding="utf-8")
            coco_dir = MLCOMMONS_DIR
        return f"python accuracy-coco.py --mlperf-accuracy-file mlperf_log_accuracy.json --coco-dir {shlex.quote(coco_dir)}"


#: Where accuracy-coco.py looks for the annotations under --coco-dir, and the folder written for a subset.
MLCOMMONS_ANNOTATIONS = "annotations/instances_val2017.json"
MLCOMMONS_DIR = "mlcommons"


def encode_detections(index: int, found: Detections, category_ids) -> bytes:
    rows = np.empty((len(found), FIELDS), dtype=PAYLOAD_DTYPE)
    rows[:, 0] = index
    rows[:, 1:5] = found.boxes
    rows[:, 5] = found.scores
    rows[:, 6] = np.asarray(category_ids)[found.classes]
    return rows.tobytes()


def decode_payload(payload: bytes, index: int, category_ids: set[int] | None = None) -> np.ndarray:
    """A payload back to its (n, 7) rows; ValueError naming the sample when it is not one of ours."""
    if len(payload) % ENTRY_BYTES:
        raise ValueError(
            f"sample {index}: payload of {len(payload)} bytes is not a whole number of detections "
            f"({FIELDS} float32 = {ENTRY_BYTES} bytes each)"
        )
    rows = np.frombuffer(payload, dtype=PAYLOAD_DTYPE).reshape(-1, FIELDS)
    if not len(rows):
        return rows
    if not np.isfinite(rows).all():
        raise ValueError(f"sample {index}: payload holds non-finite values")
    if (rows[:, 0] != index).any():
        raise ValueError(f"sample {index}: payload is for sample {int(rows[rows[:, 0] != index][0, 0])}")
    boxes = rows[:, 1:5]
    if (boxes < 0).any() or (boxes > 1).any() or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise ValueError(f"sample {index}: payload holds a box outside the image or with negative size")
    if category_ids is not None:
        strange = sorted({int(c) for c in rows[:, 6]} - category_ids)
        if strange:
            raise ValueError(
                f"sample {index}: payload names categories {strange[:5]} the annotation file does not have"
            )
    return rows


def to_coco_results(rows: np.ndarray, image_id: int, width: int, height: int) -> list[dict[str, Any]]:
    """Payload rows -> COCO result entries, bbox [x, y, w, h] in original pixels."""
    r = rows.astype(np.float64)
    x, y = r[:, 2] * width, r[:, 1] * height
    boxes = np.stack([x, y, r[:, 4] * width - x, r[:, 3] * height - y], axis=1).tolist()
    return [
        {"image_id": image_id, "category_id": int(cat), "bbox": bbox, "score": float(score)}
        for bbox, score, cat in zip(boxes, r[:, 5].tolist(), r[:, 6].tolist())
    ]


def evaluate(ground_truth: dict[str, Any], results: list[dict[str, Any]], image_ids: list[int]) -> np.ndarray:
    """COCOeval (bbox) restricted to `image_ids`: its 12 summary figures, fractions, -1 where undefined.
    pycocotools prints its progress; that is captured, not shown."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    # COCOeval writes an 'ignore' flag into the ground-truth entries: give it copies.
    data = {**ground_truth, "annotations": [dict(a) for a in ground_truth["annotations"]]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list; an empty result set scores 0 wherever there is ground truth
            dt = COCO()
            dt.dataset = {"images": list(data["images"]), "categories": list(data["categories"]), "annotations": []}
            dt.createIndex()
        evaluation = COCOeval(gt, dt, iouType="bbox")
        evaluation.params.imgIds = list(image_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return np.asarray(evaluation.stats)
