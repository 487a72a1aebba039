"""Standard ImageNet evaluation pre-processing, in numpy and PIL (no torchvision at run time).

Same steps and arithmetic as timm's eval transform, which the MNv4 checkpoints were scored with:
resize the shorter side to floor(res / crop_pct) with bicubic filtering, center crop res x res,
scale to [0, 1], normalize with the ImageNet mean and std, lay out as NCHW float32 with batch 1.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

CROP_PCT = 0.875
MEAN = np.array((0.485, 0.456, 0.406), dtype=np.float32)
STD = np.array((0.229, 0.224, 0.225), dtype=np.float32)
RESAMPLE = Image.Resampling.BICUBIC


def resize_size(resolution: int, crop_pct: float = CROP_PCT) -> int:
    """Shorter side before the crop: floor, as timm and the MLPerf reference do (256 -> 292, 384 -> 438)."""
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    return math.floor(resolution / crop_pct)


def resize_shorter(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size`, aspect kept; the longer side truncates like torchvision's Resize(int)."""
    w, h = image.size
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    return image if new == (w, h) else image.resize(new, RESAMPLE)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The central size x size window, offsets rounded like torchvision's CenterCrop."""
    w, h = image.size
    if w < size or h < size:
        raise ValueError(f"cannot crop {size}x{size} from a {w}x{h} image")
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def to_input(image: Image.Image) -> np.ndarray:
    """RGB uint8 image -> normalized float32 (1, 3, H, W)."""
    x = np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def preprocess(image: Image.Image, resolution: int, crop_pct: float = CROP_PCT) -> np.ndarray:
    """A decoded image -> the model input of shape (1, 3, resolution, resolution)."""
    image = resize_shorter(image.convert("RGB"), resize_size(resolution, crop_pct))
    return to_input(center_crop(image, resolution))
