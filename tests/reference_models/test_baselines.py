"""The MobileNetV1/V2/V3 Pareto baselines: block plans, counts against the paper and timm, the builder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mnv4suite.reference_models import catalog, model_specs, specs
from mnv4suite.reference_models.baselines import BASELINE_DEFS
from mnv4suite.reference_models.specs import MODEL_DEFS, get_model_def, plan

# shared/reference/mnv4_architecture.md section 8: timm's generators at 224 px, 1000 classes
# (params in M, MACs in M; torchvision gives the same for V2 and V3-L 1.0x).
TIMM_COUNTS = {
    "mnv1-1.0": (4.232, 568.7),
    "mnv2-0.5": (1.969, 97.1),
    "mnv2-1.0": (3.505, 300.8),
    "mnv2-1.5": (6.858, 672.8),
    "mnv2-2.0": (11.258, 1137.4),
    "mnv3l-0.5": (2.690, 73.7),
    "mnv3l-1.0": (5.483, 216.6),
}
TABLE6_ROWS = {
    "mnv1-1.0": "MobileNet-V1",
    "mnv2-0.5": "MobileNet-V2-0.5x",
    "mnv2-1.0": "MobileNet-V2",
    "mnv2-1.5": "MobileNet-V2-1.5x",
    "mnv2-2.0": "MobileNet-V2-2.0x",
    "mnv3l-0.5": "MobileNet-V3L-0.5x",
}
FAMILIES = {"mnv1": "MobileNetV1", "mnv2": "MobileNetV2", "mnv3l": "MobileNetV3"}


# --------------------------------------------------------------------------- specs (no torch)


def test_registry():
    assert sorted(BASELINE_DEFS) == sorted(TIMM_COUNTS)
    assert len(MODEL_DEFS) == 5  # MODEL_DEFS stays the MNv4 set; lookups see both
    assert list(specs.all_model_defs()) == list(MODEL_DEFS) + list(BASELINE_DEFS)
    assert get_model_def("mobilenetv2_100").id == "mnv2-1.0"
    assert get_model_def("MNV3L_0.5").id == "mnv3l-0.5"
    assert get_model_def("mobilenetv1_100").id == "mnv1-1.0"


def test_import_stays_framework_free():
    code = (
        "import sys, mnv4suite.reference_models as rm\n"
        "from mnv4suite.reference_models import specs\n"
        "[specs.plan(d) for d in specs.all_model_defs().values()]; rm.model_specs()\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'onnxruntime') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_mobilenet_v1_plan():
    p = plan(BASELINE_DEFS["mnv1-1.0"])
    assert len(p.blocks) == 13 and p.stem_chs == 32
    assert all(isinstance(b.spec, specs.DepthwiseSeparable) and b.spec.pw_act for b in p.blocks)
    assert not any(b.residual for b in p.blocks)  # V1 has no shortcuts, even 512 -> 512
    assert [b.reduction for b in p.blocks][-1] == 32
    assert p.num_features == p.head_chs == 1024  # no head conv: the classifier reads the pooled 1024
    assert {b.act for b in p.blocks} == {"relu6"}


@pytest.mark.parametrize(
    "model_id, stem, last_conv",
    [("mnv2-0.5", 16, 1280), ("mnv2-1.0", 32, 1280), ("mnv2-1.5", 48, 1920), ("mnv2-2.0", 64, 2560)],
)
def test_mobilenet_v2_width_rules(model_id, stem, last_conv):
    """V2 scales its stem at every width; the 1280 conv before pooling grows but never shrinks."""
    p = plan(BASELINE_DEFS[model_id])
    assert p.stem_chs == stem
    assert p.blocks[-1].out_chs == last_conv == p.num_features == p.head_chs
    assert sum(b.residual for b in p.blocks) == 10
    ibs = [b for b in p.blocks if isinstance(b.spec, specs.UIB)]
    assert len(ibs) == 16 and {b.spec.variant for b in ibs} == {"IB"}
    assert all(b.mid_chs == 6 * b.in_chs and b.se_chs == 0 for b in ibs)


def test_mobilenet_v3_large_plan():
    full, half = plan(BASELINE_DEFS["mnv3l-1.0"]), plan(BASELINE_DEFS["mnv3l-0.5"])
    by_name = {b.name: b for b in full.blocks}
    assert [b.mid_chs for b in full.blocks if isinstance(b.spec, specs.UIB)] == [
        64, 72, 72, 120, 120, 240, 200, 184, 184, 480, 672, 672, 960, 960
    ]
    assert by_name["blocks.2.0"].se_chs == 24  # make_divisible(72 / 4) = 24, as timm and torchvision
    assert by_name["blocks.5.2"].se_chs == 240 and by_name["blocks.3.0"].se_chs == 0
    assert [b.act for b in full.blocks[:6]] == ["relu"] * 6 and {b.act for b in full.blocks[6:]} == {"hard_swish"}
    assert full.blocks[0].residual and sum(b.residual for b in full.blocks) == 10
    assert full.model.head == specs.Head(1280, norm=False, bias=True)
    # 0.5x: stem kept at 16 (timm fixes it below 0.75x), 960 conv halved, 1280 head kept
    assert (half.stem_chs, half.num_features, half.head_chs) == (16, 480, 1280)
    assert not half.blocks[0].residual  # 16 -> 8


def test_width_multiplier_composes():
    a, b = plan(BASELINE_DEFS["mnv2-0.5"], 2.0), plan(BASELINE_DEFS["mnv2-1.0"])
    assert a.width_multiplier == b.width_multiplier == 1.0
    assert (a.stem_chs, [x.out_chs for x in a.blocks]) == (b.stem_chs, [x.out_chs for x in b.blocks])


# --------------------------------------------------------------------------- catalog


def test_catalog_records():
    records = {s.id: s for s in model_specs()}
    assert list(records)[:5] == list(MODEL_DEFS)  # MNv4 first, then the baselines
    for model_id, (params_m, macs_m) in TIMM_COUNTS.items():
        spec = records[model_id]
        assert spec.family == FAMILIES[model_id.split("-")[0]] and spec.resolution == 224
        assert (spec.params, spec.macs) == catalog.MEASURED[model_id]
        assert spec.params / 1e6 == pytest.approx(params_m, rel=0.01)
        assert spec.macs / 1e6 == pytest.approx(macs_m, rel=0.01)
        assert spec.summary and [r.module for r in spec.requires] == ["torch"]
        if model_id in TABLE6_ROWS:
            assert spec.published["row"] == TABLE6_ROWS[model_id] and "Table 6" in spec.published["source"]
        else:
            assert spec.published == {}  # V3-Large 1.0x has no Table 6 row


@pytest.mark.parametrize("model_id", list(TABLE6_ROWS))
def test_counts_match_table6(model_id):
    """Params within 5% of the paper; MACs within 5% or within the rounding of its one-decimal GMACs.

    Table 6 prints 0.1 G steps: V1's 0.569 G is 5.2% below "0.6", V3-L 0.5x's 0.074 G is 26% below "0.1".
    """
    published = catalog.PUBLISHED[model_id]
    params, macs = catalog.MEASURED[model_id]
    assert params / 1e6 == pytest.approx(published["params_m"], rel=0.05)
    assert abs(macs / 1e9 - published["gmacs"]) <= max(0.05 * published["gmacs"], 0.05)
    assert round(macs / 1e9, 1) == published["gmacs"]


def test_published_rows_match_paper_yaml(paper_results):
    rows = {row["model"]: row for row in paper_results["imagenet"]}
    for model_id, row_name in TABLE6_ROWS.items():
        row, published = rows[row_name], catalog.PUBLISHED[model_id]
        assert {k: published[k] for k in ("top1", "params_m", "gmacs")} == {
            k: row[k] for k in ("top1", "params_m", "gmacs")
        }


# --------------------------------------------------------------------------- PyTorch

@pytest.fixture
def torch():
    """The PyTorch tests skip where torch is not installed; the ones above never need it."""
    return pytest.importorskip("torch")


@pytest.mark.parametrize("model_id", list(TIMM_COUNTS))
def test_measured_counts(model_id, torch):
    from mnv4suite.reference_models.counting import model_costs

    report = model_costs(model_id)
    assert (report.params, report.macs) == catalog.MEASURED[model_id]
    assert report.attention_macs == 0 and sum(layer.macs for layer in report.layers) == report.macs


@pytest.mark.parametrize("model_id", list(TIMM_COUNTS))
def test_forward(model_id, torch):
    spec = next(s for s in model_specs() if s.id == model_id)
    model = spec.build(num_classes=10)
    assert not model.training
    with torch.inference_mode():
        out = model(torch.randn(2, *spec.input_shape()[1:]))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_block_modules(torch):
    from torch import nn

    from mnv4suite.reference_models import create_model
    from mnv4suite.reference_models.mobilenetv4 import build

    v3 = build("mnv3l-1.0", num_classes=1000, weights=None)
    assert isinstance(v3.act1, nn.Hardswish) and isinstance(v3.blocks[0][0].act1, nn.ReLU)
    assert v3.conv_head.bias is not None and isinstance(v3.norm_head, nn.Identity)
    se = v3.blocks[2][0].se
    assert se.conv_reduce.weight.shape == (24, 72, 1, 1) and se.conv_expand.bias.shape == (72,)
    assert isinstance(v3.blocks[3][0].se, nn.Identity)

    v1 = create_model("mobilenetv1_100")
    keys = {k: tuple(v.shape) for k, v in v1.state_dict().items()}
    # timm's DepthwiseSeparableConv names (conv_dw, bn1, conv_pw, bn2), no head conv
    assert keys["blocks.0.0.conv_dw.weight"] == (32, 1, 3, 3) and keys["blocks.0.0.conv_pw.weight"] == (64, 32, 1, 1)
    assert keys["blocks.4.1.bn2.running_var"] == (1024,) and keys["classifier.weight"] == (1000, 1024)
    assert len(keys) == 164 and not any(k.startswith("conv_head") for k in keys)

    v2 = create_model("mnv2-0.5", width_multiplier=2.0)  # the multiplier scales on top of the model's
    assert sum(p.numel() for p in v2.parameters()) == catalog.MEASURED["mnv2-1.0"][0]

    train = create_model("mnv3l-0.5", num_classes=3, drop_rate=0.2, drop_path_rate=0.1).train()
    train(torch.randn(2, 3, 64, 64)).sum().backward()
    assert train.blocks[2][1].se.conv_reduce.weight.grad is not None


def test_no_default_checkpoint(torch):
    from mnv4suite.errors import UserError
    from mnv4suite.reference_models import create_model

    with pytest.raises(UserError, match="no default checkpoint"):
        create_model("mnv2-1.0", weights="pretrained")
