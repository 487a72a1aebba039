"""The framework-free catalog: ModelSpec records, published numbers, builder entry point."""

from __future__ import annotations

import pytest

from mnv4suite.api import ModelSpec, load_object
from mnv4suite.reference_models import model_specs

PAPER_NAMES = {
    "mnv4-conv-s": "MNv4-Conv-S",
    "mnv4-conv-m": "MNv4-Conv-M",
    "mnv4-conv-l": "MNv4-Conv-L",
    "mnv4-hybrid-m": "MNv4-Hybrid-M",
    "mnv4-hybrid-l": "MNv4-Hybrid-L",
}
EXPECTED = {  # id: (resolution, params, timm name)
    "mnv4-conv-s": (224, 3_774_024, "mobilenetv4_conv_small"),
    "mnv4-conv-m": (256, 9_715_512, "mobilenetv4_conv_medium"),
    "mnv4-conv-l": (384, 32_590_864, "mobilenetv4_conv_large"),
    "mnv4-hybrid-m": (256, 11_074_648, "mobilenetv4_hybrid_medium"),
    "mnv4-hybrid-l": (384, 37_764_624, "mobilenetv4_hybrid_large"),
}


def mnv4_specs() -> list[ModelSpec]:
    """The MNv4 records; the V1-V3 baselines that follow them are covered by test_baselines.py."""
    return [s for s in model_specs() if s.family == "MobileNetV4"]


def test_model_specs():
    specs = mnv4_specs()
    assert [s.id for s in specs] == list(EXPECTED)
    for spec in specs:
        assert isinstance(spec, ModelSpec)
        resolution, params, timm_name = EXPECTED[spec.id]
        assert (spec.resolution, spec.params, spec.aliases) == (resolution, params, (timm_name,))
        assert spec.family == "MobileNetV4" and spec.kind == "classification" and spec.num_classes == 1000
        assert spec.macs and spec.summary
        assert "Table 6" in spec.published["source"]
        assert callable(load_object(spec.builder))
        assert [r.module for r in spec.requires] == ["torch"]


def test_published_numbers_match_paper_yaml(paper_results):
    rows = {row["model"]: row for row in paper_results["imagenet"]}
    for spec in mnv4_specs():
        row = rows[PAPER_NAMES[spec.id]]
        assert {k: spec.published[k] for k in ("top1", "params_m", "gmacs")} == {
            "top1": row["top1"],
            "params_m": row["params_m"],
            "gmacs": row["gmacs"],
        }


def test_modelspec_build_contract():
    pytest.importorskip("torch")
    spec = next(s for s in model_specs() if s.id == "mnv4-conv-s")
    model = spec.build(num_classes=4)
    assert not model.training and model.classifier.out_features == 4
