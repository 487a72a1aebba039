"""Fixtures for the lab tests (helpers in labkit.py)."""

from __future__ import annotations

import pytest

from labkit import start_lab


@pytest.fixture(scope="module")
def two_node_lab(tmp_path_factory):
    """'alpha' holds the host CPU only; 'npu-box' also holds the test NPU (lab-npu's device)."""
    lab = start_lab(tmp_path_factory.mktemp("lab"), {"alpha": {}, "npu-box": {"MNV4SUITE_TEST_NPU": "1"}})
    yield lab
    lab.shutdown()
