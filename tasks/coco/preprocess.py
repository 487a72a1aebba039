"""Letterbox pre-processing of the detector contract: the whole image, aspect kept, padded to a square.

scale = R / max(h, w); bilinear resize to (round(w * scale), round(h * scale)); the resized content at
the top-left of an R x R input; the rest is the ImageNet mean pixel, which is exactly 0 after
normalisation. Because the content sits at the origin, a box in input pixels maps back to the
original image by dividing by the per-axis scale content_w / w and content_h / h: the exact factors
the resize applied.

The input cache keeps the letterboxed image as uint8 CHW, padded with the mean pixel rounded to
uint8; the padding is set to exact zeros again after normalising (`finish`), since the mean pixel
(123.675, 116.28, 103.53) has no exact uint8 value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from mnv4suite.tasks.imagenet.preprocess import MEAN, normalize_chw

RESAMPLE = Image.Resampling.BILINEAR
#: Bumped whenever the pixels this module produces change: it is part of the input cache key.
RECIPE_VERSION = 1


@dataclass(frozen=True)
class Letterbox:
    """Where an original width x height image lies in the R x R model input."""

    width: int  # original image
    height: int
    resolution: int  # R
    content_width: int  # round(width * scale)
    content_height: int

    @classmethod
    def fit(cls, width: int, height: int, resolution: int) -> "Letterbox":
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        scale = resolution / max(width, height)
        return cls(width, height, resolution, max(1, min(resolution, round(width * scale))),
                   max(1, min(resolution, round(height * scale))))

    @property
    def scale(self) -> float:
        """The contract's nominal factor R / max(h, w)."""
        return self.resolution / max(self.width, self.height)

    @property
    def scale_xy(self) -> tuple[float, float]:
        """The factors the resize actually applied to x and y (equal to `scale` up to rounding)."""
        return self.content_width / self.width, self.content_height / self.height

    def to_input(self, boxes_xywh: np.ndarray) -> np.ndarray:
        """COCO [x, y, w, h] boxes in original pixels -> [ymin, xmin, ymax, xmax] in input pixels."""
        b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
        sx, sy = self.scale_xy
        return np.stack([b[:, 1] * sy, b[:, 0] * sx, (b[:, 1] + b[:, 3]) * sy, (b[:, 0] + b[:, 2]) * sx], axis=1)

    def to_original(self, boxes_yxyx: np.ndarray) -> np.ndarray:
        """[ymin, xmin, ymax, xmax] in input pixels -> the same in original pixels."""
        b = np.asarray(boxes_yxyx, dtype=np.float64).reshape(-1, 4)
        sx, sy = self.scale_xy
        return b / np.array([sy, sx, sy, sx])


PAD_PIXEL = np.round(MEAN * 255).astype(np.uint8)  # (124, 116, 104)


def letterbox_pixels(image: Image.Image, box: Letterbox) -> np.ndarray:
    """The expensive, exact part (bilinear resize, pad) as uint8 CHW (3, R, R): what the input cache stores."""
    image = image.convert("RGB")
    if image.size != (box.width, box.height):
        raise ValueError(f"image is {image.size[0]}x{image.size[1]}, "
                         f"the letterbox was fit for {box.width}x{box.height}")
    size = (box.content_width, box.content_height)
    resized = image if image.size == size else image.resize(size, RESAMPLE)
    out = np.empty((3, box.resolution, box.resolution), dtype=np.uint8)
    out[:] = PAD_PIXEL.reshape(3, 1, 1)
    out[:, : box.content_height, : box.content_width] = np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1)
    return out


def finish(pixels: np.ndarray, box: Letterbox) -> np.ndarray:
    """Cached uint8 CHW letterbox -> the normalised float32 (1, 3, R, R) input, exactly 0 in the padding."""
    x = normalize_chw(pixels)
    x[:, :, box.content_height:, :] = 0.0
    x[:, :, :, box.content_width:] = 0.0
    return x


def letterbox(image: Image.Image, resolution: int) -> tuple[np.ndarray, Letterbox]:
    """A decoded image -> (model input (1, 3, R, R), its letterbox geometry)."""
    box = Letterbox.fit(image.size[0], image.size[1], resolution)
    return finish(letterbox_pixels(image, box), box), box
