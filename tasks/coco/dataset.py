"""COCO val2017 as a LoadGen query sample library.

The samples are the annotation file's images in the file's order, the order MLCommons' tools index
them by (``count`` takes an evenly spaced subset). Before LoadGen starts, every selected file is checked: it must exist, decode completely and
have the width and height the annotation file gives it, because boxes are scored in those pixels. A
file in the image folder that the annotation file does not list is reported too: it is the usual sign
of an image folder and annotation file that do not belong together. With ``on_error="stop"`` (the
default) any of these stops the run, naming the first file; with ``"skip"`` each one is listed in
``skipped`` and the result is marked partial. Skipped images are left out of the evaluation, not
scored as misses.

Letterboxed pixels are packed on disk (tasks/common/input_cache.py): a second run over the same
selection neither checks nor decodes a file. The pack's key holds the selected images' annotated
sizes, so a changed annotation file cannot reuse pixels letterboxed for other sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnv4suite.tasks.common.images import check_image, check_options, open_rgb, select, unreadable_error
from mnv4suite.tasks.common.input_cache import InputCache
from mnv4suite.tasks.common.memory import ImageFileDataset, SyntheticDataset

from . import instances
from .categories import COCO_IDS
from .instances import Annotations
from .layout import Layout, find
from .preprocess import RECIPE_VERSION, RESAMPLE, Letterbox, finish, letterbox_pixels

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SYNTHETIC_SAMPLES = 64
SYNTHETIC_SEED = 0


@dataclass(frozen=True)
class CocoImage:
    """One sample: an image entry of the annotation file and where its file should be."""

    id: int
    path: Path
    width: int
    height: int


class CocoDataset(ImageFileDataset):
    """Real COCO images with their letterbox geometry; the annotations stay here for the metric."""

    name = "coco"
    what = "COCO image"

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: int,
        *,
        count: int | None = None,
        on_error: str = "stop",
        num_classes: int | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        check_options(count, on_error)
        self.resolution = resolution
        self.layout: Layout = find(root)
        self.annotations: Annotations = instances.load(self.layout.annotation_file)
        self.category_ids, self.class_order = self.annotations.category_ids, (
            f"categories of {self.annotations.name} in increasing id order")
        if num_classes is not None:
            self.category_ids, self.class_order = instances.class_mapping(self.annotations, num_classes)

        listed = self.annotations.images
        chosen = [CocoImage(im.id, self.layout.image_dir / im.file_name, im.width, im.height)
                  for im in (listed[i] for i in select(len(listed), count))]
        self.requested = len(chosen)
        geometry = hashlib.sha256(json.dumps([(im.id, im.path.name, im.width, im.height) for im in chosen]).encode())
        cache = InputCache(cache_dir, {"task": "coco", "recipe": RECIPE_VERSION, "resolution": resolution,
                                       "resample": RESAMPLE.name, "stored": "uint8 CHW letterbox",
                                       "annotated_sizes": geometry.hexdigest()[:16]})
        # Listed files and unlisted ones are reported together, so one message counts them all.
        self.images: list[CocoImage] = self._select(chosen, "skip", cache, (3, resolution, resolution),
                                                    self.layout.image_dir)
        unlisted = [(str(path), f"not in {self.annotations.name}") for path in self._unlisted()]
        if (self.skipped or unlisted) and on_error == "stop":
            raise unreadable_error(self.what, self.skipped + unlisted)
        self.skipped = self.skipped + unlisted
        self.letterboxes = [Letterbox.fit(im.width, im.height, resolution) for im in self.images]

    # ------------------------------------------------------------------ what the task and reports use

    @property
    def image_ids(self) -> list[int]:
        return [im.id for im in self.images]

    @property
    def files(self) -> list[Path]:
        return [im.path for im in self.images]

    def letterbox(self, index: int) -> Letterbox:
        return self.letterboxes[index]

    def info(self) -> dict[str, Any]:
        """Provenance for the result file."""
        total = len(self.annotations.images)
        return {
            "root": str(self.layout.root),
            "split": self.layout.split,
            "annotation_file": str(self.layout.annotation_file),
            "image_dir": str(self.layout.image_dir),
            "available": total,
            "annotations": self.annotations.annotation_count,
            "categories": len(self.annotations.category_ids),
            "class_order": self.class_order,
            "sample_order": f"images of {self.annotations.name} in the file's order",
            "selection": "all" if self.requested == total
            else f"{self.requested} evenly spaced of {total} (in the file's order)",
            "samples": len(self),
            "skipped": len(self.skipped),
            "preprocess": f"letterbox to {self.resolution}: bilinear resize of the longer side to {self.resolution}, "
            "content top-left, padded with the mean pixel; ImageNet mean/std",
            "input_cache": self.cache.describe(),
        }

    def __len__(self) -> int:
        return len(self.images)

    def get(self, index: int) -> np.ndarray:
        # Normalised here rather than in _finish (left as the identity, so super().get gives the uint8
        # pixels): zeroing the padding needs the sample's letterbox.
        return finish(super().get(index), self.letterboxes[index])

    # ------------------------------------------------------------------ internals

    def _item(self, index: int) -> CocoImage:
        return self.images[index]

    def _check(self, image: CocoImage) -> str | None:
        return check_image_size(image.path, image.width, image.height, self.annotations.name)

    def _pixels(self, image: CocoImage) -> np.ndarray:
        box = Letterbox.fit(image.width, image.height, self.resolution)
        return letterbox_pixels(open_rgb(image.path, self.what), box)

    def _unlisted(self) -> list[Path]:
        """Images in the image folder that the annotation file does not list."""
        listed = {im.file_name for im in self.annotations.images}
        return sorted(
            Path(e.path)
            for e in os.scandir(self.layout.image_dir)
            if e.name.lower().endswith(IMAGE_SUFFIXES) and not e.name.startswith(".") and e.name not in listed
            and e.is_file()
        )


def check_image_size(path: Path, width: int, height: int, ann_name: str) -> str | None:
    """Why an image cannot be scored against its annotations, or None: unreadable, or not the size the
    annotation file gives (its boxes are in those pixels)."""
    return check_image(path, (width, height), ann_name)


class CocoSyntheticDataset(SyntheticDataset):
    """Seeded random detector-shaped inputs: latency without a dataset, never accuracy.

    For encode() each is a whole R x R image with the 80 COCO categories, so a run in accuracy mode
    post-processes exactly as with real data before the metric refuses to score it.
    """

    def __init__(self, shape: tuple[int, ...], count: int = SYNTHETIC_SAMPLES, seed: int = SYNTHETIC_SEED) -> None:
        super().__init__(shape, count, seed, name="coco-synthetic")
        self.resolution = shape[-1]
        self.category_ids = list(COCO_IDS)

    def letterbox(self, index: int) -> Letterbox:
        return Letterbox.fit(self.resolution, self.resolution, self.resolution)
