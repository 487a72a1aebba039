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
#: Bumped whenever the pixels this module produces change: it is part of the input cache key.
RECIPE_VERSION = 2


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


# (x / 255 - mean) / std as one multiply-add per element: pre-processing a cached image then costs
# a few percent of a small model's inference instead of a third of it.
_SCALE = (1.0 / (255.0 * STD)).astype(np.float32).reshape(3, 1, 1)
_BIAS = (-MEAN / STD).astype(np.float32).reshape(3, 1, 1)


def normalize_chw(pixels: np.ndarray) -> np.ndarray:
    """uint8 CHW RGB pixels -> normalized float32 (1, 3, H, W)."""
    out = np.empty((1, *pixels.shape), dtype=np.float32)
    np.multiply(pixels, _SCALE, out=out[0])
    out[0] += _BIAS
    return out


def normalize(pixels: np.ndarray) -> np.ndarray:
    """uint8 HWC RGB pixels -> normalized float32 (1, 3, H, W)."""
    return normalize_chw(np.ascontiguousarray(np.asarray(pixels, dtype=np.uint8).transpose(2, 0, 1)))


def to_input(image: Image.Image) -> np.ndarray:
    """RGB image -> normalized float32 (1, 3, H, W)."""
    return normalize(np.asarray(image.convert("RGB")))


def crop_pixels(image: Image.Image, resolution: int, crop_pct: float = CROP_PCT) -> np.ndarray:
    """The expensive, exact part (resize and crop) as uint8 CHW: what the input cache stores."""
    image = resize_shorter(image.convert("RGB"), resize_size(resolution, crop_pct))
    return np.ascontiguousarray(np.asarray(center_crop(image, resolution), dtype=np.uint8).transpose(2, 0, 1))


def preprocess(image: Image.Image, resolution: int, crop_pct: float = CROP_PCT) -> np.ndarray:
    """A decoded image -> the model input of shape (1, 3, resolution, resolution)."""
    return normalize_chw(crop_pixels(image, resolution, crop_pct))
