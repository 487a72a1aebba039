"""Reading and checking a COCO instances file (``instances_val2017.json``) before anything uses it.

pycocotools trusts its input: a missing field surfaces as a KeyError deep in COCOeval, an annotation
pointing at an unknown image is silently never matched, a duplicate id corrupts the matching. So the
file is checked here once, and every problem is a DataError naming the file, the entry and the fix.

Images keep the file's order: the sample index is the position in ``images``, as MLCommons' COCO
dataset and accuracy script count them (the real ``instances_val2017.json`` is not sorted by id).

Which COCO id the detector's contiguous class c stands for (``class_mapping``):
* a file listing exactly as many categories as the model predicts: the c-th category in increasing id
  order (for the real 80 the ids 1..90 with ten gaps), the order the detector contract fixes;
* an 80-class detector and a file listing some of the 80 standard categories (a person/car subset):
  the standard mapping, class c is the c-th standard id; only the listed categories are scored,
  as pycocotools and MLCommons' script score them;
* anything else cannot be scored and is an error naming both counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnv4suite.errors import DataError
from mnv4suite.safeparse import load_json

REQUIRED = ("images", "annotations", "categories")
SHAPE = '{"images": [...], "annotations": [...], "categories": [...]}'


@dataclass(frozen=True)
class ImageEntry:
    id: int
    file_name: str
    width: int
    height: int


@dataclass
class Annotations:
    """A checked instances file. `data` is the parsed JSON itself, handed to pycocotools as ground truth."""

    file: Path
    images: list[ImageEntry]  # in the file's order
    category_ids: list[int]  # the file's category ids, increasing
    category_names: dict[int, str]
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def annotation_count(self) -> int:
        return len(self.data["annotations"])


#: Four times COCO's largest instances file (train2017, 448 MiB); read whole into memory, so bounded.
MAX_ANNOTATION_BYTES = 2 << 30


def load(path: str | Path) -> Annotations:
    """Parse and check `path`; DataError naming the file and the first problem."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_ANNOTATION_BYTES + 1)
        if len(raw) > MAX_ANNOTATION_BYTES:
            raise DataError(f"COCO annotation file {path} is larger than {MAX_ANNOTATION_BYTES >> 30} GiB "
                            "(instances_train2017.json is 0.45 GiB): is it the right file?")
        # NaN/Infinity refused; nesting only as deep as the parser goes (the shape is checked below)
        data = load_json(raw, f"COCO annotation file {path}", max_depth=None)
    except FileNotFoundError as exc:
        raise DataError(f"COCO annotation file {path} does not exist") from exc
    except IsADirectoryError:
        raise DataError(f"COCO annotation file {path} is a folder: give the instances_*.json file") from None
    except ValueError as exc:
        raise DataError(str(exc)) from None
    except OSError as exc:
        raise DataError(f"cannot read COCO annotation file {path}: {exc.strerror or exc}") from exc
    return validate(data, path)


def validate(data: Any, path: Path) -> Annotations:
    if not isinstance(data, dict):
        raise DataError(
            f"{path} is not a COCO instances file: expected a JSON object {SHAPE}, got a JSON {_json_type(data)}"
        )
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise DataError(
            f"{path} is not a COCO instances file: no {', '.join(repr(k) for k in missing)} "
            f"(expected {SHAPE}; a COCO results or captions file will not do)"
        )
    for key in REQUIRED:
        if not isinstance(data[key], list):
            raise DataError(f"{path}: '{key}' must be a list, got a JSON {_json_type(data[key])}")
    if not data["images"]:
        raise DataError(f"{path} lists no images")
    if not data["categories"]:
        raise DataError(f"{path} lists no categories")

    images = _images(data["images"], path)
    names = _categories(data["categories"], path)
    _annotations(data["annotations"], {im.id for im in images}, names, path)
    return Annotations(path, images, sorted(names), names, data)


def _images(entries: list, path: Path) -> list[ImageEntry]:
    images: list[ImageEntry] = []
    ids: dict[int, int] = {}
    files: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: images[{i}]"
        _object(entry, where)
        image_id = _int(entry, "id", where)
        file_name = entry.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise DataError(f"{where} (id {image_id}): 'file_name' must be a non-empty string, got {file_name!r}")
        width, height = _int(entry, "width", where, positive=True), _int(entry, "height", where, positive=True)
        if image_id in ids:
            raise DataError(f"{where}: image id {image_id} already used by images[{ids[image_id]}]")
        if file_name in files:
            raise DataError(f"{where} (id {image_id}): file {file_name} already listed by images[{files[file_name]}]")
        ids[image_id], files[file_name] = i, i
        images.append(ImageEntry(image_id, file_name, width, height))
    return images


def _categories(entries: list, path: Path) -> dict[int, str]:
    names: dict[int, str] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: categories[{i}]"
        _object(entry, where)
        category_id = _int(entry, "id", where)
        name = entry.get("name")
        if not isinstance(name, str):
            raise DataError(f"{where} (id {category_id}): 'name' must be a string, got {name!r}")
        if category_id in names:
            raise DataError(f"{where}: category id {category_id} listed twice")
        names[category_id] = name
    return names


def _annotations(entries: list, image_ids: set[int], categories: dict[int, str], path: Path) -> None:
    ids: dict[int, int] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: annotations[{i}]"
        _object(entry, where)
        # pycocotools' matching takes id 0 for "unmatched", so ids must be positive.
        ann_id = _int(entry, "id", where, positive=True)
        where = f"{where} (id {ann_id})"
        if ann_id in ids:
            raise DataError(f"{where}: annotation id already used by annotations[{ids[ann_id]}]")
        ids[ann_id] = i
        image_id = _int(entry, "image_id", where)
        if image_id not in image_ids:
            raise DataError(f"{where}: image_id {image_id} is not in 'images'")
        category_id = _int(entry, "category_id", where)
        if category_id not in categories:
            raise DataError(f"{where}: category_id {category_id} is not in 'categories'")
        bbox = entry.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_finite, bbox)) and min(bbox[2:]) >= 0):
            raise DataError(f"{where}: 'bbox' must be [x, y, width, height] with width, height >= 0, got {bbox!r}")
        if not _finite(entry.get("area")) or entry["area"] < 0:
            raise DataError(f"{where}: 'area' must be a non-negative number (COCOeval's small/medium/large "
                            f"split uses it), got {entry.get('area')!r}")
        if entry.get("iscrowd") not in (0, 1):
            raise DataError(f"{where}: 'iscrowd' must be 0 or 1, got {entry.get('iscrowd')!r}")


def class_mapping(annotations: Annotations, num_classes: int) -> tuple[list[int], str]:
    """(contiguous class -> COCO category id, how it was chosen) for a detector of `num_classes`."""
    from .categories import COCO_IDS

    listed = annotations.category_ids
    if len(listed) == num_classes:
        return list(listed), f"categories of {annotations.name} in increasing id order"
    if num_classes == len(COCO_IDS) and set(listed) <= set(COCO_IDS):
        return list(COCO_IDS), (f"the 80 standard COCO categories; {annotations.name} lists {len(listed)} of them "
                                "and only those are scored")
    raise DataError(
        f"{annotations.file} lists {len(listed)} categories but the model predicts {num_classes} classes. "
        f"A file with exactly {num_classes} categories maps class c to its c-th category in increasing id "
        "order; an 80-class COCO detector also takes any subset of the 80 standard categories (ids 1..90). "
        "Give an annotation file of one of those kinds"
    )


def _object(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise DataError(f"{where} must be a JSON object, got a JSON {_json_type(entry)}")


def _int(entry: dict, key: str, where: str, positive: bool = False) -> int:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or (positive and value < 1):
        need = "a positive integer" if positive else "an integer"
        raise DataError(f"{where}: '{key}' must be {need}, got {value!r}")
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
