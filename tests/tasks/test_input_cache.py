"""The input cache: a warm run neither checks nor decodes a file, and never serves stale pixels."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mnv4suite.errors import DataError
from mnv4suite.tasks.common import memory
from mnv4suite.tasks.imagenet import dataset as imagenet_dataset

from test_imagenet import make_val, write_jpeg  # same folder: pytest puts it on sys.path


@pytest.fixture
def counted(monkeypatch):
    """Counts of the file checks and full decodes the ImageNet dataset does."""
    counts = {"check": 0, "decode": 0}
    check, decode = memory.check_image, imagenet_dataset.open_rgb

    def counting_check(path):
        counts["check"] += 1
        return check(path)

    def counting_decode(path, what="image"):
        counts["decode"] += 1
        return decode(path, what)

    monkeypatch.setattr(memory, "check_image", counting_check)
    monkeypatch.setattr(imagenet_dataset, "open_rgb", counting_decode)
    return counts


def build(root, cache_dir, resolution=32, **kwargs):
    ds = imagenet_dataset.ImageNetDataset(root, resolution, num_classes=3, cache_dir=cache_dir, **kwargs)
    ds.load(range(len(ds)))
    return ds


def test_warm_run_neither_checks_nor_decodes(tmp_path, counted):
    make_val(tmp_path / "val")
    cold = build(tmp_path / "val", tmp_path / "cache")
    assert counted == {"check": 6, "decode": 6} and not cold.cache.hit

    warm = build(tmp_path / "val", tmp_path / "cache")
    assert counted == {"check": 6, "decode": 6}  # nothing new
    assert warm.cache.hit and warm.info()["input_cache"]["warm"]
    assert warm.labels == cold.labels
    for i in range(6):
        np.testing.assert_array_equal(warm.get(i), cold.get(i))


def test_cached_inputs_equal_uncached_ones(tmp_path):
    make_val(tmp_path / "val")
    plain = build(tmp_path / "val", None)
    build(tmp_path / "val", tmp_path / "cache")
    cached = build(tmp_path / "val", tmp_path / "cache")
    assert cached.cache.hit
    for i in range(6):
        assert cached.get(i).dtype == np.float32 and cached.get(i).shape == (1, 3, 32, 32)
        np.testing.assert_array_equal(cached.get(i), plain.get(i))


def test_edited_image_is_a_miss_not_a_stale_hit(tmp_path, counted):
    make_val(tmp_path / "val")
    before = build(tmp_path / "val", tmp_path / "cache").get(0)
    first = tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG"
    write_jpeg(first, color=(250, 250, 0))
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    again = build(tmp_path / "val", tmp_path / "cache")
    assert not again.cache.hit and counted["decode"] == 12
    assert not np.array_equal(again.get(0), before)


def test_another_selection_or_resolution_is_another_pack(tmp_path, counted):
    make_val(tmp_path / "val")
    build(tmp_path / "val", tmp_path / "cache")
    assert not build(tmp_path / "val", tmp_path / "cache", resolution=48).cache.hit
    assert not build(tmp_path / "val", tmp_path / "cache", count=3).cache.hit
    assert build(tmp_path / "val", tmp_path / "cache", count=3).cache.hit


def test_damaged_pack_is_rebuilt(tmp_path):
    make_val(tmp_path / "val")
    cold = build(tmp_path / "val", tmp_path / "cache")
    (pack,) = (tmp_path / "cache").rglob("*.npy")
    pack.write_bytes(pack.read_bytes()[:200])
    again = build(tmp_path / "val", tmp_path / "cache")
    assert not again.cache.hit
    np.testing.assert_array_equal(again.get(2), cold.get(2))
    assert build(tmp_path / "val", tmp_path / "cache").cache.hit


def test_a_subset_load_leaves_no_pack(tmp_path):
    make_val(tmp_path / "val")
    ds = imagenet_dataset.ImageNetDataset(tmp_path / "val", 32, num_classes=3, cache_dir=tmp_path / "cache")
    ds.load([0, 1])
    assert not list((tmp_path / "cache").rglob("*.npy"))
    ds.load(range(6))
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1


def test_warm_run_reports_the_same_skips(tmp_path, counted):
    make_val(tmp_path / "val")
    bad = tmp_path / "val" / "ILSVRC2012_val_00000003.JPEG"
    bad.write_bytes(bad.read_bytes()[:100])
    cold = build(tmp_path / "val", tmp_path / "cache", on_error="skip")
    warm = build(tmp_path / "val", tmp_path / "cache", on_error="skip")
    assert warm.cache.hit and counted["check"] == 6
    assert len(warm) == 5 and warm.skipped == cold.skipped and warm.skipped[0][0] == str(bad)
    assert warm.labels == cold.labels
    with pytest.raises(DataError, match="ILSVRC2012_val_00000003"):
        build(tmp_path / "val", tmp_path / "cache", on_error="stop")


def test_unwritable_cache_warns_and_goes_on(tmp_path, capsys):
    make_val(tmp_path / "val")
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    ds = build(tmp_path / "val", tmp_path / "cache")
    assert len(ds) == 6 and ds.get(5).shape == (1, 3, 32, 32)
    assert "input cache disabled" in capsys.readouterr().err


def test_disabled_cache_writes_nothing(tmp_path):
    make_val(tmp_path / "val")
    ds = build(tmp_path / "val", None)
    assert not ds.cache.enabled and not ds.cache.hit and len(ds) == 6


def test_pixels_overwritten_in_place_are_a_miss(tmp_path, capsys):
    """Same size, same header, same modification time of the images: only the pack's bytes changed."""
    make_val(tmp_path / "val")
    plain = build(tmp_path / "val", None)
    build(tmp_path / "val", tmp_path / "cache")
    [pack] = (tmp_path / "cache").rglob("*.npy")
    data = bytearray(pack.read_bytes())
    data[-5000:] = bytes(5000)  # black out the end of the last sample
    pack.write_bytes(bytes(data))
    again = build(tmp_path / "val", tmp_path / "cache")
    assert not again.cache.hit
    assert "changed after it was written (its checksum differs)" in capsys.readouterr().err
    for i in range(len(plain)):
        np.testing.assert_array_equal(again.get(i), plain.get(i))
    assert build(tmp_path / "val", tmp_path / "cache").cache.hit  # rebuilt, and warm again
