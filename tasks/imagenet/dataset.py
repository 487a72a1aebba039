"""ImageNet as a LoadGen query sample library.

The sample count must be fixed before LoadGen starts, so every selected file is checked when the
dataset is built (a cheap reduced-scale JPEG decode that still reads the whole file): an unusable one
stops the run with a DataError naming it, or, with ``on_error="skip"``, is left out and listed in
``skipped``. Pixels are decoded and pre-processed in ``load()``, before timing, and kept in memory until
``unload()``, as MLPerf allows (as uint8 pixels, normalised on ``get()``). With a cache folder, decoded and cropped pixels are kept on disk: a
second run neither checks nor decodes the files it has already seen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mnv4suite.errors import DataError
from mnv4suite.tasks.common.images import (  # noqa: F401 - re-exported for plugins that import them from here
    ON_ERROR,
    check_image,
    check_options,
    open_rgb,
    parallel,
    select,
    unreadable_error,
)
from mnv4suite.tasks.common.input_cache import InputCache
from mnv4suite.tasks.common.memory import ImageFileDataset
from mnv4suite.tasks.common.memory import SyntheticDataset as _Synthetic

from .layout import Listing, Sample, scan
from .preprocess import CROP_PCT, RECIPE_VERSION, RESAMPLE, crop_pixels, normalize_chw, resize_size

SYNTHETIC_SAMPLES = 64
SYNTHETIC_SEED = 0


class ImageNetDataset(ImageFileDataset):
    """Real ImageNet images from either on-disk layout (see layout.py), with their labels."""

    name = "imagenet"
    what = "ImageNet image"

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: int,
        *,
        count: int | None = None,
        on_error: str = "stop",
        num_classes: int | None = None,
        crop_pct: float = CROP_PCT,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        check_options(count, on_error)
        self.resolution, self.crop_pct = resolution, crop_pct
        self.cache = InputCache(cache_dir, {"task": "imagenet", "recipe": RECIPE_VERSION, "resolution": resolution,
                                            "crop_pct": crop_pct, "resample": RESAMPLE.name, "stored": "uint8 CHW crop"})
        self.listing: Listing = scan(root)
        if num_classes is not None:
            check_classes(self.listing, num_classes)

        chosen = [self.listing.samples[i] for i in select(len(self.listing.samples), count)]
        self.requested = len(chosen)
        self.samples: list[Sample] = self._select(chosen, on_error, self.cache, (3, resolution, resolution),
                                                  self.listing.root)

    # ------------------------------------------------------------------ what the task and reports use

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    @property
    def files(self) -> list[Path]:
        return [s.path for s in self.samples]

    @property
    def classes(self) -> list[str] | None:
        return self.listing.classes

    def info(self) -> dict[str, Any]:
        """Provenance for the result file."""
        total = len(self.listing.samples)
        return {
            "root": str(self.listing.root),
            "layout": self.listing.layout,
            "label_file": str(self.listing.label_file) if self.listing.label_file else None,
            "class_order": self.listing.class_order,
            "available": total,
            "selection": "all" if self.requested == total else f"{self.requested} evenly spaced of {total}",
            "samples": len(self),
            "skipped": len(self.skipped),
            "preprocess": f"bicubic resize of the shorter side to {resize_size(self.resolution, self.crop_pct)}, "
            f"center crop {self.resolution}, ImageNet mean/std",
            "input_cache": self.cache.describe(),
        }

    def __len__(self) -> int:
        return len(self.samples)

    # ------------------------------------------------------------------ internals

    def _item(self, index: int) -> Sample:
        return self.samples[index]

    def _pixels(self, sample: Sample) -> np.ndarray:
        return crop_pixels(open_rgb(sample.path, self.what), self.resolution, self.crop_pct)

    def _finish(self, stored: np.ndarray) -> np.ndarray:
        return normalize_chw(stored)


class SyntheticDataset(_Synthetic):
    """Seeded random ImageNet-shaped inputs: latency without a dataset, never accuracy."""

    def __init__(self, shape: tuple[int, ...], count: int = SYNTHETIC_SAMPLES, seed: int = SYNTHETIC_SEED) -> None:
        super().__init__(shape, count, seed, name="imagenet-synthetic")


def check_classes(listing: Listing, num_classes: int) -> None:
    """Labels must mean the model's classes; the usual way they do not is a partial set of class folders."""
    where = f"ImageNet data at {listing.root}"
    if listing.classes is not None and len(listing.classes) != num_classes:
        if listing.label_map is not None:
            raise DataError(
                f"{where}: label map {listing.label_map} lists {len(listing.classes)} classes, the model has {num_classes}"
            )
        raise DataError(
            f"{where}: found {len(listing.classes)} class folders but the model has {num_classes} classes; "
            f"sorted folder order gives ImageNet class indices only when all {num_classes} are present. "
            "Add a label map listing the wnids in class order (LOC_synset_mapping.txt or synset_words.txt) "
            "to the folder or its parent"
        )
    too_big = next((s for s in listing.samples if s.label >= num_classes), None)
    if too_big is not None:
        raise DataError(
            f"{where}: {too_big.path.name} has label {too_big.label}, "
            f"the model has {num_classes} classes (0..{num_classes - 1})"
        )
