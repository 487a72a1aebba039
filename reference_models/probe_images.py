"""Photo-like test images for checking exports and quantization where no dataset is at hand.

Smooth colour gradients, soft blobs, hard-edged shapes, stripes and sensor noise: the spatial
correlation and value ranges of photos, unlike white noise, which gives misleading activation
ranges. They are no substitute for real calibration data; use them only to check conversions.
"""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def natural_images(n: int, size: int, seed: int) -> np.ndarray:
    """``n`` photo-like images, ImageNet-normalised, float32 NCHW [n, 3, size, size]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = []
    for _ in range(n):
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5) + 0.71) / 1.42
        img = rng.uniform(0, 1, 3) * (1 - t[..., None]) + rng.uniform(0, 1, 3) * t[..., None]
        for _ in range(rng.integers(3, 9)):  # soft blobs
            cy, cx = rng.uniform(0, 1, 2)
            sy, sx = rng.uniform(0.03, 0.25, 2)
            w = np.exp(-(((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2) / 2)[..., None] * rng.uniform(0.4, 1)
            img = img * (1 - w) + rng.uniform(0, 1, 3) * w
        for _ in range(rng.integers(1, 4)):  # hard-edged rectangles
            y0, x0 = rng.integers(0, size - 8, 2)
            y1, x1 = y0 + rng.integers(8, size // 2), x0 + rng.integers(8, size // 2)
            img[y0:y1, x0:x1] = rng.uniform(0, 1, 3)
        freq, phase = rng.uniform(4, 40), rng.uniform(0, 2 * np.pi)  # texture
        img += 0.08 * np.sin(2 * np.pi * freq * (np.cos(angle) * yy - np.sin(angle) * xx) + phase)[..., None]
        img += rng.normal(0, 0.02, img.shape)  # sensor noise
        img = (np.clip(img, 0, 1) - IMAGENET_MEAN) / IMAGENET_STD
        images.append(img.transpose(2, 0, 1))
    return np.stack(images).astype(np.float32)
