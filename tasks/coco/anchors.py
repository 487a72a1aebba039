"""RetinaNet anchors of the detector contract (TF Model Garden's layout), shared by every backend.

Levels P3..P7 (stride 2**l, a ceil(R / stride) square grid each), 9 anchors per location:
k = 3 * octave + ratio_index, octave scale 2**(octave / 3), ratio (width / height) 0.5, 1, 2, base
size 4 * stride. Order: level, then row, then column, then k, which is what an NHWC head output
reshaped to (H * W * 9, C) per level and concatenated gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MIN_LEVEL, MAX_LEVEL = 3, 7
NUM_SCALES = 3
ASPECT_RATIOS = (0.5, 1.0, 2.0)
ANCHOR_SIZE = 4.0
ANCHORS_PER_LOCATION = NUM_SCALES * len(ASPECT_RATIOS)


@dataclass(frozen=True)
class AnchorSet:
    """All anchors for one input resolution as [yc, xc, h, w] rows, and where each level's rows are."""

    resolution: int
    centers_sizes: np.ndarray  # (A, 4) float64 [yc, xc, h, w], read-only
    level_slices: tuple[tuple[int, slice], ...]  # (level, rows of that level)
    grid_sizes: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.centers_sizes)

    @property
    def locations(self) -> int:
        return sum(n * n for n in self.grid_sizes)

    def corners(self) -> np.ndarray:
        """[ymin, xmin, ymax, xmax] in input pixels."""
        yc, xc, h, w = self.centers_sizes.T
        return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)


def grid_size(resolution: int, level: int) -> int:
    return math.ceil(resolution / 2**level)


def count(resolution: int) -> int:
    """A: how many anchors (rows of the detector output) an R x R input has."""
    return ANCHORS_PER_LOCATION * sum(grid_size(resolution, lv) ** 2 for lv in range(MIN_LEVEL, MAX_LEVEL + 1))


def shapes_per_location(level: int) -> np.ndarray:
    """(9, 2) [h, w] of the anchors at one location of `level`, in k order."""
    base = ANCHOR_SIZE * 2**level
    rows = []
    for octave in range(NUM_SCALES):
        size = base * 2 ** (octave / NUM_SCALES)
        for ratio in ASPECT_RATIOS:
            rows.append((size / math.sqrt(ratio), size * math.sqrt(ratio)))
    return np.array(rows, dtype=np.float64)


@lru_cache(maxsize=8)
def anchors(resolution: int) -> AnchorSet:
    """The anchors for an R x R input, computed once per resolution."""
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    parts, slices, sizes, start = [], [], [], 0
    for level in range(MIN_LEVEL, MAX_LEVEL + 1):
        stride, n = 2**level, grid_size(resolution, level)
        centres = (np.arange(n, dtype=np.float64) + 0.5) * stride
        yc, xc = np.meshgrid(centres, centres, indexing="ij")  # row-major: y, then x
        hw = shapes_per_location(level)
        per_level = np.empty((n, n, ANCHORS_PER_LOCATION, 4))
        per_level[..., 0] = yc[..., None]
        per_level[..., 1] = xc[..., None]
        per_level[..., 2:] = hw
        parts.append(per_level.reshape(-1, 4))
        slices.append((level, slice(start, start + len(parts[-1]))))
        sizes.append(n)
        start += len(parts[-1])
    table = np.concatenate(parts)
    table.flags.writeable = False
    return AnchorSet(resolution, table, tuple(slices), tuple(sizes))
