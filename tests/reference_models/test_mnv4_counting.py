"""MACs and per-layer costs against the fact sheet's counts (convs + linear + attention matmuls)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mnv4suite.reference_models import catalog, create_model  # noqa: E402
from mnv4suite.reference_models.counting import count_params, model_costs, profile  # noqa: E402
from mnv4suite.reference_models.torch_blocks import MultiQueryAttention2d  # noqa: E402

# shared/reference/mnv4_architecture.md, section 1 (GMACs at the default resolution)
FACT_SHEET_GMACS = {
    "mnv4-conv-s": 0.186,
    "mnv4-conv-m": 1.080,
    "mnv4-conv-l": 6.376,
    "mnv4-hybrid-m": 1.271,
    "mnv4-hybrid-l": 7.712,
}
FACT_SHEET_ATTENTION_GMACS = {"mnv4-hybrid-m": 0.042, "mnv4-hybrid-l": 0.340}


@pytest.mark.parametrize("model_id", list(FACT_SHEET_GMACS))
def test_macs_match_fact_sheet(model_id):
    report = model_costs(model_id)
    assert report.gmacs == pytest.approx(FACT_SHEET_GMACS[model_id], rel=0.01)
    attention_gmacs = FACT_SHEET_ATTENTION_GMACS.get(model_id, 0.0)
    assert report.attention_macs / 1e9 == pytest.approx(attention_gmacs, rel=0.01, abs=1e-9)
    assert sum(layer.macs for layer in report.layers) == report.macs  # every MAC belongs to a row
    assert (report.params, report.macs) == catalog.MEASURED[model_id]


@pytest.mark.parametrize("model_id, resolution, gmacs", [("mnv4-conv-s", 256, 0.242), ("mnv4-hybrid-m", 384, 2.975)])
def test_macs_at_other_resolutions(model_id, resolution, gmacs):
    assert model_costs(model_id, resolution).gmacs == pytest.approx(gmacs, rel=0.01)


def test_cpu_attention_is_counted():
    """On CPU, SDPA takes the flash kernel FlopCounterMode does not know; our mapping counts it."""
    torch.manual_seed(0)
    attn = MultiQueryAttention2d(dim=32, dim_out=32, heads=4, key_dim=16, value_dim=16, kv_stride=2).eval()
    report = profile(attn, 16, in_chans=32)  # 16x16 queries, 8x8 keys
    core = [layer for layer in report.layers if layer.op == "attention"]
    assert len(core) == 1
    assert core[0].macs == 4 * 256 * 64 * (16 + 16)
    assert core[0].weight_bytes == 0


def test_real_and_meta_counts_agree():
    model = create_model("mnv4-hybrid-m", num_classes=10)
    real = profile(model, 128)
    meta = model_costs("mnv4-hybrid-m", 128, num_classes=10)
    assert real.macs == meta.macs and real.attention_macs == meta.attention_macs > 0
    rows = lambda report: [(r.name, r.macs, r.activation_bytes) for r in report.layers]  # noqa: E731
    assert rows(real) == rows(meta)


def test_layer_rows():
    report = model_costs("mnv4-hybrid-m", bytes_per_element=2)
    rows = {layer.name: layer for layer in report.layers}
    stem = rows["conv_stem"]
    assert stem.op == "conv" and stem.output_shape == (1, 32, 128, 128)
    assert stem.macs == 27 * 32 * 128 * 128
    assert stem.weight_bytes == 2 * 32 * 3 * 3 * 3
    assert stem.activation_bytes == 2 * (3 * 256 * 256 + 32 * 128 * 128)
    assert rows["blocks.2.0.dw_mid.conv"].op == "dwconv"
    assert rows["classifier"].op == "linear" and rows["classifier"].weight_bytes == 2 * (1280 * 1000 + 1000)
    attn = rows["blocks.2.4.attn.attend"]
    assert attn.op == "attention" and attn.input_shapes == ((1, 1, 1024, 64), (1, 1, 64, 64), (1, 1, 64, 64))
    assert attn.intensity > 0
    assert sum(layer.weight_bytes for layer in report.layers) <= 2 * report.params


def test_count_params():
    assert count_params(create_model("mnv4-conv-s")) == 3_774_024
