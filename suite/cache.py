"""The artifact cache: exported and converted models on disk, keyed by everything they depend on.

The key is a dict (model, weights checksum, precision, converter and its version, calibration
set, ...) hashed canonically. Each entry records the artifact's own sha256; an entry whose file
is missing, partial or altered is rebuilt rather than trusted.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from mnv4suite.api import ArtifactCacheLike
from mnv4suite.fileio import atomic_write_json, sha256_file

CACHE_ENV = "MNV4SUITE_CACHE"
#: where this process builds artifacts when the cache cannot be written (made on first need)
_SCRATCH: Path | None = None


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "mnv4suite"


def cache_key(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class ArtifactCache(ArtifactCacheLike):
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else default_cache_dir()
        #: every entry handed out, as (key, suffix, path, sha256): what a lab ships to other nodes
        self.used: list[tuple[dict[str, Any], str, Path, str]] = []

    def entry_dir(self, key: dict[str, Any]) -> Path:
        digest = cache_key(key)
        return self.root / digest[:2] / digest

    def fetch_or_build(self, key: dict[str, Any], suffix: str, build: Callable[[Path], None]) -> tuple[Path, str, bool]:
        entry = self.entry_dir(key)
        artifact = entry / f"artifact{suffix}"
        manifest = entry / "manifest.json"
        # A finished entry is read without the lock (entries are completed by an atomic rename, the
        # manifest last), so a read-only cache still serves what it holds.
        if self._valid(artifact, manifest):
            digest = json.loads(manifest.read_text())["sha256"]
            self.used.append((key, suffix, artifact, digest))
            return artifact, digest, True
        try:
            entry.mkdir(parents=True, exist_ok=True)
            lock_file = open(entry / ".lock", "w")
        except OSError as exc:
            return self._build_outside(key, suffix, build, exc)
        # One builder at a time per entry; others wait and then reuse its work.
        with lock_file as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._valid(artifact, manifest):
                digest = json.loads(manifest.read_text())["sha256"]
                self.used.append((key, suffix, artifact, digest))
                return artifact, digest, True
            manifest.unlink(missing_ok=True)
            tmp = entry / f".building{suffix}"
            tmp.unlink(missing_ok=True)
            build(tmp)
            if not tmp.exists() or tmp.stat().st_size == 0:
                raise RuntimeError(f"artifact builder wrote nothing to {tmp}")
            os.replace(tmp, artifact)
            digest = sha256_file(artifact)
            atomic_write_json(
                manifest,
                {"key": key, "sha256": digest, "size": artifact.stat().st_size, "created": time.time()},
            )
            self.used.append((key, suffix, artifact, digest))
            return artifact, digest, False

    def _build_outside(self, key: dict[str, Any], suffix: str, build: Callable[[Path], None],
                       why: OSError) -> tuple[Path, str, bool]:
        """The cache cannot be written: build into a temporary folder for this process, and say so."""
        global _SCRATCH
        if _SCRATCH is None:
            _SCRATCH = Path(tempfile.mkdtemp(prefix="mnv4suite-uncached-"))
            atexit.register(shutil.rmtree, _SCRATCH, True)
        print(f"  warning: the artifact cache {self.root} cannot be written ({why.strerror or why}): building in "
              f"{_SCRATCH}, not kept for the next run (set --cache-dir or ${CACHE_ENV} to a writable folder)",
              file=sys.stderr, flush=True)
        artifact = _SCRATCH / f"{cache_key(key)}{suffix}"
        build(artifact)
        if not artifact.exists() or artifact.stat().st_size == 0:
            raise RuntimeError(f"artifact builder wrote nothing to {artifact}")
        digest = sha256_file(artifact)
        self.used.append((key, suffix, artifact, digest))
        return artifact, digest, False

    def install(self, key: dict[str, Any], suffix: str, data: bytes, sha256: str) -> Path:
        """Put an artifact built elsewhere under its key, after checking it is the file that was built."""
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise ValueError(f"artifact for {key.get('model', key)} arrived damaged: sha256 {digest[:12]}..., "
                             f"built as {sha256[:12]}...")

        def write(tmp: Path) -> None:
            tmp.write_bytes(data)

        # A valid entry already there under the same key stays: same key, same inputs.
        path, _, _ = self.fetch_or_build(key, suffix, write)
        self.used.pop()  # installing is not using
        return path

    @staticmethod
    def _valid(artifact: Path, manifest: Path) -> bool:
        if not (artifact.exists() and manifest.exists()):
            return False
        try:
            recorded = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return False
        return recorded.get("size") == artifact.stat().st_size and recorded.get("sha256") == sha256_file(artifact)
