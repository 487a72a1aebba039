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


@pytest.fixture(scope="session")
def zoo_report():
    """A counted-only Table 6 model's costs (``table6_zoo.COUNTED_MODELS``), counted once per session
    from shapes on the meta device."""
    torch = pytest.importorskip("torch")
    from mnv4suite.reference_models import counting
    from mnv4suite.reference_models.table6_zoo import COUNTED_MODELS

    counted: dict = {}

    def report(model_id: str) -> counting.CostReport:
        if model_id not in counted:
            entry = COUNTED_MODELS[model_id]
            with torch.device("meta"):
                model = entry.build()
            counted[model_id] = counting.profile(model, entry.resolution, 1, device="meta")
        return counted[model_id]

    return report
