"""Small COCO datasets in the real on-disk formats, for tests, end-to-end runs and benchmarks.

    from coco_data import make_coco, truncate
    coco = make_coco(tmp_path / "coco", images=8)      # <root>/annotations/instances_val2017.json + val2017/*.jpg
    truncate(coco, 3)                                 # break one image
    task.dataset(model, coco.root, on_error="skip")

`make_coco` writes real JPEGs with filled rectangles ("objects") of all three COCO size classes
(small < 32**2 <= medium < 96**2 <= large, by area in original pixels) on a noisy background, and an
instances file with the 80 real COCO categories (ids 1..90 with gaps), COCO-like image ids and file
names, and every field pycocotools reads. Each rectangle is its object's exact box, and objects never
overlap.

The helpers after it break a dataset in the ways real downloads break (truncated or corrupt files,
grayscale and CMYK JPEGs, a file the annotation file does not list, an entry without its file, an
image whose size disagrees with its entry, a JSON file that is not COCO). `perfect_output` builds the
raw detector output (1, A, 4 + 80) that decodes to an image's ground truth: a fake model returning
it must score AP 100 through the whole pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mnv4suite.tasks.coco.categories import COCO_CATEGORIES, as_json

IMAGE_SIZES = ((320, 240), (240, 320), (400, 300), (256, 256), (352, 224))
#: (min side, max side) of each size class, chosen away from COCO's area limits 32**2 and 96**2
OBJECT_SIDES = {"small": (10, 24), "medium": (40, 72), "large": (110, 150)}
MARGIN = 3  # pixels kept free around every object


@dataclass
class CocoFixture:
    """A generated dataset: where it lies and the annotation data as written."""

    root: Path
    split: str
    data: dict[str, Any]

    @property
    def annotation_file(self) -> Path:
        return self.root / "annotations" / f"instances_{self.split}.json"

    @property
    def image_dir(self) -> Path:
        return self.root / self.split

    @property
    def images(self) -> list[dict[str, Any]]:
        """Image entries in the file's order: the dataset's sample order."""
        return list(self.data["images"])

    def image_path(self, i: int) -> Path:
        """The file of the i-th image in the file's order."""
        return self.image_dir / self.images[i]["file_name"]

    def annotations_of(self, image_id: int) -> list[dict[str, Any]]:
        return [a for a in self.data["annotations"] if a["image_id"] == image_id]

    def save(self) -> Path:
        """Write the annotation data again, after changing it."""
        self.annotation_file.parent.mkdir(parents=True, exist_ok=True)
        self.annotation_file.write_text(json.dumps(self.data))
        return self.annotation_file


def make_coco(
    root: str | Path,
    images: int = 8,
    seed: int = 0,
    *,
    split: str = "val2017",
    objects: tuple[int, int] = (2, 5),
    empty: int = 0,
    crowd: int = 0,
    sizes: tuple[tuple[int, int], ...] = IMAGE_SIZES,
    quality: int = 90,
) -> CocoFixture:
    """Write `images` JPEGs and their instances file under `root`.

    Every image but the last `empty` holds between objects[0] and objects[1] objects; the first three
    size classes are cycled so that any dataset of 2+ images has small, medium and large objects.
    `crowd` objects (iscrowd=1, ignored by COCOeval) are added to the first images.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    image_dir = root / split
    image_dir.mkdir(parents=True, exist_ok=True)
    image_ids = sorted(int(i) for i in rng.choice(np.arange(1, 600_000), size=images, replace=False))
    data: dict[str, Any] = {
        "info": {"description": "mnv4suite test data (generated)", "version": "1.0", "year": 2017},
        "licenses": [{"id": 1, "name": "generated", "url": ""}],
        "images": [],
        "annotations": [],
        "categories": as_json(),
    }
    size_classes = list(OBJECT_SIDES)
    next_ann = 1
    for n, image_id in enumerate(image_ids):
        width, height = sizes[n % len(sizes)]
        file_name = f"{image_id:012d}.jpg"
        pixels = _background(rng, width, height)
        boxes: list[tuple[int, int, int, int]] = []
        wanted = 0 if n >= images - empty else int(rng.integers(objects[0], objects[1] + 1))
        for k in range(wanted + (1 if n < crowd else 0)):
            kind = size_classes[(n + k) % 3]
            placed = _place(rng, width, height, OBJECT_SIDES[kind], boxes)
            if placed is None:
                continue
            boxes.append(placed)
            x, y, w, h = placed
            colour = rng.integers(0, 256, 3)
            pixels[y:y + h, x:x + w] = colour
            cat_id = int(COCO_CATEGORIES[int(rng.integers(len(COCO_CATEGORIES)))][0])
            data["annotations"].append({
                "id": next_ann, "image_id": image_id, "category_id": cat_id,
                "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h),
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                "iscrowd": 1 if k == wanted else 0,
            })
            next_ann += 1
        Image.fromarray(pixels).save(image_dir / file_name, "JPEG", quality=quality)
        data["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height,
                               "license": 1, "coco_url": "", "date_captured": "2013-11-14 16:28:13"})
    coco = CocoFixture(root, split, data)
    coco.save()
    return coco


def _background(rng, width: int, height: int) -> np.ndarray:
    """A smooth gradient with noise: realistic JPEG sizes, and nothing that looks like an object."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 200 // width, yy * 200 // height, (xx + yy) * 100 // (width + height)], axis=-1)
    return np.clip(base + rng.integers(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)


def _place(rng, width, height, sides, taken, tries: int = 200):
    for _ in range(tries):
        w, h = (int(v) for v in rng.integers(sides[0], sides[1] + 1, 2))
        if w + 2 * MARGIN > width or h + 2 * MARGIN > height:
            return None
        x = int(rng.integers(MARGIN, width - w - MARGIN + 1))
        y = int(rng.integers(MARGIN, height - h - MARGIN + 1))
        if all(x + w + MARGIN <= bx or bx + bw + MARGIN <= x or y + h + MARGIN <= by or by + bh + MARGIN <= y
               for bx, by, bw, bh in taken):
            return x, y, w, h
    return None


# ---------------------------------------------------------------------------------------- breaking it


def truncate(coco: CocoFixture, i: int, keep: float = 0.6) -> Path:
    """Cut the i-th image file short, as an interrupted download does."""
    path = coco.image_path(i)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def random_bytes(coco: CocoFixture, i: int, seed: int = 0) -> Path:
    """Replace the i-th image file by noise (not an image at all)."""
    path = coco.image_path(i)
    path.write_bytes(np.random.default_rng(seed).bytes(2048))
    return path


def recolour(coco: CocoFixture, i: int, mode: str) -> Path:
    """Save the i-th image again as a grayscale ("L") or CMYK JPEG: still valid, same size and boxes."""
    path = coco.image_path(i)
    with Image.open(path) as image:
        converted = image.convert(mode)
    converted.save(path, "JPEG", quality=90)
    return path


def resize_on_disk(coco: CocoFixture, i: int, size: tuple[int, int] | None = None) -> Path:
    """Make the i-th file's size disagree with its entry (default: 8 pixels wider)."""
    path = coco.image_path(i)
    with Image.open(path) as image:
        image.load()
        new = size or (image.width + 8, image.height)
        image.resize(new).save(path, "JPEG", quality=90)
    return path


def add_unlisted_image(coco: CocoFixture, name: str = "000000888888.jpg", size=(64, 48)) -> Path:
    """An image in the folder that the annotation file does not list."""
    path = coco.image_dir / name
    Image.new("RGB", size, (90, 120, 30)).save(path, "JPEG")
    return path


def add_entry_without_file(coco: CocoFixture, image_id: int = 999_999, size=(64, 48)) -> Path:
    """An image entry (with one annotation) whose file is missing; returns the path it names."""
    file_name = f"{image_id:012d}.jpg"
    coco.data["images"].append({"id": image_id, "file_name": file_name, "width": size[0], "height": size[1]})
    next_id = max((a["id"] for a in coco.data["annotations"]), default=0) + 1
    coco.data["annotations"].append({"id": next_id, "image_id": image_id, "category_id": 1,
                                     "bbox": [4.0, 4.0, 20.0, 20.0], "area": 400.0, "iscrowd": 0})
    coco.save()
    return coco.image_dir / file_name


NOT_COCO = {
    "invalid": '{"images": [\n  {"id": 1,\n  }\n]}',  # a trailing comma: line 3, column 3
    "list": json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}]),  # a results file
    "captions": json.dumps({"images": [], "annotations": [{"id": 1, "image_id": 1, "caption": "a cat"}]}),
    "empty": "",
}


def write_not_coco(path: str | Path, kind: str = "list") -> Path:
    """Write a JSON file that is not a COCO instances file (see NOT_COCO for the kinds)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(NOT_COCO[kind])
    return path


# ---------------------------------------------------------------------------------------- the answers


def perfect_output(coco: CocoFixture, i: int, resolution: int = 384, hit: float = 10.0,
                   miss: float = -10.0, class_ids: list[int] | None = None) -> np.ndarray:
    """The raw detector output (1, A, 4 + classes) that encodes the i-th image's ground truth exactly.

    `class_ids`: the detector's class -> category id (default: the file's categories in id order).

    For each non-crowd object: the anchor that overlaps its letterboxed box best (the next best when
    another object took it) carries the inverse box coding of the box and logit `hit` for its class;
    every other logit is `miss`.
    """
    from mnv4suite.tasks.coco.anchors import anchors
    from mnv4suite.tasks.coco.postprocess import encode_boxes, iou
    from mnv4suite.tasks.coco.preprocess import Letterbox

    image = coco.images[i]
    box = Letterbox.fit(image["width"], image["height"], resolution)
    anchor_set = anchors(resolution)
    corners = anchor_set.corners()
    class_of = {cid: c for c, cid in enumerate(class_ids or sorted(c["id"] for c in coco.data["categories"]))}
    out = np.zeros((1, len(anchor_set), 4 + len(class_of)), dtype=np.float32)
    out[0, :, 4:] = miss
    used: set[int] = set()
    for ann in coco.annotations_of(image["id"]):
        if ann["iscrowd"]:
            continue
        target = box.to_input(ann["bbox"])
        overlap = iou(target[0], corners)
        overlap[list(used)] = -1.0
        best = int(np.argmax(overlap))
        used.add(best)
        out[0, best, :4] = encode_boxes(target, anchor_set.centers_sizes[best:best + 1])[0]
        out[0, best, 4 + class_of[ann["category_id"]]] = hit
    return out


def mlcommons_style_ap(accuracy_log: list[dict[str, Any]], annotation_file: Path) -> float:
    """AP in percent the way MLCommons' accuracy-coco.py scores a LoadGen accuracy log (written here
    from its documented behaviour): qsl_idx is the position in the file's 'images', boxes are scaled
    by that entry's size, a sample's first entry counts, images without detections are evaluated."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotation_file))
        images, seen, ids, results = gt.dataset["images"], set(), set(), []
        for entry in accuracy_log:
            if entry["qsl_idx"] in seen:
                continue
            seen.add(entry["qsl_idx"])
            image = images[entry["qsl_idx"]]
            ids.add(image["id"])
            h, w = image["height"], image["width"]
            rows = np.frombuffer(bytes.fromhex(entry["data"]), "<f4").reshape(-1, 7).tolist()
            for _, ymin, xmin, ymax, xmax, score, label in rows:
                results.append({"image_id": image["id"], "category_id": int(label), "score": score,
                                "bbox": [xmin * w, ymin * h, (xmax - xmin) * w, (ymax - ymin) * h]})
        evaluation = COCOeval(gt, gt.loadRes(results) if results else COCO(), "bbox")
        evaluation.params.imgIds = sorted(ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return 100.0 * float(evaluation.stats[0])
