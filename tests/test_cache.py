"""The artifact cache builds once, reuses, and never trusts a damaged entry."""

from __future__ import annotations

import json

import pytest

from mnv4suite.cache import ArtifactCache

KEY = {"model": "m", "weights": "abc", "precision": "fp32", "converter": "x 1.0"}


class Builder:
    def __init__(self, content: bytes = b"model-bytes"):
        self.calls = 0
        self.content = content

    def __call__(self, path):
        self.calls += 1
        path.write_bytes(self.content)


def test_second_fetch_reuses_the_artifact(tmp_path):
    cache, build = ArtifactCache(tmp_path), Builder()
    path1, digest1, cached1 = cache.fetch_or_build(KEY, ".onnx", build)
    path2, digest2, cached2 = cache.fetch_or_build(KEY, ".onnx", build)
    assert (cached1, cached2) == (False, True)
    assert build.calls == 1 and path1 == path2 and digest1 == digest2
    assert path1.read_bytes() == b"model-bytes"


def test_any_key_field_changes_the_entry(tmp_path):
    cache, build = ArtifactCache(tmp_path), Builder()
    cache.fetch_or_build(KEY, ".onnx", build)
    cache.fetch_or_build({**KEY, "weights": "def"}, ".onnx", build)
    assert build.calls == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete-manifest", "garble-manifest"])
def test_damaged_entries_are_rebuilt(tmp_path, damage):
    cache, build = ArtifactCache(tmp_path), Builder()
    path, digest, _ = cache.fetch_or_build(KEY, ".onnx", build)
    manifest = path.parent / "manifest.json"
    if damage == "truncate":
        path.write_bytes(b"model")
    elif damage == "flip":
        path.write_bytes(b"MODEL-bytes")
    elif damage == "delete-manifest":
        manifest.unlink()
    else:
        manifest.write_text("{not json")
    path2, digest2, cached = cache.fetch_or_build(KEY, ".onnx", build)
    assert not cached and build.calls == 2
    assert path2.read_bytes() == b"model-bytes" and digest2 == digest
    assert json.loads(manifest.read_text())["sha256"] == digest


def test_failed_build_leaves_no_entry(tmp_path):
    cache = ArtifactCache(tmp_path)

    def broken(path):
        path.write_bytes(b"half")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError, match="converter crashed"):
        cache.fetch_or_build(KEY, ".onnx", broken)
    build = Builder()
    _, _, cached = cache.fetch_or_build(KEY, ".onnx", build)
    assert not cached and build.calls == 1
