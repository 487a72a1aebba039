"""The in-memory query sample library both image tasks use.

LoadGen asks for samples to be loaded before timing starts and serves every query from memory:
`load()` produces the samples (from the input cache when it can), `get()` hands one to the model.

Image datasets keep uint8 pixels in memory and normalise in `get()`: a quarter of the memory
(1024 samples at 384 px: 450 MB instead of 1.8 GB), and no fresh float32 pages to fault in per
sample, which cost more than the ~25 us multiply-add that `get()` then does inside the query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from mnv4suite.api import Dataset
from mnv4suite.errors import DataError

from .images import check_image, parallel, unreadable_error
from .input_cache import InputCache, PackWriter


class InMemoryDataset(Dataset):
    """Samples produced in load(), served from memory by get(), dropped in unload()."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []
        self._loaded: dict[int, np.ndarray] = {}

    def _produce(self, index: int) -> np.ndarray:
        """The sample as kept in memory."""
        raise NotImplementedError

    def _finish(self, stored: np.ndarray) -> np.ndarray:
        """Kept form -> model input (NCHW float32); identity unless a subclass keeps something smaller."""
        return stored

    def load(self, indices: Sequence[int]) -> None:
        todo = [i for i in dict.fromkeys(indices) if i not in self._loaded]
        for index in todo:
            if not 0 <= index < len(self):
                raise IndexError(f"sample {index} out of range: {self.name} has {len(self)} samples")
        for index, array in zip(todo, self._produce_all(todo)):
            self._loaded[index] = array

    def _produce_all(self, indices: list[int]) -> list[np.ndarray]:
        return parallel(self._produce, indices, f"pre-processing {self.name}")

    def unload(self, indices: Sequence[int]) -> None:
        for index in indices:
            self._loaded.pop(index, None)

    def get(self, index: int) -> np.ndarray:
        try:
            stored = self._loaded[index]
        except KeyError:
            raise RuntimeError(f"sample {index} of {self.name} is not loaded; load() it before timing starts") from None
        return self._finish(stored)


class SyntheticDataset(InMemoryDataset):
    """Seeded random inputs in the model's input shape: for latency without a dataset, never accuracy."""

    def __init__(self, shape: tuple[int, ...], count: int, seed: int = 0, name: str = "synthetic") -> None:
        super().__init__()
        self.shape, self.count, self.seed, self.name = tuple(shape), count, seed, name

    @property
    def synthetic(self) -> bool:
        return True

    def __len__(self) -> int:
        return self.count

    def info(self) -> dict:
        return {"synthetic": True, "samples": self.count, "shape": list(self.shape), "seed": self.seed}

    def _produce(self, index: int) -> np.ndarray:
        # Seeded per index, so a sample does not depend on which others were loaded first.
        return np.random.default_rng([self.seed, index]).standard_normal(self.shape, dtype=np.float32)


class ImageFileDataset(InMemoryDataset):
    """Image files checked when the dataset is built, decoded in load(), packed for the next run.

    Subclasses give `_pixels(item)` (decode + resize as uint8, the cached form) and may extend
    `_check(item)`; items are anything with a `.path`. A warm pack skips both checking and decoding.
    """

    what = "image"  # how messages name a file, e.g. "ImageNet image"

    def _select(self, chosen: list, on_error: str, cache: InputCache, shape: tuple[int, ...], root: Path) -> list:
        """The usable items of `chosen`; unusable ones stop the run or land in `skipped`."""
        self.cache = cache
        self._pack: np.ndarray | None = None
        self._writer: PackWriter | None = None
        key, pack = cache.lookup([item.path for item in chosen])
        if pack is not None:
            usable, bad = pack.usable, pack.skipped
        else:
            reasons = parallel(self._check, chosen, f"checking {self.name} images")
            usable = [i for i, r in enumerate(reasons) if r is None]
            bad = [(str(chosen[i].path), r) for i, r in enumerate(reasons) if r is not None]
        if bad and on_error == "stop":
            raise unreadable_error(self.what, bad)
        if not usable:
            raise DataError(f"none of the {len(chosen)} selected {self.what}s at {root} can be used; "
                            f"first: {bad[0][0]}: {bad[0][1]}")
        self.skipped = bad
        if pack is not None:
            self._pack = pack.array
        else:
            self._writer = cache.writer(key, usable, bad, shape)
        return [chosen[i] for i in usable]

    def _check(self, item) -> str | None:
        return check_image(item.path)

    def _produce_all(self, indices: list[int]) -> list[np.ndarray]:
        if self._pack is not None:  # views of the memory-mapped pack: nothing to decode, no threads
            return [self._pack[i] for i in indices]
        return super()._produce_all(indices)

    def _pixels(self, item) -> np.ndarray:
        raise NotImplementedError

    def _item(self, index: int):
        raise NotImplementedError

    def _produce(self, index: int) -> np.ndarray:
        if self._pack is not None:
            return self._pack[index]
        # A file that passed the check but fails now changed on disk: the QSL cannot drop a sample
        # mid-run, so this stops whatever on_error says.
        pixels = self._pixels(self._item(index))
        if self._writer is not None:
            self._writer.put(index, pixels)
        return pixels
