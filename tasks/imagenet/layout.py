"""Which image files make up an ImageNet copy, and their labels: the two standard on-disk layouts.

Standard library only: listing files and reading label files stays cheap; pixels are dataset.py's job.

Detected in this order:

``val-list``
    A folder of images plus a label file, ``val_map.txt`` or ``val.txt``, with lines
    ``ILSVRC2012_val_00000001.JPEG 65`` (the MLPerf reference and Caffe format). Paths are relative to
    the folder. The label may also be a wnid (``n01751748``) when a label map is present.
``folders``
    One sub-folder per class, ``root/<wnid or class name>/*.JPEG`` (torchvision's ImageFolder). The
    class index is the folder's position in a label map when one is found, else its position in sorted
    folder order, which is ImageNet's class order only when all 1000 wnid folders are present.

A label map lists the wnids in class order, one per line, optionally followed by names:
``n01440764 tench, Tinca tinca`` (``LOC_synset_mapping.txt``, ``synset_words.txt``) or a plain list.
It is looked for in the data folder, then in its parent, where the ILSVRC and Kaggle downloads keep it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mnv4suite.errors import DataError

LABEL_FILES = ("val_map.txt", "val.txt")
LABEL_MAP_FILES = ("LOC_synset_mapping.txt", "synset_words.txt", "synsets.txt", "wnids.txt")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
VAL_LIST_EXAMPLE = "'ILSVRC2012_val_00000001.JPEG 65'"

_WNID = re.compile(r"n\d{8}")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass
class Listing:
    """What was found at a data path. Files are listed, not opened: they may still be missing or broken."""

    root: Path
    layout: str  # "val-list" | "folders"
    samples: list[Sample]
    label_file: Path | None = None  # the val-list label file
    label_map: Path | None = None  # the wnid list that fixed the class order, if any
    classes: list[str] | None = None  # class index -> wnid or folder name; None when unknown

    @property
    def class_order(self) -> str:
        if self.label_map is not None:
            return f"label map {self.label_map}"
        if self.layout == "folders":
            return "sorted folder names"
        return f"class indices in {self.label_file}"


def scan(root: str | os.PathLike) -> Listing:
    """Detect the layout at `root` and list its samples in a fixed order; DataError when neither fits."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"ImageNet data folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"ImageNet data path {root} is a file; expected the folder of images (point at its folder)")

    label_map = find_label_map(root)
    wnids = read_label_map(label_map) if label_map else None

    for name in LABEL_FILES:
        if (root / name).is_file():
            samples = read_val_list(root / name, root, wnids)
            return Listing(root, "val-list", samples, label_file=root / name, label_map=label_map, classes=wnids)

    class_dirs = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    per_class = {name: _images_in(root / name) for name in class_dirs}
    if any(per_class.values()):
        return _folders_listing(root, per_class, label_map, wnids)

    loose = _images_in(root)
    expected = (
        f"expected either one sub-folder of images per class (root/<wnid>/*.JPEG) or a flat folder of images "
        f"with a label file {' or '.join(LABEL_FILES)} (lines like {VAL_LIST_EXAMPLE})"
    )
    if loose:
        raise DataError(f"ImageNet data at {root}: found {len(loose)} images but no label file; {expected}")
    if class_dirs:
        raise DataError(
            f"ImageNet data at {root}: its {len(class_dirs)} sub-folders hold no images "
            f"({', '.join(IMAGE_SUFFIXES)}); {expected}"
        )
    raise DataError(f"ImageNet data folder {root} holds no images; {expected}")


def find_label_map(root: Path) -> Path | None:
    for folder in (root, root.parent):
        for name in LABEL_MAP_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


def read_label_map(path: Path) -> list[str]:
    """The wnids in class order: the first word of every non-empty line."""
    wnids: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in _lines(path):
        wnid = line.split(None, 1)[0]
        if not _WNID.fullmatch(wnid):
            raise DataError(
                f"{path}, line {lineno}: expected a WordNet id such as 'n01440764 tench, Tinca tinca', got {line!r}"
            )
        if wnid in seen:
            raise DataError(f"{path}, line {lineno}: {wnid} already listed on line {seen[wnid]}")
        seen[wnid] = lineno
        wnids.append(wnid)
    if not wnids:
        raise DataError(f"label map {path} is empty; expected one wnid per line in class order")
    return wnids


def read_val_list(path: Path, root: Path, wnids: list[str] | None = None) -> list[Sample]:
    """Samples in label-file order. Listed files are not checked here: a missing one is a per-sample problem."""
    index = {wnid: i for i, wnid in enumerate(wnids or ())}
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for lineno, line in _lines(path):
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise DataError(
                f"{path}, line {lineno}: expected '<image file> <class index>' like {VAL_LIST_EXAMPLE}, got {line!r}"
            )
        name, token = parts
        if token.isascii() and token.isdigit() and len(token) <= 6:  # "²".isdigit() is true too
            label = int(token)
        elif _WNID.fullmatch(token) and token in index:
            label = index[token]
        elif _WNID.fullmatch(token):
            where = "in the label map" if wnids else "without a label map (LOC_synset_mapping.txt) to number it"
            raise DataError(f"{path}, line {lineno}: label {token} is a wnid {'not found ' if wnids else ''}{where}")
        else:
            raise DataError(f"{path}, line {lineno}: label {token!r} is not a class index (a non-negative integer)")
        if name in seen:
            raise DataError(f"{path}, line {lineno}: {name} already listed on line {seen[name]}")
        seen[name] = lineno
        samples.append(Sample(root / name, label))
    if not samples:
        raise DataError(f"label file {path} lists no images; expected lines like {VAL_LIST_EXAMPLE}")
    return samples


def _folders_listing(
    root: Path, per_class: dict[str, list[str]], label_map: Path | None, wnids: list[str] | None
) -> Listing:
    if wnids is None:
        classes = list(per_class)
    else:
        unknown = [name for name in per_class if name not in wnids]
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise DataError(
                f"ImageNet data at {root}: folders {shown} are not wnids listed in the label map {label_map}; "
                "with a label map, class folders must be named by their wnid"
            )
        classes = wnids
    index = {name: i for i, name in enumerate(classes)}
    samples = [Sample(root / folder / f, index[folder]) for folder, files in per_class.items() for f in files]
    return Listing(root, "folders", samples, label_map=label_map, classes=classes)


def _images_in(folder: Path) -> list[str]:
    return sorted(
        e.name
        for e in os.scandir(folder)
        if e.name.lower().endswith(IMAGE_SUFFIXES) and not e.name.startswith(".") and e.is_file()
    )


#: ImageNet's val_map.txt and LOC_synset_mapping.txt are 1-3 MiB; a list this large is not one of them.
MAX_LIST_BYTES = 64 << 20


def _lines(path: Path):
    """(line number, stripped line) for non-empty, non-comment lines."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_LIST_BYTES + 1)
        if len(raw) > MAX_LIST_BYTES:
            raise DataError(f"{path} is larger than the {MAX_LIST_BYTES >> 20} MiB a label or image list needs "
                            "(ImageNet's are under 3 MiB): is it the right file?")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield lineno, line
