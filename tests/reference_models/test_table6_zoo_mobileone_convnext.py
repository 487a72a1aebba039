"""MobileOne-S0/S4 and ConvNeXt-S (counted-only Table 6 models): params and MACs against the papers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mnv4suite.reference_models import counting  # noqa: E402
from mnv4suite.reference_models.table6_zoo import COUNTED_MODELS  # noqa: E402

# MobileNetV4 paper, Table 6: (params in M, GMACs), one decimal
TABLE6 = {
    "mobileone-s0": (2.1, 0.3),
    "mobileone-s4": (14.8, 1.5),
    "convnext-s": (50.0, 8.7),
}

# What this description counts, to the unit (pins the architectures against silent edits)
EXACT = {
    "mobileone-s0": (2_078_504, 275_110_400),
    "mobileone-s4": (14_838_352, 2_979_269_760),
    "convnext-s": (50_223_688, 8_683_712_256),
}


@pytest.fixture(scope="module")
def reports(zoo_report) -> dict[str, counting.CostReport]:
    return {model_id: zoo_report(model_id) for model_id in TABLE6}


@pytest.mark.parametrize("model_id", list(TABLE6))
def test_counts_are_pinned(reports, model_id):
    report = reports[model_id]
    assert (report.params, report.macs) == EXACT[model_id]
    assert sum(layer.macs for layer in report.layers) == report.macs  # every MAC belongs to a row


def test_mobileone_s0_matches_table6(reports):
    report = reports["mobileone-s0"]
    assert round(report.params / 1e6, 1) == TABLE6["mobileone-s0"][0]
    assert round(report.gmacs, 1) == TABLE6["mobileone-s0"][1]
    assert report.macs == pytest.approx(275e6, rel=1e-3)  # MobileOne paper: 275M "FLOPs" (multiply-adds)


def test_mobileone_s4_matches_the_mobileone_paper(reports):
    report = reports["mobileone-s4"]
    assert round(report.params / 1e6, 1) == TABLE6["mobileone-s4"][0]
    # Table 6's 1.5 GMACs cannot be matched: S4 does 2,979,269,760 multiply-adds (2.98 G). The MobileOne
    # paper reports 2978M "FLOPs", which are multiply-adds (its S0 row, 275M, is S0's 275,110,400 MACs);
    # Table 6 appears to have halved 2978M as if they were FLOPs (1.489 -> 1.5), while it copied S0's
    # 275M unhalved (0.3). So this asserts the MobileOne paper's figure and documents the halving.
    assert report.macs == pytest.approx(2978e6, rel=1e-3)
    assert round(report.gmacs, 1) == 3.0 != TABLE6["mobileone-s4"][1]
    assert round(report.gmacs / 2, 1) == TABLE6["mobileone-s4"][1]


def test_convnext_s_matches_the_convnext_paper(reports):
    report = reports["convnext-s"]
    assert round(report.gmacs, 1) == TABLE6["convnext-s"][1]
    # Table 6's 50.0M params is the ConvNeXt paper's rounded "50M": the model has 50,223,688 parameters
    # (50.2M, as timm lists it), 13,536 of them layer-scale gammas; leaving those out would still give 50.2M.
    # So this asserts the paper's whole-million figure.
    assert round(report.params / 1e6) == 50
    assert round(report.params / 1e6, 1) == 50.2 != TABLE6["convnext-s"][0]


def test_table6_constants_match_the_shared_results(paper_results):
    rows = {row["model"]: row for row in paper_results["imagenet"]}
    for model_id, (params_m, gmacs) in TABLE6.items():
        row = rows[COUNTED_MODELS[model_id].table6_name]
        assert (row["params_m"], row["gmacs"]) == (params_m, gmacs)


def test_mobileone_s0_runs_on_cpu():
    model = COUNTED_MODELS["mobileone-s0"].build().eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 224, 224))
    assert out.shape == (1, 1000)
