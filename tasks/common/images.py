"""Reading images for a benchmark: every failure names the file, nothing is decoded twice by accident.

Grayscale, CMYK and palette JPEGs are converted to RGB; anything PIL cannot decode (truncated,
corrupt, not an image) becomes a DataError naming the file.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
from PIL import Image
from tqdm import tqdm

from mnv4suite.errors import DataError, UserError

ON_ERROR = ("stop", "skip")
PROGRESS_MIN = 256  # show a progress bar above this many images

T = TypeVar("T")
R = TypeVar("R")

# What PIL raises for files that are not (complete) images: OSError covers unidentified and truncated
# files; the others come from malformed headers and decompression-bomb sized images.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


#: Pillow modes of 16- and 32-bit integer grayscale (16-bit PNG, TIFF): PIL's RGB conversion clips
#: them at 255 instead of scaling, so they are scaled here.
WIDE_INTEGER_MODES = {"I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16, "I": 16}


def open_rgb(path: Path, what: str = "image") -> Image.Image:
    """Decode a whole image as RGB (grayscale, CMYK, palette converted; 16-bit grayscale scaled to 8
    bits); DataError naming the file for anything that cannot be represented faithfully."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in WIDE_INTEGER_MODES:
                return _scaled_to_8_bits(image, path, what)
            if image.mode == "F":
                raise DataError(f"{what} {path} holds floating-point pixels (Pillow mode F): there is no one "
                                "right way to map them to 0..255; convert it to an 8- or 16-bit image")
            return image.convert("RGB")
    except DECODE_ERRORS as exc:
        raise DataError(f"cannot decode {what} {path}: {reason(exc)}") from exc


def _scaled_to_8_bits(image: Image.Image, path: Path, what: str) -> Image.Image:
    """16-bit samples (0..65535) to 8-bit by dropping the low byte, as 8-bit decoders of 16-bit PNGs do."""
    pixels = np.asarray(image, dtype=np.int64)
    if pixels.min() < 0 or pixels.max() > 65535:
        raise DataError(f"{what} {path} has {image.mode} pixels outside 0..65535: not a 16-bit image; convert it "
                        "to an 8- or 16-bit one")
    return Image.fromarray((pixels >> 8).astype(np.uint8), "L").convert("RGB")


def check_image(path: Path, size: tuple[int, int] | None = None, size_source: str = "") -> str | None:
    """Why `path` cannot be used, or None. Decodes at reduced scale: fast, but reads every byte.

    With `size` (width, height), an image of another size is unusable too: `size_source` says who
    gave that size (e.g. the annotation file, whose boxes are in those pixels)."""
    try:
        with Image.open(path) as image:
            found = image.size  # from the header, before draft() shrinks it
            image.draft("RGB", (1, 1))
            image.load()
    except FileNotFoundError:
        return "file not found"
    except DECODE_ERRORS as exc:
        return reason(exc)
    if size is not None and found != tuple(size):
        return f"image is {found[0]}x{found[1]} but {size_source or 'the dataset'} gives {size[0]}x{size[1]}"
    return None


def select(total: int, count: int | None) -> list[int]:
    """`count` evenly spaced indices out of `total` (all when count is None or larger): deterministic,
    and it spans every class of a class-sorted listing."""
    if count is None or count >= total:
        return list(range(total))
    return [i * total // count for i in range(count)]


def check_options(count: int | None, on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise UserError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise UserError(f"count must be a positive integer, got {count!r}")


def parallel(fn: Callable[[T], R], items: Sequence[T], desc: str) -> list[R]:
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


def reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def unreadable_error(what: str, bad: list[tuple[str, str]]) -> DataError:
    """The error for on_error='stop': the first bad file, how many more, and how to go on."""
    (first, why), more = bad[0], len(bad) - 1
    others = f" ({more} more unusable file{'s' if more > 1 else ''})" if more else ""
    return DataError(
        f"cannot use {what} {first}: {why}{others}; "
        "fix or remove it, or run with --on-error skip to leave unusable files out (the result counts them)"
    )
