"""MobileNet MultiHardware MAX/AVG 1.5x (counted-only Table 6 models) against Model Garden and Table 6."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mnv4suite.reference_models import counting  # noqa: E402
from mnv4suite.reference_models.table6_zoo import multihardware as mh  # noqa: E402

RESOLUTION = 224

# MobileNetV4 paper, Table 6: (params in M, GMACs), one decimal
TABLE6 = {"MultiHardware-MAX-1.5x": (8.9, 0.8), "MultiHardware-AVG-1.5x": (10.0, 1.0)}
BUILDERS = {"MultiHardware-MAX-1.5x": mh.multihardware_max_15, "MultiHardware-AVG-1.5x": mh.multihardware_avg_15}

# What this description counts, to the unit (BN gamma/beta included, as nn.BatchNorm2d holds them)
EXACT = {"MultiHardware-MAX-1.5x": (8_901_016, 764_025_648), "MultiHardware-AVG-1.5x": (10_063_960, 948_246_048)}

# Model Garden's own oracle, mobilenet_test.py ``test_mobilenet_scaling``: Keras ``count_params()`` of the
# backbone (no classifier Dense; BN gamma, beta, moving mean and variance), widths 1.0 and 0.75
MODEL_GARDEN_PARAMS = {
    ("MAX", 1.0): 3_174_560,
    ("MAX", 0.75): 2_045_816,
    ("AVG", 1.0): 3_704_416,
    ("AVG", 0.75): 2_349_704,
}


def _bn_channels(model) -> int:
    return sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.fixture(scope="module")
def reports() -> dict[str, tuple[counting.CostReport, int]]:
    out = {}
    for name, build in BUILDERS.items():
        with torch.device("meta"):
            model = build()
        out[name] = (counting.profile(model, RESOLUTION, 1, device="meta"), _bn_channels(model))
    return out


@pytest.mark.parametrize("name", list(TABLE6))
def test_counts_are_pinned(reports, name):
    report, _ = reports[name]
    assert (report.params, report.macs) == EXACT[name]
    assert sum(layer.macs for layer in report.layers) == report.macs  # every MAC belongs to a row


@pytest.mark.parametrize("spec, width", list(MODEL_GARDEN_PARAMS))
def test_backbone_matches_model_garden(spec, width):
    """Widths, expansions and the finegrain head rule reproduce Model Garden's parameter counts to the unit."""
    blocks = mh._MAX_BLOCKS if spec == "MAX" else mh._AVG_BLOCKS
    with torch.device("meta"):
        model = mh.MultiHardwareNet(blocks, width)
    classifier = sum(p.numel() for p in model.head[-1].parameters())
    keras_count = counting.count_params(model) - classifier + 2 * _bn_channels(model)  # + moving mean, var
    assert keras_count == MODEL_GARDEN_PARAMS[(spec, width)]


def test_width_15_scales_the_last_convs():
    """finegrain_classification_mode keeps 1280 only below 1x: at 1.5x the head convs are 1440 and 1920."""
    head = mh.multihardware_avg_15().head
    assert (head[0][0].out_channels, head[2][0].out_channels, head[-1].in_features) == (1440, 1920, 1920)
    assert [mh.round_filters(f) for f in (32, 64, 128, 160, 192)] == [48, 96, 192, 240, 288]


def test_max_matches_table6(reports):
    report, bn = reports["MultiHardware-MAX-1.5x"]
    assert (round(report.params / 1e6, 1), round(report.gmacs, 1)) == TABLE6["MultiHardware-MAX-1.5x"]
    assert round((report.params - bn) / 1e6, 1) == 8.9  # also with BN folded into conv biases


def test_avg_against_table6(reports):
    report, bn = reports["MultiHardware-AVG-1.5x"]
    # Params: 10,063,960 with BN gamma/beta (10.1M); Table 6's 10.0M is the deployed count, BN folded into
    # conv biases (10,036,552) or left out (10,009,144) - the same convention as its MobileNet-V2 rows
    # (V2-1.5x: 6.86M with gamma/beta, Table 6 6.8M).
    assert round(report.params / 1e6, 1) == 10.1 != TABLE6["MultiHardware-AVG-1.5x"][0]
    assert round((report.params - bn) / 1e6, 1) == round((report.params - 2 * bn) / 1e6, 1) == 10.0
    # MACs: 948,246,048 (0.948 G) - below Table 6's "1.0" by more than its rounding. The architecture is
    # Model Garden's to the parameter (test above), and MAX-1.5x (0.764 G -> 0.8) agrees with Table 6 under
    # the same counting; so this asserts the count and documents the gap.
    assert round(report.gmacs, 1) == 0.9 != TABLE6["MultiHardware-AVG-1.5x"][1]
    assert report.gmacs == pytest.approx(TABLE6["MultiHardware-AVG-1.5x"][1], rel=0.06)


def test_table6_constants_match_the_shared_results(paper_results):
    rows = {row["model"]: row for row in paper_results["imagenet"]}
    for name, (params_m, gmacs) in TABLE6.items():
        assert (rows[name]["params_m"], rows[name]["gmacs"]) == (params_m, gmacs)


def test_max_runs_on_cpu():
    model = mh.multihardware_max_15().eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, RESOLUTION, RESOLUTION))
    assert out.shape == (1, 1000)
