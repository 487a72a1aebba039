"""The ImageNet task on small datasets written here in the real on-disk formats, broken files included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnv4suite.api import ModelSpec, TaskSpec
from mnv4suite.errors import DataError, UserError
from mnv4suite.tasks import imagenet as plugin
from mnv4suite.tasks.common import images as images_module
from mnv4suite.tasks.imagenet.dataset import select
from mnv4suite.tasks.imagenet.layout import scan
from mnv4suite.tasks.imagenet.preprocess import MEAN, STD, center_crop, preprocess, resize_shorter, resize_size
from mnv4suite.tasks.imagenet.task import ImageNetTask, decode

WNIDS = ["n01440764", "n01443537", "n01484850"]  # tench, goldfish, great white shark: classes 0, 1, 2
RES = 32


def model(num_classes: int = 3, resolution: int = RES) -> ModelSpec:
    return ModelSpec(id="tiny", builder="unused:unused", resolution=resolution, num_classes=num_classes)


@pytest.fixture
def task() -> ImageNetTask:
    return plugin.register_tasks()[0].create()


def write_jpeg(path: Path, color=(120, 60, 30), size=(48, 40), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB":
        # a little texture so the encoder writes a realistic amount of entropy-coded data
        pixels = (np.indices((size[1], size[0])).sum(0)[..., None] * 3 + np.array(color)) % 256
        Image.fromarray(pixels.astype(np.uint8)).save(path, "JPEG", quality=90)
    else:
        Image.new(mode, size, color).save(path, "JPEG")
    return path


def make_folders(root: Path, per_class: int = 2, wnids=WNIDS) -> Path:
    for c, wnid in enumerate(wnids):
        for i in range(per_class):
            write_jpeg(root / wnid / f"{wnid}_{i}.JPEG", color=(40 * c, 10 * i, 90))
    return root


def make_val(root: Path, labels=(2, 0, 1, 1, 0, 2), name="val_map.txt") -> Path:
    lines = []
    for i, label in enumerate(labels, 1):
        file = f"ILSVRC2012_val_{i:08d}.JPEG"
        write_jpeg(root / file, color=(20 * i, 50, 70 * label))
        lines.append(f"{file} {label}")
    (root / name).write_text("\n".join(lines) + "\n")
    return root


def payload(*classes: int) -> bytes:
    return np.array(classes, dtype="<i4").tobytes()


# ---------------------------------------------------------------------------------------- plugin


def test_plugin_declares_the_task():
    (spec,) = plugin.register_tasks()
    assert isinstance(spec, TaskSpec)
    assert (spec.id, spec.model_kind, spec.metrics) == ("imagenet", "classification", ("top1", "top5"))
    assert isinstance(spec.create(), ImageNetTask)


def test_plugin_import_does_not_import_pil_or_the_implementation():
    code = (
        "import sys, mnv4suite.tasks.imagenet as m; m.register_tasks(); "
        "heavy = [n for n in ('PIL', 'tqdm', 'mnv4suite.tasks.imagenet.task', 'mnv4suite.tasks.imagenet.dataset') if n in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------- layouts


def test_folders_layout_uses_sorted_folder_order(tmp_path):
    make_folders(tmp_path / "val", wnids=["n01484850", "n01440764", "n01443537"])  # created out of order
    listing = scan(tmp_path / "val")
    assert listing.layout == "folders"
    assert listing.classes == sorted(WNIDS)
    assert listing.class_order == "sorted folder names"
    assert [(s.path.parent.name, s.label) for s in listing.samples] == [(w, c) for c, w in enumerate(WNIDS) for _ in range(2)]


def test_folders_layout_accepts_class_names(tmp_path):
    make_folders(tmp_path, per_class=1, wnids=["tench", "goldfish"])
    assert scan(tmp_path).classes == ["goldfish", "tench"]


@pytest.mark.parametrize("where", ["root", "parent"])
@pytest.mark.parametrize("style", ["LOC_synset_mapping.txt", "synset_words.txt", "plain"])
def test_label_map_fixes_class_order(tmp_path, where, style):
    # a 4-class map in an order that is not sorted; only 2 of its classes have folders
    order = ["n01484850", "n09999999", "n01440764", "n01443537"]
    names = {"n01484850": "great white shark", "n09999999": "other", "n01440764": "tench, Tinca tinca", "n01443537": "goldfish"}
    lines = [w if style == "plain" else f"{w} {names[w]}" for w in order]
    file = "wnids.txt" if style == "plain" else style
    root = tmp_path / "val"
    make_folders(root, per_class=1, wnids=["n01440764", "n01484850"])
    (root if where == "root" else tmp_path).joinpath(file).write_text("\n".join(lines) + "\n")
    listing = scan(root)
    assert listing.classes == order
    assert listing.label_map.name == file
    assert {s.path.parent.name: s.label for s in listing.samples} == {"n01440764": 2, "n01484850": 0}


def test_val_list_layout(tmp_path):
    make_val(tmp_path, labels=(2, 0, 1))
    listing = scan(tmp_path)
    assert listing.layout == "val-list"
    assert listing.label_file == tmp_path / "val_map.txt"
    assert [(s.path.name, s.label) for s in listing.samples] == [
        ("ILSVRC2012_val_00000001.JPEG", 2),
        ("ILSVRC2012_val_00000002.JPEG", 0),
        ("ILSVRC2012_val_00000003.JPEG", 1),
    ]


def test_caffe_val_txt_and_wnid_labels(tmp_path):
    make_val(tmp_path, labels=(1, 0), name="val.txt")
    (tmp_path / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG n01443537\nILSVRC2012_val_00000002.JPEG 0\n")
    (tmp_path / "synset_words.txt").write_text("".join(f"{w} name\n" for w in WNIDS))
    assert [s.label for s in scan(tmp_path).samples] == [1, 0]


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("x"), "is a file"),
        (lambda p: p.mkdir(), "holds no images"),
        (lambda p: (p / "n01440764").mkdir(parents=True), "sub-folders hold no images"),
        (lambda p: write_jpeg(p / "ILSVRC2012_val_00000001.JPEG"), "no label file"),
        (lambda p: make_val(p).joinpath("val_map.txt").write_text("ILSVRC2012_val_00000001.JPEG\n"), "line 1: expected '<image file> <class index>'"),
        (lambda p: make_val(p).joinpath("val_map.txt").write_text("ILSVRC2012_val_00000001.JPEG tench\n"), "not a class index"),
        (lambda p: make_val(p).joinpath("val_map.txt").write_text("ILSVRC2012_val_00000001.JPEG n01440764\n"), "without a label map"),
        (lambda p: make_val(p).joinpath("val_map.txt").write_text("\n# nothing\n"), "lists no images"),
        (lambda p: make_val(p).joinpath("val_map.txt").write_text("a.JPEG 1\na.JPEG 2\n"), "already listed on line 1"),
        (lambda p: make_val(p).joinpath("val_map.txt").write_text("a.JPEG \u00b2\n"), "not a class index"),
        (lambda p: make_folders(p).joinpath("synset_words.txt").write_text("n01440764 tench\n"), "not wnids listed in the label map"),
        (lambda p: make_folders(p).joinpath("synset_words.txt").write_text("tench\n"), "expected a WordNet id"),
    ],
    ids=["missing", "file", "empty", "empty-class-folders", "flat-no-labels", "short-line", "bad-label",
         "wnid-label-no-map", "empty-label-file", "duplicate", "superscript-digit", "folder-not-in-map", "bad-map"],
)
def test_layout_errors_name_the_path_and_what_was_expected(tmp_path, setup, expected):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DataError, match=expected) as info:
        scan(root)
    assert str(root) in str(info.value)


# ---------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("on_error", ["stop", "skip"])
def test_label_file_naming_a_missing_image(tmp_path, task, on_error):
    make_val(tmp_path, labels=(0, 1, 2))
    (tmp_path / "ILSVRC2012_val_00000002.JPEG").unlink()
    missing = str(tmp_path / "ILSVRC2012_val_00000002.JPEG")
    if on_error == "stop":
        with pytest.raises(DataError, match="file not found") as info:
            task.dataset(model(), tmp_path)
        assert missing in str(info.value)
    else:
        ds = task.dataset(model(), tmp_path, on_error="skip")
        assert ds.skipped == [(missing, "file not found")]
        assert ds.labels == [0, 2]


@pytest.fixture
def broken(tmp_path) -> tuple[Path, dict[str, Path]]:
    """A folder-layout set of 6 good images and 3 broken ones."""
    root = make_folders(tmp_path / "val")
    good = write_jpeg(tmp_path / "scratch.JPEG", size=(120, 90)).read_bytes()
    bad = {
        "truncated": root / WNIDS[0] / "truncated.JPEG",
        "empty": root / WNIDS[1] / "empty.JPEG",
        "not-an-image": root / WNIDS[2] / "readme.JPEG",
    }
    bad["truncated"].write_bytes(good[: len(good) * 2 // 3])
    bad["empty"].write_bytes(b"")
    bad["not-an-image"].write_text("this is not a JPEG\n")
    return root, bad


@pytest.mark.parametrize("kind", ["truncated", "empty", "not-an-image"])
def test_broken_file_stops_with_its_name(tmp_path, task, broken, kind):
    root, bad = broken
    for other, path in bad.items():
        if other != kind:
            path.unlink()
    with pytest.raises(DataError) as info:
        task.dataset(model(), root)
    assert str(bad[kind]) in str(info.value)
    assert "--on-error skip" in str(info.value)


def test_broken_files_are_skipped_and_counted(task, broken):
    root, bad = broken
    ds = task.dataset(model(), root, on_error="skip")
    assert sorted(f for f, _ in ds.skipped) == sorted(map(str, bad.values()))
    assert all(reason for _, reason in ds.skipped)
    assert len(ds) == 6 and ds.labels == [0, 0, 1, 1, 2, 2]
    assert ds.info()["skipped"] == 3
    ds.load(range(len(ds)))  # the remaining ones decode


def test_all_unreadable_is_an_error_even_when_skipping(tmp_path, task):
    (tmp_path / WNIDS[0]).mkdir()
    (tmp_path / WNIDS[0] / "a.JPEG").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 1"):
        task.dataset(model(num_classes=1), tmp_path, on_error="skip")


@pytest.mark.parametrize("mode, color", [("L", 77), ("CMYK", (10, 200, 30, 5))])
def test_grayscale_and_cmyk_become_rgb(tmp_path, task, mode, color):
    write_jpeg(tmp_path / WNIDS[0] / "x.JPEG", color=color, size=(50, 40), mode=mode)
    assert Image.open(tmp_path / WNIDS[0] / "x.JPEG").mode == mode
    ds = task.dataset(model(num_classes=1), tmp_path)
    ds.load([0])
    x = ds.get(0)
    assert x.shape == (1, 3, RES, RES) and x.dtype == np.float32
    np.testing.assert_array_equal(x, preprocess(Image.open(ds.files[0]).convert("RGB"), RES))
    if mode == "L":  # gray stays gray in all three channels
        assert np.allclose((x[0].transpose(1, 2, 0) * STD + MEAN) * 255, color, atol=2)


def test_changed_file_after_check_stops_at_load(tmp_path, task):
    make_folders(tmp_path, per_class=1)
    ds = task.dataset(model(), tmp_path)
    ds.files[1].write_bytes(b"gone")
    with pytest.raises(DataError, match=str(ds.files[1])):
        ds.load([0, 1, 2])


# ---------------------------------------------------------------------------------------- pre-processing


def test_resize_size_follows_timm():
    assert [resize_size(r) for r in (224, 256, 384)] == [256, 292, 438]
    assert resize_size(256, 0.95) == 269
    with pytest.raises(ValueError):
        resize_size(224, 1.5)


def test_constant_colour_against_hand_computation():
    color = (200, 100, 50)
    x = preprocess(Image.new("RGB", (300, 200), color), 224)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32 and x.flags.c_contiguous
    expected = [(c / 255 - m) / s for c, m, s in zip(color, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    for channel, value in enumerate(expected):
        np.testing.assert_allclose(x[0, channel], value, rtol=0, atol=1e-6)


def test_resize_keeps_aspect_and_crop_is_central():
    image = Image.new("RGB", (500, 375))
    assert resize_shorter(image, 256).size == (341, 256)
    assert resize_shorter(image.transpose(Image.Transpose.ROTATE_90), 256).size == (256, 341)
    # a 10-pixel border of another colour disappears in the centre crop
    framed = Image.new("RGB", (60, 50), (255, 0, 0))
    framed.paste((0, 0, 255), (10, 10, 50, 40))
    assert center_crop(framed, 30).size == (30, 30)
    assert (np.asarray(center_crop(framed, 30)) == (0, 0, 255)).all()


# ---------------------------------------------------------------------------------------- the QSL


def test_load_get_unload(tmp_path, task):
    make_val(tmp_path)
    ds = task.dataset(model(), tmp_path)
    assert not ds.synthetic and ds.name == "imagenet"
    with pytest.raises(RuntimeError, match="not loaded"):
        ds.get(0)
    ds.load([0, 3])
    assert ds.get(3).shape == (1, 3, RES, RES)
    ds.unload([3])
    with pytest.raises(RuntimeError):
        ds.get(3)
    with pytest.raises(IndexError):
        ds.load([99])


def test_count_takes_the_same_evenly_spaced_subset(tmp_path, task):
    make_folders(tmp_path, per_class=4)
    first = task.dataset(model(), tmp_path, count=3)
    again = task.dataset(model(), tmp_path, count=3)
    assert first.files == again.files
    assert first.labels == [0, 1, 2]  # evenly spaced over a class-sorted listing: one per class
    assert select(12, 3) == [0, 4, 8]
    assert len(task.dataset(model(), tmp_path, count=1000)) == 12
    with pytest.raises(UserError):
        task.dataset(model(), tmp_path, count=0)
    with pytest.raises(UserError):
        task.dataset(model(), tmp_path, on_error="ignore")


def test_class_count_must_match_the_model(tmp_path, task):
    make_folders(tmp_path, per_class=1)
    with pytest.raises(DataError, match="found 3 class folders but the model has 1000 classes"):
        task.dataset(model(num_classes=1000), tmp_path)


def test_val_label_beyond_the_model(tmp_path, task):
    make_val(tmp_path, labels=(0, 7))
    with pytest.raises(DataError, match="label 7"):
        task.dataset(model(num_classes=3), tmp_path)


def test_progress_bar_on_stderr(tmp_path, task, monkeypatch, capsys):
    monkeypatch.setattr(images_module, "PROGRESS_MIN", 1)
    make_val(tmp_path)
    task.dataset(model(), tmp_path).load(range(6))
    assert "pre-processing imagenet" in capsys.readouterr().err


def test_synthetic_dataset(task):
    ds = task.dataset(model(resolution=48), None)
    assert ds.synthetic and len(ds) == 64 and ds.skipped == []
    ds.load([5, 0])
    x = ds.get(5)
    assert x.shape == (1, 3, 48, 48) and x.dtype == np.float32
    other = task.dataset(model(resolution=48), None, count=8)
    other.load([5])
    assert len(other) == 8 and np.array_equal(other.get(5), x)
    assert not np.array_equal(ds.get(0), x)
    with pytest.raises(UserError, match="--data"):
        task.metric({i: payload(0) for i in range(64)}, ds)


# ---------------------------------------------------------------------------------------- encode and metric


def test_encode_top5_best_first(task):
    logits = np.zeros((1, 10), np.float32)
    logits[0, [7, 2, 9, 4, 0]] = [5, 4, 3, 2, 1]
    assert decode(task.encode(logits)) == [7, 2, 9, 4, 0]
    assert task.encode(logits) == payload(7, 2, 9, 4, 0)
    assert decode(task.encode(np.zeros(10))) == [0, 1, 2, 3, 4]  # ties: lower index first
    assert decode(task.encode(np.array([[0.1, 0.9, 0.5]]))) == [1, 2, 0]  # fewer than 5 classes
    assert decode(task.encode(np.array([[0.1, np.nan, 0.5, 0, 0, 0]]))) == [-1] * 5
    with pytest.raises(ValueError):
        task.encode(np.zeros((2, 10)))


class Labelled:
    """Just what metric() reads from a dataset."""

    synthetic = False

    def __init__(self, labels):
        self.labels = list(labels)


def test_metric_known_answers(task):
    labels = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    perfect = {i: payload(label, 0, 0, 0, 0) for i, label in enumerate(labels)}
    assert task.metric(perfect, Labelled(labels)) == {"top1": 100.0, "top5": 100.0, "samples": 10}

    # 3 samples: truth at position 2 (top-5 hit, top-1 miss); 1 sample: truth absent (both miss)
    perturbed = dict(perfect)
    for i in (0, 1, 2):
        perturbed[i] = payload(7, 8, labels[i], 10, 11)
    perturbed[3] = payload(7, 8, 10, 11, 12)
    assert task.metric(perturbed, Labelled(labels)) == {"top1": 60.0, "top5": 90.0, "samples": 10}


def test_top5_counts_truth_at_position_3(task):
    got = task.metric({0: payload(9, 8, 7, 42, 6), 1: payload(9, 8, 7, 6, 5)}, Labelled([42, 42]))
    assert got == {"top1": 0.0, "top5": 50.0, "samples": 2}


def test_metric_end_to_end_from_logits(tmp_path, task):
    make_val(tmp_path, labels=(2, 0, 1, 1))
    ds = task.dataset(model(), tmp_path)
    eye = np.eye(3, dtype=np.float32)
    predictions = [2, 0, 0, 1]  # one wrong
    payloads = {i: task.encode(eye[p][None]) for i, p in enumerate(predictions)}
    assert task.metric(payloads, ds) == {"top1": 75.0, "top5": 100.0, "samples": 4}


def test_metric_refuses_missing_or_foreign_results(task):
    with pytest.raises(ValueError, match="1 of 2 samples have no result"):
        task.metric({0: payload(1)}, Labelled([1, 2]))
    with pytest.raises(ValueError, match="does not have"):
        task.metric({0: payload(1), 1: payload(2), 5: payload(0)}, Labelled([1, 2]))
    with pytest.raises(ValueError, match="sample 0"):
        task.metric({0: b"\x01\x02"}, Labelled([1]))


def test_each_checkpoint_is_evaluated_with_its_own_centre_crop(task, tmp_path):
    """timm evaluates Conv-M/L and Hybrid-M/L at crop_pct 0.95 (Conv-S at 0.875): Conv-M's 256 px crop
    comes from a shorter side of 269, not 292, or its top-1 is not the checkpoint's."""
    from dataclasses import replace

    from mnv4suite.reference_models.catalog import classifier_specs

    specs = {s.id: s for s in classifier_specs()}
    root = make_folders(tmp_path / "data")
    for model_id, shorter in (("mnv4-conv-m", 269), ("mnv4-conv-s", 256), ("mnv4-hybrid-l", 404)):
        three_classes = replace(specs[model_id], num_classes=3)  # the test folder's
        dataset = task.dataset(three_classes, root, cache_dir=tmp_path / "cache")
        assert f"shorter side to {shorter}," in dataset.info()["preprocess"]
    assert specs["mnv2-1.0"].crop_pct == 0.875  # timm's default for the baselines
