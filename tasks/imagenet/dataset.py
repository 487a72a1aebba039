"""ImageNet as a LoadGen query sample library.

The sample count must be fixed before LoadGen starts, so every selected file is checked when the
dataset is built (a cheap reduced-scale JPEG decode that still reads the whole file): an unreadable one
stops the run with a DataError naming it, or, with ``on_error="skip"``, is left out and listed in
``skipped``. Pixels are decoded and pre-processed in ``load()``, before timing, and kept in memory until
``unload()``, as MLPerf allows.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
from PIL import Image
from tqdm import tqdm

from mnv4suite.api import Dataset
from mnv4suite.errors import DataError, UserError

from .layout import Listing, Sample, scan
from .preprocess import CROP_PCT, preprocess, resize_size

ON_ERROR = ("stop", "skip")
PROGRESS_MIN = 256  # show a progress bar above this many images
SYNTHETIC_SAMPLES = 64
SYNTHETIC_SEED = 0

T = TypeVar("T")
R = TypeVar("R")

# What PIL raises for files that are not (complete) images: OSError covers unidentified and truncated
# files; the others come from malformed headers and decompression-bomb sized images.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def open_rgb(path: Path) -> Image.Image:
    """Decode a whole image as RGB (grayscale, CMYK, palette converted); DataError naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except _DECODE_ERRORS as exc:
        raise DataError(f"cannot decode ImageNet image {path}: {_reason(exc)}") from exc


def check_image(path: Path) -> str | None:
    """Why `path` cannot be used, or None. Decodes at reduced scale: fast, but reads every byte."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (1, 1))
            image.load()
    except FileNotFoundError:
        return "file not found"
    except _DECODE_ERRORS as exc:
        return _reason(exc)
    return None


def select(total: int, count: int | None) -> list[int]:
    """`count` evenly spaced indices out of `total` (all when count is None or larger): deterministic,
    and it spans every class of a class-sorted listing."""
    if count is None or count >= total:
        return list(range(total))
    return [i * total // count for i in range(count)]


class _InMemory(Dataset):
    """Samples produced in load(), served from memory by get(), dropped in unload()."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []
        self._loaded: dict[int, np.ndarray] = {}

    def _produce(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def load(self, indices: Sequence[int]) -> None:
        todo = [i for i in dict.fromkeys(indices) if i not in self._loaded]
        for index in todo:
            if not 0 <= index < len(self):
                raise IndexError(f"sample {index} out of range: {self.name} has {len(self)} samples")
        for index, array in zip(todo, _parallel(self._produce, todo, f"pre-processing {self.name}")):
            self._loaded[index] = array

    def unload(self, indices: Sequence[int]) -> None:
        for index in indices:
            self._loaded.pop(index, None)

    def get(self, index: int) -> np.ndarray:
        try:
            return self._loaded[index]
        except KeyError:
            raise RuntimeError(f"sample {index} of {self.name} is not loaded; load() it before timing starts") from None


class ImageNetDataset(_InMemory):
    """Real ImageNet images from either on-disk layout (see layout.py), with their labels."""

    name = "imagenet"

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: int,
        *,
        count: int | None = None,
        on_error: str = "stop",
        num_classes: int | None = None,
        crop_pct: float = CROP_PCT,
    ) -> None:
        super().__init__()
        check_options(count, on_error)
        self.resolution, self.crop_pct = resolution, crop_pct
        self.listing: Listing = scan(root)
        if num_classes is not None:
            check_classes(self.listing, num_classes)

        chosen = [self.listing.samples[i] for i in select(len(self.listing.samples), count)]
        self.samples: list[Sample] = self._readable(chosen, on_error)
        self.requested = len(chosen)

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
        }

    def __len__(self) -> int:
        return len(self.samples)

    # ------------------------------------------------------------------ internals

    def _produce(self, index: int) -> np.ndarray:
        # A file that passed the check but fails now changed on disk: the QSL cannot drop a sample
        # mid-run, so this stops whatever on_error says.
        return preprocess(open_rgb(self.samples[index].path), self.resolution, self.crop_pct)

    def _readable(self, chosen: list[Sample], on_error: str) -> list[Sample]:
        reasons = _parallel(lambda s: check_image(s.path), chosen, f"checking {self.name} images")
        bad = [(str(s.path), r) for s, r in zip(chosen, reasons) if r is not None]
        if bad and on_error == "stop":
            (first, why), more = bad[0], len(bad) - 1
            others = f" ({more} more unreadable file{'s' if more > 1 else ''})" if more else ""
            raise DataError(
                f"cannot use ImageNet image {first}: {why}{others}; "
                "fix or remove it, or run with on_error='skip' to leave unreadable files out"
            )
        self.skipped = bad
        good = [s for s, r in zip(chosen, reasons) if r is None]
        if not good:
            raise DataError(
                f"none of the {len(chosen)} ImageNet images at {self.listing.root} can be read; "
                f"first: {bad[0][0]}: {bad[0][1]}"
            )
        return good


class SyntheticDataset(_InMemory):
    """Seeded random inputs in the model's input shape: for latency without a dataset, never accuracy."""

    name = "imagenet-synthetic"

    def __init__(self, shape: tuple[int, ...], count: int = SYNTHETIC_SAMPLES, seed: int = SYNTHETIC_SEED) -> None:
        super().__init__()
        self.shape, self.count, self.seed = tuple(shape), count, seed

    @property
    def synthetic(self) -> bool:
        return True

    def __len__(self) -> int:
        return self.count

    def info(self) -> dict[str, Any]:
        return {"synthetic": True, "samples": self.count, "shape": list(self.shape), "seed": self.seed}

    def _produce(self, index: int) -> np.ndarray:
        # Seeded per index, so a sample does not depend on which others were loaded first.
        return np.random.default_rng([self.seed, index]).standard_normal(self.shape, dtype=np.float32)


def check_options(count: int | None, on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise UserError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise UserError(f"count must be a positive integer, got {count!r}")


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


def _parallel(fn: Callable[[T], R], items: Sequence[T], desc: str) -> list[R]:
    """fn over items in order, on threads (PIL decodes and resizes outside the GIL), with a progress bar."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    pool = ThreadPoolExecutor(min(16, os.cpu_count() or 1, len(items)))
    try:
        results = pool.map(fn, items)
        quiet = len(items) <= PROGRESS_MIN
        return list(tqdm(results, total=len(items), desc=desc, unit="img", file=sys.stderr, disable=quiet))
    finally:
        pool.shutdown(cancel_futures=True)  # on an error, do not decode the rest


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
