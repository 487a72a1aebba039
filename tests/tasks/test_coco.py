"""The COCO task's data side on small datasets written here in the real on-disk formats, broken files included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import coco_data
from coco_data import make_coco
from mnv4suite.api import ModelSpec, TaskSpec
from mnv4suite.errors import DataError, UserError
from mnv4suite.tasks import coco as plugin
from mnv4suite.tasks.coco import dataset as dataset_module
from mnv4suite.tasks.coco.categories import COCO_CATEGORIES, COCO_IDS
from mnv4suite.tasks.coco.instances import load
from mnv4suite.tasks.coco.layout import find
from mnv4suite.tasks.coco.preprocess import Letterbox, letterbox
from mnv4suite.tasks.coco.task import CocoTask
from mnv4suite.tasks.common.images import open_rgb
from mnv4suite.tasks.imagenet.preprocess import MEAN, STD

RES = 96  # small inputs keep the tests fast; the letterbox arithmetic does not depend on R


def detector(resolution: int = RES, num_classes: int = 80) -> ModelSpec:
    return ModelSpec(id="det", builder="unused:unused", resolution=resolution, num_classes=num_classes,
                     kind="detection")


@pytest.fixture
def task() -> CocoTask:
    return plugin.register_tasks()[0].create()


@pytest.fixture
def coco(tmp_path) -> coco_data.CocoFixture:
    return make_coco(tmp_path / "coco", images=6)


# ---------------------------------------------------------------------------------------- plugin


def test_plugin_declares_the_task():
    (spec,) = plugin.register_tasks()
    assert isinstance(spec, TaskSpec)
    assert (spec.id, spec.model_kind) == ("coco", "detection")
    assert spec.metrics == ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
    assert [r.module for r in spec.requires] == ["pycocotools"]
    assert isinstance(spec.create(), CocoTask)


def test_plugin_import_is_cheap():
    code = (
        "import sys, mnv4suite.tasks.coco as m; m.register_tasks(); "
        "heavy = [n for n in ('PIL', 'pycocotools', 'mnv4suite.tasks.coco.task', 'mnv4suite.tasks.coco.dataset', "
        "'mnv4suite.tasks.coco.postprocess') if n in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered_as_a_builtin():
    from mnv4suite.plugin_manager import BUILTIN_PLUGINS, create_plugin_manager

    assert "mnv4suite.tasks.coco" in BUILTIN_PLUGINS
    specs = [s for specs in create_plugin_manager(load_entrypoints=False).hook.register_tasks() for s in specs]
    assert "coco" in [s.id for s in specs]


def test_needs_a_detection_model(task, coco):
    with pytest.raises(UserError, match="needs a detection model"):
        task.dataset(ModelSpec(id="cls", builder="x:y", resolution=RES), coco.root)


# ---------------------------------------------------------------------------------------- categories


def test_the_80_coco_categories():
    assert len(COCO_CATEGORIES) == 80 and len(set(COCO_IDS)) == 80
    assert sorted(set(range(1, 91)) - set(COCO_IDS)) == [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]
    assert list(COCO_IDS) == sorted(COCO_IDS)
    names = {cid: name for cid, name, _ in COCO_CATEGORIES}
    assert (names[1], names[13], names[67], names[90]) == ("person", "stop sign", "dining table", "toothbrush")


def test_class_index_is_the_category_rank_in_id_order(tmp_path):
    coco = make_coco(tmp_path, images=2)
    coco.data["categories"] = list(reversed(coco.data["categories"]))  # order in the file does not matter
    coco.save()
    ann = load(coco.annotation_file)
    assert ann.category_ids == list(COCO_IDS)
    assert (ann.category_ids[0], ann.category_ids[11], ann.category_ids[79]) == (1, 13, 90)


# ---------------------------------------------------------------------------------------- layout


def test_official_layout(coco):
    layout = find(coco.root)
    assert (layout.split, layout.annotation_file, layout.image_dir) == ("val2017", coco.annotation_file, coco.image_dir)


def test_any_one_split(tmp_path):
    coco = make_coco(tmp_path, images=2, split="minival2014")
    assert find(tmp_path).split == "minival2014"
    assert len(CocoTask(plugin.register_tasks()[0]).dataset(detector(), tmp_path)) == 2
    assert coco.annotation_file.name == "instances_minival2014.json"


def test_val2017_is_preferred_over_other_splits(tmp_path):
    make_coco(tmp_path, images=2, split="train2017")
    make_coco(tmp_path, images=2, split="val2017", seed=1)
    assert find(tmp_path).split == "val2017"


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("x"), "is a file"),
        (lambda p: p.mkdir(), "no .*instances_\\*.json found"),
        (lambda p: [make_coco(p, images=1, split=s, seed=i) for i, s in enumerate(("a2017", "b2017"))], "ambiguous"),
        (lambda p: _rmtree(make_coco(p, images=1).image_dir), "no image folder"),
        (lambda p: _rmtree(make_coco(p, images=1, split="test").image_dir), "no test/ folder"),
    ],
    ids=["missing", "file", "empty", "ambiguous", "no-image-folder", "other-split-without-folder"],
)
def test_layout_errors_say_what_was_looked_for(tmp_path, setup, expected):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DataError, match=expected) as info:
        find(root)
    assert str(root) in str(info.value)
    if expected in ("does not exist", "no .*instances_\\*.json found"):
        assert "annotations/instances_val2017.json" in str(info.value)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


# ---------------------------------------------------------------------------------------- annotation file


def _edit(change):
    """A setup that writes a valid file, then applies `change` to its data."""

    def setup(coco):
        change(coco.data)
        coco.save()

    return setup


def _write(text):
    def setup(coco):
        coco.annotation_file.write_text(text)

    return setup


@pytest.mark.parametrize(
    "setup, expected",
    [
        (_write(coco_data.NOT_COCO["invalid"]), "not valid JSON: .* at line 3, column 3"),
        (_write(coco_data.NOT_COCO["empty"]), "not valid JSON"),
        (_write(coco_data.NOT_COCO["list"]), "expected a JSON object .* got a JSON list"),
        (_write(coco_data.NOT_COCO["captions"]), "no 'categories'"),
        (_write(b"\xff\xfe{}".decode("latin-1")), "not valid JSON|not UTF-8"),
        (_edit(lambda d: d.update(images={})), "'images' must be a list"),
        (_edit(lambda d: d.update(images=[])), "lists no images"),
        (_edit(lambda d: d["images"][1].pop("width")), r"images\[1\].*'width' must be a positive integer, got None"),
        (_edit(lambda d: d["images"][0].update(height=0)), "'height' must be a positive integer"),
        (_edit(lambda d: d["images"][0].update(id="7")), "'id' must be an integer, got '7'"),
        (_edit(lambda d: d["images"].append(dict(d["images"][0], file_name="x.jpg"))), "image id .* already used"),
        (_edit(lambda d: d["images"][0].update(file_name=d["images"][1]["file_name"])), "already listed by images"),
        (_edit(lambda d: d["categories"].append(d["categories"][0])), "category id 1 listed twice"),
        (_edit(lambda d: d["categories"][3].update(name=None)), r"categories\[3\].*'name' must be a string"),
        (_edit(lambda d: d["annotations"][2].update(image_id=123)),
         r"annotations\[2\].*image_id 123 is not in 'images'"),
        (_edit(lambda d: d["annotations"][0].update(category_id=12)), "category_id 12 is not in 'categories'"),
        (_edit(lambda d: d["annotations"][0].update(bbox=[1, 2, 3])), "'bbox' must be \\[x, y, width, height\\]"),
        (_edit(lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4])), "'bbox' must be"),
        (_edit(lambda d: d["annotations"][0].pop("area")), "'area' must be a non-negative number"),
        (_edit(lambda d: d["annotations"][0].update(iscrowd=2)), "'iscrowd' must be 0 or 1"),
        (_edit(lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"])), "annotation id already used"),
        (_edit(lambda d: d["annotations"][0].update(id=0)), "'id' must be a positive integer, got 0"),
        (_edit(lambda d: d["annotations"].__setitem__(0, [1, 2])), r"annotations\[0\] must be a JSON object"),
    ],
    ids=["invalid-json", "empty-file", "results-list", "captions", "binary", "images-not-list", "no-images",
         "no-width", "zero-height", "string-id", "duplicate-image-id", "duplicate-file", "duplicate-category",
         "category-without-name", "unknown-image", "unknown-category", "short-bbox", "negative-bbox", "no-area",
         "bad-iscrowd", "duplicate-annotation-id", "annotation-id-0", "annotation-not-object"],
)
def test_annotation_file_errors_name_the_file(tmp_path, task, setup, expected):
    coco = make_coco(tmp_path / "coco", images=3, objects=(2, 3))
    setup(coco)
    with pytest.raises(DataError, match=expected) as info:
        task.dataset(detector(), coco.root)
    assert str(coco.annotation_file) in str(info.value)


def test_category_count_must_match_the_model(task, coco):
    with pytest.raises(DataError, match="lists 80 categories but the model predicts 91 classes") as info:
        task.dataset(detector(num_classes=91), coco.root)
    assert str(coco.annotation_file) in str(info.value)


def test_a_subset_of_the_standard_categories_keeps_the_standard_mapping(task, tmp_path):
    coco = make_coco(tmp_path, images=3)
    coco.data["categories"] = [c for c in coco.data["categories"] if c["id"] in (1, 3, 90)]
    coco.data["annotations"] = [a for a in coco.data["annotations"] if a["category_id"] in (1, 3, 90)]
    coco.save()
    ds = task.dataset(detector(), coco.root)
    assert ds.category_ids == list(COCO_IDS)  # class c is still the c-th standard id
    assert ds.info()["categories"] == 3 and "lists 3 of them and only those are scored" in ds.info()["class_order"]
    # a detector of exactly as many classes as the file lists: the file's own ordered mapping
    assert task.dataset(detector(num_classes=3), coco.root).category_ids == [1, 3, 90]
    with pytest.raises(DataError, match="lists 3 categories but the model predicts 5 classes"):
        task.dataset(detector(num_classes=5), coco.root)


def test_non_standard_categories_need_the_models_class_count(task, tmp_path):
    coco = make_coco(tmp_path, images=2)
    coco.data["categories"] = [{"id": 100 + i, "name": f"thing {i}", "supercategory": "x"} for i in range(80)]
    for k, a in enumerate(coco.data["annotations"]):
        a["category_id"] = 100 + k % 80
    coco.save()
    assert task.dataset(detector(), coco.root).category_ids == list(range(100, 180))
    coco.data["categories"] = coco.data["categories"][:40]
    coco.data["annotations"] = [a for a in coco.data["annotations"] if a["category_id"] < 140]
    coco.save()
    with pytest.raises(DataError, match="lists 40 categories but the model predicts 80 classes"):
        task.dataset(detector(), coco.root)


def test_a_non_coco_file_where_the_annotations_belong(tmp_path, task):
    coco = make_coco(tmp_path, images=2)
    coco_data.write_not_coco(coco.annotation_file, "list")
    with pytest.raises(DataError, match="is not a COCO instances file"):
        task.dataset(detector(), coco.root)


# ---------------------------------------------------------------------------------------- the dataset


def test_samples_are_images_in_the_files_order(task, coco):
    """MLCommons' tools index samples by position in 'images': the real val2017 file is not id-sorted."""
    shuffled = [coco.data["images"][i] for i in (3, 0, 5, 1, 4, 2)]
    coco.data["images"] = shuffled
    coco.save()
    ds = task.dataset(detector(), coco.root)
    assert ds.image_ids == [im["id"] for im in shuffled] != sorted(ds.image_ids) and len(ds) == 6
    assert ds.files == [coco.image_dir / f"{i:012d}.jpg" for i in ds.image_ids]
    assert ds.skipped == [] and not ds.synthetic and ds.name == "coco"
    info = ds.info()
    assert (info["split"], info["available"], info["samples"], info["skipped"], info["selection"]) == (
        "val2017", 6, 6, 0, "all")
    assert info["annotations"] == len(coco.data["annotations"]) and info["categories"] == 80
    assert info["sample_order"] == "images of instances_val2017.json in the file's order"


def test_count_takes_the_same_evenly_spaced_subset(task, tmp_path):
    coco = make_coco(tmp_path, images=10)
    ids = [im["id"] for im in coco.data["images"]]
    first = task.dataset(detector(), coco.root, count=3)
    assert first.image_ids == [ids[0], ids[3], ids[6]]
    assert task.dataset(detector(), coco.root, count=3).image_ids == first.image_ids
    assert first.info()["selection"] == "3 evenly spaced of 10 (in the file's order)"
    assert len(task.dataset(detector(), coco.root, count=99)) == 10
    with pytest.raises(UserError):
        task.dataset(detector(), coco.root, count=0)
    with pytest.raises(UserError):
        task.dataset(detector(), coco.root, on_error="ignore")


def test_inputs_are_the_letterboxed_images(task, coco):
    ds = task.dataset(detector(), coco.root)
    ds.load(range(len(ds)))
    for i in range(len(ds)):
        expected, box = letterbox(open_rgb(ds.files[i]), RES)
        assert box == ds.letterbox(i)
        x = ds.get(i)
        assert x.shape == (1, 3, RES, RES) and x.dtype == np.float32
        np.testing.assert_array_equal(x, expected)
    with pytest.raises(RuntimeError, match="not loaded"):
        ds.unload([0]) or ds.get(0)


def test_synthetic_dataset(task):
    ds = task.dataset(detector(resolution=64), None)
    assert ds.synthetic and len(ds) == 64 and ds.skipped == []
    ds.load([3])
    assert ds.get(3).shape == (1, 3, 64, 64)
    assert len(task.dataset(detector(), None, count=5)) == 5
    assert ds.category_ids == list(COCO_IDS)
    assert ds.letterbox(3) == Letterbox(64, 64, 64, 64, 64)


# ---------------------------------------------------------------------------------------- letterbox


def test_letterbox_geometry():
    assert Letterbox.fit(640, 480, 384) == Letterbox(640, 480, 384, 384, 288)
    assert Letterbox.fit(480, 640, 384) == Letterbox(480, 640, 384, 288, 384)
    assert Letterbox.fit(500, 333, 384).content_height == round(333 * 384 / 500) == 256
    assert Letterbox.fit(100, 100, 384) == Letterbox(100, 100, 384, 384, 384)  # upscaled
    assert Letterbox.fit(4000, 3, 384).content_height == 1  # never empty
    with pytest.raises(ValueError):
        Letterbox.fit(0, 10, 384)


def test_letterbox_pixels_and_padding():
    colour = (200, 100, 50)
    x, box = letterbox(Image.new("RGB", (300, 200), colour), 96)
    assert (box.content_width, box.content_height) == (96, 64)
    expected = [(c / 255 - m) / s for c, m, s in zip(colour, MEAN, STD)]
    for channel, value in enumerate(expected):
        np.testing.assert_allclose(x[0, channel, :64], value, atol=1e-5)
    assert (x[0, :, 64:] == 0).all()  # the mean pixel, exactly


def test_a_box_maps_back_to_where_it_was():
    """A bright rectangle in the original lands where Letterbox.to_input says, and maps back exactly."""
    width, height, resolution = 640, 427, 384
    rect = (200.0, 100.0, 160.0, 120.0)  # x, y, w, h
    image = np.zeros((height, width, 3), np.uint8)
    image[100:220, 200:360] = 255
    x, box = letterbox(Image.fromarray(image), resolution)
    ymin, xmin, ymax, xmax = box.to_input([rect])[0]
    bright = np.argwhere(x[0, 0] > 0.5)  # pixels more than half white
    (y0, x0), (y1, x1) = bright.min(0), bright.max(0) + 1
    assert abs(y0 - ymin) <= 1 and abs(y1 - ymax) <= 1 and abs(x0 - xmin) <= 1 and abs(x1 - xmax) <= 1
    back = box.to_original(box.to_input([rect]))[0]
    np.testing.assert_allclose(back, [100, 200, 220, 360], atol=1e-9)


# ---------------------------------------------------------------------------------------- broken files


BREAKERS = {
    "truncated": lambda c: (coco_data.truncate(c, 1), None),
    "random-bytes": lambda c: (coco_data.random_bytes(c, 2), None),
    "wrong-size": lambda c: (coco_data.resize_on_disk(c, 3), "but instances_val2017.json gives"),
    "entry-without-file": lambda c: (coco_data.add_entry_without_file(c), "file not found"),
    "not-in-annotations": lambda c: (coco_data.add_unlisted_image(c), "not in instances_val2017.json"),
}


@pytest.mark.parametrize("kind", list(BREAKERS))
def test_a_broken_file_stops_the_run_with_its_name(task, coco, kind):
    path, why = BREAKERS[kind](coco)
    with pytest.raises(DataError) as info:
        task.dataset(detector(), coco.root)
    message = str(info.value)
    assert str(path) in message and "--on-error skip" in message
    if why:
        assert why in message


def test_every_broken_file_is_skipped_and_counted(task, tmp_path):
    coco = make_coco(tmp_path, images=8)
    ids = [im["id"] for im in coco.images]
    broken = {kind: BREAKERS[kind](coco) for kind in BREAKERS}
    with pytest.raises(DataError, match=r"\(4 more unusable files\)"):
        task.dataset(detector(), coco.root)
    ds = task.dataset(detector(), coco.root, on_error="skip")
    assert sorted(f for f, _ in ds.skipped) == sorted(str(p) for p, _ in broken.values())
    reasons = dict(ds.skipped)
    for path, why in broken.values():
        assert reasons[str(path)] and (why is None or why in reasons[str(path)])
    assert ds.image_ids == [ids[i] for i in (0, 4, 5, 6, 7)]
    assert ds.info()["skipped"] == 5 and ds.requested == 9  # 8 made + the entry without a file
    ds.load(range(len(ds)))  # the rest decode


def test_nothing_usable_is_an_error_even_when_skipping(task, tmp_path):
    coco = make_coco(tmp_path, images=2)
    coco_data.truncate(coco, 0), coco_data.random_bytes(coco, 1)
    with pytest.raises(DataError, match="none of the 2 selected COCO images"):
        task.dataset(detector(), coco.root, on_error="skip")


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grayscale_and_cmyk_jpegs_are_accepted(task, coco, mode):
    path = coco_data.recolour(coco, 2, mode)
    assert Image.open(path).mode == mode
    ds = task.dataset(detector(), coco.root)
    assert ds.skipped == [] and len(ds) == 6
    ds.load([2])
    np.testing.assert_array_equal(ds.get(2), letterbox(Image.open(path).convert("RGB"), RES)[0])
    if mode == "L":
        box = ds.letterbox(2)
        rgb = ds.get(2)[0, :, : box.content_height, : box.content_width] * STD[:, None, None] + MEAN[:, None, None]
        assert np.allclose(rgb[0], rgb[1], atol=1e-6) and np.allclose(rgb[0], rgb[2], atol=1e-6)  # gray stays gray


def test_file_changed_after_the_check_stops_at_load(task, coco):
    ds = task.dataset(detector(), coco.root)
    ds.files[1].write_bytes(b"gone")
    with pytest.raises(DataError, match=str(ds.files[1])):
        ds.load([0, 1, 2])


# ---------------------------------------------------------------------------------------- input cache


def test_second_build_neither_checks_nor_decodes(task, tmp_path, monkeypatch):
    coco = make_coco(tmp_path / "coco", images=5)
    coco_data.truncate(coco, 2)
    cache = tmp_path / "cache"
    cold = task.dataset(detector(), coco.root, on_error="skip", cache_dir=cache)
    cold.load(range(len(cold)))
    expected = [cold.get(i) for i in range(len(cold))]
    assert cold.info()["input_cache"]["warm"] is False

    calls = []
    monkeypatch.setattr(dataset_module, "check_image_size", lambda *a: calls.append(a))
    monkeypatch.setattr(dataset_module, "open_rgb", lambda *a: calls.append(a))
    warm = task.dataset(detector(), coco.root, on_error="skip", cache_dir=cache)
    warm.load(range(len(warm)))
    assert calls == []
    assert warm.info()["input_cache"]["warm"] is True
    assert warm.skipped == cold.skipped and warm.image_ids == cold.image_ids
    for i, x in enumerate(expected):
        np.testing.assert_array_equal(warm.get(i), x)


def test_changed_annotated_sizes_do_not_reuse_the_cache(task, tmp_path):
    coco = make_coco(tmp_path / "coco", images=3)
    cache = tmp_path / "cache"
    task.dataset(detector(), coco.root, cache_dir=cache).load(range(3))
    coco.data["images"][0]["width"] += 1
    coco.save()
    with pytest.raises(DataError, match="but instances_val2017.json gives"):
        task.dataset(detector(), coco.root, cache_dir=cache)


def test_generated_files_are_what_they_claim(coco):
    """The generator itself: real JPEGs of the annotated sizes, objects of all three COCO size classes."""
    data = json.loads(coco.annotation_file.read_text())
    assert data == coco.data
    for im in data["images"]:
        with Image.open(coco.image_dir / im["file_name"]) as image:
            assert image.format == "JPEG" and image.size == (im["width"], im["height"])
    areas = [a["area"] for a in data["annotations"]]
    assert min(areas) < 32**2 and any(32**2 < a < 96**2 for a in areas) and max(areas) > 96**2
