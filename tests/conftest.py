"""Shared fixtures: the test plugin, a CLI runner in a subprocess, and generated datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import make_image_folder

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TEST_PLUGIN_DIR = TESTS / "plugins"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def suite_env(tmp_path) -> dict[str, str]:
    """Environment for CLI runs: the test plugin loaded, a private artifact cache."""
    env = dict(os.environ)
    env["MNV4SUITE_PLUGINS"] = "tinynet"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TEST_PLUGIN_DIR), env.get("PYTHONPATH")]))
    env["MNV4SUITE_CACHE"] = str(tmp_path / "cache")
    return env


@pytest.fixture
def run_cli(suite_env, tmp_path):
    """Run `python -m mnv4suite ARGS` as a user would, in tmp_path."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "mnv4suite", *args],
            cwd=tmp_path,
            env=env or suite_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


FAKE_WNIDS = [f"n{i:08d}" for i in range(1000)]


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Three classes of an ImageNet-style folder, with a 1000-class label map beside them."""
    root = make_image_folder(tmp_path / "imagenet", FAKE_WNIDS[:3], per_class=4)
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {i}\n" for i, w in enumerate(FAKE_WNIDS)))
    return root


@pytest.fixture(scope="session")
def timm_fixtures(tmp_path_factory) -> Path:
    """timm-format checkpoints and input/logit pairs for Conv-S and Hybrid-M, made from the float64 oracle's
    seeded recipe (tests/oracle.py) into a session folder: nothing outside the repository is read."""
    import oracle

    folder = tmp_path_factory.mktemp("timm-fixtures")
    for name in ("mobilenetv4_conv_small", "mobilenetv4_hybrid_medium"):
        oracle.write_fixtures(name, folder)
    return folder
