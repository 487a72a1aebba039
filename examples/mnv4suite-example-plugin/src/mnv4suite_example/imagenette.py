"""Imagenette: ten easy ImageNet classes, scored with an unmodified ImageNet-1k classifier.

Reuses the built-in ImageNet reader and pre-processing; only the label space differs. A model's
1000 logits are restricted to the ten classes before taking the top-1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnv4suite.api import Dataset, ModelSpec
from mnv4suite.errors import DataError, UserError
from mnv4suite.tasks.imagenet.dataset import ImageNetDataset
from mnv4suite.tasks.imagenet.task import ImageNetTask

#: Imagenette's wnids (sorted, which is also the folder order) and their ImageNet-1k class indices.
CLASSES = {
    "n01440764": 0,  # tench
    "n02102040": 217,  # English springer
    "n02979186": 482,  # cassette player
    "n03000684": 491,  # chain saw
    "n03028079": 497,  # church
    "n03394916": 566,  # French horn
    "n03417042": 569,  # garbage truck
    "n03425413": 571,  # gas pump
    "n03445777": 574,  # golf ball
    "n03888605": 701,  # parachute
}
IMAGENET_INDEX = np.array(list(CLASSES.values()))
PAYLOAD = np.dtype("<i4")


class ImagenetteTask(ImageNetTask):
    def dataset(self, model: ModelSpec, data: Path | None, count: int | None = None, on_error: str = "stop",
                cache_dir: Path | None = None) -> Dataset:
        if data is None or model.num_classes != 1000:
            return super().dataset(model, data, count, on_error, cache_dir)
        dataset = ImageNetDataset(data, model.resolution, count=count, on_error=on_error, cache_dir=cache_dir)
        if dataset.classes != list(CLASSES):
            raise DataError(f"{data} is not Imagenette: expected the class folders {', '.join(CLASSES)}, "
                            f"found {', '.join(dataset.classes or [])}")
        return dataset

    def encode(self, outputs: np.ndarray, index: int, dataset: Dataset) -> bytes:
        logits = np.asarray(outputs).reshape(-1)
        if logits.size != 1000:
            raise UserError(f"imagenette scores ImageNet-1k classifiers; this model gives {logits.size} classes")
        return np.array([np.argmax(logits[IMAGENET_INDEX])], PAYLOAD).tobytes()

    def metric(self, payloads: dict[int, bytes], dataset: Dataset) -> dict:
        if dataset.synthetic:
            raise UserError("accuracy needs real data: pass --data with an Imagenette val folder")
        labels = dataset.labels
        missing = [i for i in range(len(labels)) if i not in payloads]
        if missing:
            raise ValueError(f"{len(missing)} of {len(labels)} samples have no result")
        correct = sum(int(np.frombuffer(payloads[i], PAYLOAD)[0] == label) for i, label in enumerate(labels))
        return {"top1": 100.0 * correct / len(labels), "samples": len(labels)}
