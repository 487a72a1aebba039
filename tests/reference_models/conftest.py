"""Fixtures for the reference-model tests: the oracle's manifest and the paper's published numbers."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def timm_manifest() -> dict:
    import oracle

    return oracle.manifest()


@pytest.fixture(scope="session")
def paper_results() -> dict:
    """The paper's tables as the package ships them (mnv4suite/reports/data)."""
    from mnv4suite.reports.paper import paper_results as packaged

    return packaged()
