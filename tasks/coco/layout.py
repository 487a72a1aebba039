"""Where the COCO files are: the official download layout, found from the folder the user names.

    <root>/annotations/instances_val2017.json
    <root>/val2017/000000000139.jpg ...

val2017 is taken whenever it is there (a full download also holds train2017). Without it, exactly one
``annotations/instances_<split>.json`` with its ``<split>/`` image folder is accepted; none or several
is an error that says what was looked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mnv4suite.errors import DataError

DEFAULT_SPLIT = "val2017"
ANNOTATIONS_DIR = "annotations"
PREFIX = "instances_"


@dataclass(frozen=True)
class Layout:
    root: Path
    split: str
    annotation_file: Path
    image_dir: Path


def annotation_name(split: str) -> str:
    return f"{PREFIX}{split}.json"


def find(root: str | os.PathLike) -> Layout:
    """The annotation file and image folder under `root`; DataError saying what was looked for."""
    root = Path(root).expanduser()
    expected = (
        f"expected the COCO download layout: {root}/{ANNOTATIONS_DIR}/{annotation_name(DEFAULT_SPLIT)} beside "
        f"the image folder {root}/{DEFAULT_SPLIT}/ "
        f"(or one {ANNOTATIONS_DIR}/{PREFIX}<split>.json with its <split>/ folder)"
    )
    if not root.exists():
        raise DataError(f"COCO data folder {root} does not exist; {expected}")
    if not root.is_dir():
        raise DataError(f"COCO data path {root} is a file; point --data at the COCO root folder; {expected}")

    default = _layout(root, DEFAULT_SPLIT)
    if default.annotation_file.is_file() and default.image_dir.is_dir():
        return default

    ann_dir = root / ANNOTATIONS_DIR
    found = sorted(ann_dir.glob(f"{PREFIX}*.json")) if ann_dir.is_dir() else []
    complete = [_layout(root, f.name[len(PREFIX):-len(".json")]) for f in found]
    complete = [layout for layout in complete if layout.image_dir.is_dir()]
    if len(complete) == 1:
        return complete[0]
    if len(complete) > 1:
        names = ", ".join(f"{c.annotation_file.name} + {c.split}/" for c in complete)
        raise DataError(
            f"COCO data at {root} is ambiguous: found {names} but no {annotation_name(DEFAULT_SPLIT)} + "
            f"{DEFAULT_SPLIT}/; keep one split there, or give the split you want as {DEFAULT_SPLIT}"
        )
    if default.annotation_file.is_file():
        raise DataError(f"COCO data at {root}: found {default.annotation_file} but no image folder {default.image_dir}")
    if found:
        missing = ", ".join(f"{f.name} (no {f.name[len(PREFIX):-len('.json')]}/ folder)" for f in found)
        raise DataError(f"COCO data at {root}: {missing}; {expected}")
    raise DataError(f"COCO data at {root}: no {ann_dir}/{PREFIX}*.json found; {expected}")


def _layout(root: Path, split: str) -> Layout:
    return Layout(root, split, root / ANNOTATIONS_DIR / annotation_name(split), root / split)
