"""ImageNet classification: data, post-processing and metric, the same for every backend.

Payload (the LoadGen accuracy-log entry of one sample): the top-5 class indices as little-endian
int32, best first. Its first value is the one label per sample that MLPerf's ImageNet checker reads
(``accuracy-imagenet.py --dtype int32`` takes element 0); the next four give top-5 from the same log.
Logits containing NaN encode as five -1, which can never match a label, so a numerically broken
backend scores as wrong instead of as class 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from mnv4suite.api import Dataset, ModelSpec, Task
from mnv4suite.errors import UserError

from .dataset import SYNTHETIC_SAMPLES, ImageNetDataset, SyntheticDataset, check_options

TOP_K = 5
PAYLOAD_DTYPE = np.dtype("<i4")


class ImageNetTask(Task):
    payload_dtype = "int32"

    def dataset(self, model: ModelSpec, data: Path | None, count: int | None = None, on_error: str = "stop",
                cache_dir: Path | None = None) -> Dataset:
        """Real images from `data` (either layout, see layout.py), or `count` (default 64) seeded random
        inputs when `data` is None. `count` with real data takes that many evenly spaced samples."""
        if model.kind != "classification":
            raise UserError(f"task 'imagenet' needs a classification model; '{model.id}' is a {model.kind} model")
        check_options(count, on_error)
        if data is None:
            return SyntheticDataset(model.input_shape(1), count=count or SYNTHETIC_SAMPLES)
        return ImageNetDataset(data, model.resolution, count=count, on_error=on_error, num_classes=model.num_classes,
                               crop_pct=model.crop_pct, cache_dir=cache_dir)

    def encode(self, outputs: np.ndarray, index: int = -1, dataset: Dataset | None = None) -> bytes:
        """Raw logits of one sample, shape (1, classes) or (classes,) -> top-5 payload."""
        logits = np.asarray(outputs)
        if logits.ndim == 2 and logits.shape[0] == 1:
            logits = logits[0]
        if logits.ndim != 1 or logits.size == 0:
            raise ValueError(f"expected logits of shape (1, classes), got {np.shape(outputs)}")
        k = min(TOP_K, logits.size)
        if np.isnan(logits).any():
            return np.full(k, -1, dtype=PAYLOAD_DTYPE).tobytes()
        # Stable sort on the negated scores: ties go to the lower class index, on every backend alike.
        top = np.argsort(-logits.astype(np.float64), kind="stable")[:k]
        return top.astype(PAYLOAD_DTYPE).tobytes()

    def metric(self, payloads: dict[int, bytes], dataset: Dataset) -> dict[str, Any]:
        """Top-1 / top-5 accuracy in percent over every sample of `dataset`; each must have a payload."""
        if dataset.synthetic:
            raise UserError(
                "accuracy needs real data: pass --data with an ImageNet val folder (synthetic inputs have no labels)"
            )
        labels = dataset.labels
        missing = [i for i in range(len(labels)) if i not in payloads]
        if missing:
            raise ValueError(
                f"{len(missing)} of {len(labels)} samples have no result (first: sample {missing[0]}); "
                "accuracy would be biased"
            )
        unknown = sorted(i for i in payloads if not 0 <= i < len(labels))
        if unknown:
            raise ValueError(f"results for samples {unknown[:5]} the dataset ({len(labels)} samples) does not have")
        top1 = top5 = 0
        for index, label in enumerate(labels):
            top = decode(payloads[index], index)
            top1 += int(top[0] == label)
            top5 += int(label in top[:TOP_K])
        n = len(labels)
        return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "samples": n}


    def mlcommons_files(self, dataset: Dataset, log_dir: Path) -> str | None:
        """`val_map.txt` of the run's samples in sample order (MLCommons' accuracy-imagenet.py reads the
        label of qsl_idx i from its line i; the name is for its messages, whitespace escaped)."""
        if dataset.synthetic:
            return None
        lines = (f"{quote(path.name)} {label}\n" for path, label in zip(dataset.files, dataset.labels))
        (Path(log_dir) / MLCOMMONS_LABELS).write_text("".join(lines), encoding="utf-8")
        return (f"python accuracy-imagenet.py --mlperf-accuracy-file mlperf_log_accuracy.json "
                f"--imagenet-val-file {MLCOMMONS_LABELS} --dtype int32")


#: The label file written beside the accuracy log for MLCommons' script.
MLCOMMONS_LABELS = "val_map.txt"


def decode(payload: bytes, index: int = -1) -> list[int]:
    """A payload back to its class indices, best first."""
    if not payload or len(payload) % PAYLOAD_DTYPE.itemsize or len(payload) > TOP_K * PAYLOAD_DTYPE.itemsize:
        raise ValueError(f"sample {index}: payload of {len(payload)} bytes is not 1 to {TOP_K} int32 class indices")
    return np.frombuffer(payload, dtype=PAYLOAD_DTYPE).tolist()
