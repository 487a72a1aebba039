"""Pre-processed images on disk, packed per dataset selection, so only the first run decodes JPEGs.

What is kept is the expensive, exact part of pre-processing: uint8 pixels after decode, resize and
crop (or letterbox); normalising to float32 is a cheap multiply-add done per query. A *pack* holds
every usable sample of one selection of files as one .npy array, read back memory-mapped: a warm
run neither checks nor decodes a file, and loading costs nothing per sample (per-file entries cost
more to open than a small model takes to run, which would cap an accuracy run's throughput).

A pack is keyed by the recipe (task, resolution, crop, resampling, version) and by the identity
of every selected file (resolved path, size, modification time), in order: an edited, added or
removed image is a miss, never a stale hit; a pack whose bytes changed after it was written (its
sha256 is in the manifest, checked on every load) is a miss too. Its manifest keeps which files were unusable and why,
so a warm run reports the same skips. A pack is written only when every sample was produced (a
performance run that loads a subset leaves none), atomically; a cache that cannot be written is
switched off with a warning and the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

SUBDIR = "inputs"


def file_sha256(path: Path) -> str:
    """Checked on every warm load: pixels edited in place (size and header intact) are a miss, never a
    silently different input. About 0.1 s per 150 MB (1000 ImageNet crops) on these machines."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Pack:
    """A warm selection: the pixels of its usable samples and what was skipped."""

    array: np.ndarray  # (usable samples, *sample shape), uint8, memory-mapped read-only
    usable: list[int]  # positions in the selection
    skipped: list[tuple[str, str]]  # (file, reason)


class PackWriter:
    """Collects the samples of a cold run; becomes a pack when the last one arrives."""

    def __init__(self, cache: "InputCache", key: str, usable: list[int], skipped: list[tuple[str, str]],
                 shape: tuple[int, ...]):
        self.cache, self.key, self.usable, self.skipped = cache, key, usable, skipped
        self.shape = tuple(shape)
        self.nbytes = int(np.prod(self.shape))
        self.filled: set[int] = set()
        self.tmp: Path | None = None
        self.header = 0
        self.failed = False
        self.lock = threading.Lock()  # load() produces samples on several threads

    def put(self, index: int, pixels: np.ndarray) -> None:
        with self.lock:
            self._put(index, pixels)

    def _put(self, index: int, pixels: np.ndarray) -> None:
        if self.failed or index in self.filled:
            return
        if pixels.shape != self.shape or pixels.dtype != np.uint8:
            self._give_up(f"sample {index} is {pixels.dtype}{pixels.shape}, the pack holds uint8{self.shape}")
            return
        try:
            if self.tmp is None:
                self._start()
            with open(self.tmp, "r+b") as f:
                f.seek(self.header + index * self.nbytes)
                f.write(np.ascontiguousarray(pixels).tobytes())
            self.filled.add(index)
            if len(self.filled) == len(self.usable):
                self._commit()
        except OSError as exc:
            self._give_up(str(exc))

    def _start(self) -> None:
        directory = self.cache.dir
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{self.key[:16]}-", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(name)
        # A valid .npy header first; the samples are written at their offsets as they come.
        array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.uint8, shape=(len(self.usable), *self.shape))
        self.header = array.offset
        del array

    def _commit(self) -> None:
        manifest = {"recipe": self.cache.recipe, "usable": self.usable, "skipped": [list(s) for s in self.skipped],
                    "shape": [len(self.usable), *self.shape], "sha256": file_sha256(self.tmp)}
        self.cache.manifest_path(self.key).write_text(json.dumps(manifest))
        os.replace(self.tmp, self.cache.pack_path(self.key))
        self.tmp = None

    def _give_up(self, why: str) -> None:
        self.failed = True
        print(f"warning: input cache disabled for this run ({why}); results are unaffected", file=sys.stderr)
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


class InputCache:
    """Packs of pre-processed images under ``root/inputs/<recipe>/``. ``root=None`` caches nothing."""

    def __init__(self, root: str | os.PathLike | None, recipe: dict[str, Any]):
        self.recipe = dict(recipe)
        self.dir = Path(root) / SUBDIR / _digest(self.recipe)[:16] if root is not None else None
        self.hit = False

    @property
    def enabled(self) -> bool:
        return self.dir is not None

    def key(self, sources: Sequence[Path]) -> str:
        identity = []
        for source in sources:
            try:
                st = os.stat(source)
                identity.append([str(Path(source).resolve()), st.st_size, st.st_mtime_ns])
            except OSError:
                identity.append([str(source), None, None])  # missing now: misses if it reappears
        return _digest([self.recipe, identity])

    def pack_path(self, key: str) -> Path:
        return self.dir / f"{key}.npy"

    def manifest_path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def lookup(self, sources: Sequence[Path]) -> tuple[str | None, Pack | None]:
        """(key, the warm pack for exactly these files or None)."""
        if self.dir is None:
            return None, None
        key = self.key(sources)
        try:
            manifest = json.loads(self.manifest_path(key).read_text())
            array = np.load(self.pack_path(key), mmap_mode="r", allow_pickle=False)
            if list(array.shape) != manifest["shape"] or array.dtype != np.uint8:
                return key, None
            if file_sha256(self.pack_path(key)) != manifest["sha256"]:
                print(f"warning: the input cache pack {self.pack_path(key)} changed after it was written "
                      "(its checksum differs): decoding the images again", file=sys.stderr)
                return key, None
        except (OSError, ValueError, KeyError, EOFError):
            return key, None  # absent, partial, damaged or from before checksums: rebuilt by this run
        self.hit = True
        return key, Pack(array, list(manifest["usable"]), [tuple(s) for s in manifest["skipped"]])

    def writer(self, key: str | None, usable: list[int], skipped: list[tuple[str, str]],
               shape: tuple[int, ...]) -> PackWriter | None:
        if self.dir is None or key is None or not usable:
            return None
        return PackWriter(self, key, usable, skipped, shape)

    def describe(self) -> dict[str, Any]:
        return {"dir": str(self.dir) if self.dir else None, "warm": self.hit}
