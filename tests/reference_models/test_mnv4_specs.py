"""The framework-free block specification: resolved plans, width rules, names, light imports."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from mnv4suite.errors import UnknownNameError
from mnv4suite.reference_models import specs
from mnv4suite.reference_models.specs import MODEL_DEFS, get_model_def, plan

STAGE_DEPTHS = {
    "mnv4-conv-s": (2, 2, 6, 6, 1),
    "mnv4-conv-m": (1, 2, 8, 11, 1),
    "mnv4-conv-l": (1, 2, 11, 13, 1),
    "mnv4-hybrid-m": (1, 2, 12, 16, 1),
    "mnv4-hybrid-l": (1, 2, 15, 18, 1),
}


def test_package_import_stays_framework_free():
    code = (
        "import sys, mnv4suite.reference_models as rm\n"
        "rm.model_specs(); rm.get_model_def('mnv4-hybrid-l'); rm.specs.plan(rm.MODEL_DEFS['mnv4-conv-s'])\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'onnxruntime', 'safetensors') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("model_id", list(MODEL_DEFS))
def test_plan_shape(model_id):
    p = plan(MODEL_DEFS[model_id])
    depths = tuple(len(p.stage(i)) for i in range(5))
    assert depths == STAGE_DEPTHS[model_id]
    assert [b.reduction for b in p.blocks if b.index == len(p.stage(b.stage)) - 1] == [4, 8, 16, 32, 32]
    assert p.num_features == 960 and p.head_chs == 1280
    assert [b.depth for b in p.blocks] == list(range(len(p.blocks)))
    hybrid = "hybrid" in model_id
    for b in p.blocks:
        if isinstance(b.spec, (specs.UIB, specs.MobileMQA)):
            assert b.layer_scale == (1e-5 if hybrid else None)
        else:
            assert b.layer_scale is None  # never on conv-bn-act or FusedIB blocks
        assert b.residual == (b.stride == 1 and b.in_chs == b.out_chs and not isinstance(b.spec, specs.ConvBnAct))


def test_hybrid_details():
    hm = plan(MODEL_DEFS["mnv4-hybrid-m"])
    by_name = {b.name: b for b in hm.blocks}
    mqa = by_name["blocks.2.4"]
    assert isinstance(mqa.spec, specs.MobileMQA) and mqa.spec.kv_stride == 2 and mqa.residual
    assert by_name["blocks.3.8"].spec == specs.MobileMQA(256, 4, 64, 64, 1)
    assert by_name["blocks.2.1"].spec.variant == "FFN" and by_name["blocks.2.1"].mid_chs == 320
    assert by_name["blocks.2.7"].spec.variant == "ConvNeXt"
    assert MODEL_DEFS["mnv4-hybrid-l"].act == "gelu"
    assert {d.act for i, d in MODEL_DEFS.items() if i != "mnv4-hybrid-l"} == {"relu"}


def test_uib_variants():
    assert specs.extra_dw(8, 3, 5, 4).variant == "ExtraDW"
    assert specs.ib(8, 3, 4).variant == "IB"
    assert specs.convnext(8, 3, 4).variant == "ConvNeXt"
    assert specs.ffn(8, 4).variant == "FFN"


def test_width_multiplier_rules():
    half = plan(MODEL_DEFS["mnv4-conv-s"], 0.5)
    assert half.stem_chs == 32  # stem fixed below 1.0
    assert [half.stage(i)[-1].out_chs for i in range(5)] == [16, 32, 48, 64, 480]
    assert half.head_chs == 1280  # head never scaled
    wide = plan(MODEL_DEFS["mnv4-conv-m"], 1.5)
    assert wide.stem_chs == 48  # stem scaled at >= 1.0
    hm = plan(MODEL_DEFS["mnv4-hybrid-m"], 0.75)
    mqa = next(b for b in hm.blocks if isinstance(b.spec, specs.MobileMQA))
    assert mqa.out_chs == 120 and mqa.spec.heads == 4 and mqa.spec.key_dim == 64
    with pytest.raises(ValueError):
        plan(MODEL_DEFS["mnv4-conv-s"], 0)


def test_make_divisible():
    assert specs.make_divisible(96 * 0.35) == 32  # 33.6 -> 32 (within 10%)
    assert specs.make_divisible(20) == 24  # 16 would be more than 10% down
    assert specs.round_channels(960, 1.0) == 960


def test_invalid_specs_are_rejected():
    base = MODEL_DEFS["mnv4-conv-s"]
    strided_ffn = replace(base, stages=base.stages[:2] + ((specs.UIB(96, expand=2, stride=2),),))
    with pytest.raises(ValueError, match="FFN"):
        plan(strided_ffn)
    with pytest.raises(ValueError, match="activation"):
        plan(replace(base, act="swishy"))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mnv4-conv-s", "mnv4-conv-s"),
        ("mobilenetv4_conv_small", "mnv4-conv-s"),
        ("mobilenetv4_hybrid_large", "mnv4-hybrid-l"),
        ("MNV4_Hybrid_M", "mnv4-hybrid-m"),
        ("mobilenetv4-conv-medium", "mnv4-conv-m"),
    ],
)
def test_aliases(name, expected):
    assert get_model_def(name).id == expected


def test_unknown_name():
    with pytest.raises(UnknownNameError) as info:
        get_model_def("mnv4-conv-xl")
    assert info.value.suggestion is not None
    assert "mnv4-conv-l" in str(info.value) and "mobilenetv4_conv_large" in str(info.value)
