"""Fixtures for the reference-model tests: where the shared oracle data lives."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_path() -> Path:
    """``$MNV4SUITE_SHARED``, else ``<repo>/../shared``."""
    return Path(os.environ.get("MNV4SUITE_SHARED") or REPO.parent / "shared")


@pytest.fixture(scope="session")
def timm_fixtures() -> Path:
    """``shared/fixtures/timm``: manifest, fp16 weights and input/logit pairs from timm."""
    path = shared_path() / "fixtures" / "timm"
    if not (path / "timm_mnv4_manifest.json").is_file():
        pytest.skip(f"timm oracle fixtures not found at {path} (set MNV4SUITE_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def timm_manifest(timm_fixtures) -> dict:
    return json.loads((timm_fixtures / "timm_mnv4_manifest.json").read_text())


@pytest.fixture(scope="session")
def paper_results() -> dict:
    path = shared_path() / "reference" / "mnv4_paper_results.yaml"
    if not path.is_file():
        pytest.skip(f"paper results not found at {path} (set MNV4SUITE_SHARED to the shared/ folder)")
    import yaml

    return yaml.safe_load(path.read_text())
