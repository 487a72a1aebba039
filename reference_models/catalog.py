"""What the suite knows about the reference models without importing a framework.

Params and MACs are facts of this implementation (the MACs from ``counting.model_costs`` at each
model's default resolution; a test recomputes both). ``published`` holds the paper's Table 6 claims,
copied here as data so the installed package never reads ``shared/`` at runtime; its ``row`` is the
Table 6 model name, the key reports join on (``shared/reference/mnv4_paper_results.yaml``). For the
RetinaNet detectors (``kind="detection"``) ``published`` holds Table 7 (COCO), whose ``row`` names the
backbone as Table 7 does.
"""

from __future__ import annotations

from mnv4suite.api import ModelSpec, Requirement, install_command

from .baselines import BASELINE_TIMM_NAMES
from .detectors import DETECTOR_DEFS
from .specs import EVAL_CROP_PCT, MODEL_DEFS, TIMM_NAMES, all_model_defs

BUILDER = "mnv4suite.reference_models.mobilenetv4:build"
DETECTOR_BUILDER = "mnv4suite.reference_models.retinanet:build_detector"
FAMILY = "MobileNetV4"
DETECTOR_FAMILY = "RetinaNet-MNv4"
#: Family of each baseline, by id prefix.
BASELINE_FAMILIES = {"mnv1-": "MobileNetV1", "mnv2-": "MobileNetV2", "mnv3l-": "MobileNetV3"}

PAPER_SOURCE = (
    "Qin et al., 'MobileNetV4: Universal Models for the Mobile Ecosystem' (arXiv 2404.10518, ECCV 2024), "
    "Table 6: ImageNet-1k top-1 (trained on ImageNet-1k only), params, MACs"
)

#: Paper Table 6. The paper's params/MACs for the M/L models are lower than those of the released
#: architectures (timm = TF Model Garden); only Conv-S agrees. No explanation is published.
#: The baselines agree with timm's generators to the paper's rounding (0.1M, 0.1G); their top-1 is
#: the paper's retrained recipe, not any public checkpoint's.
PUBLISHED: dict[str, dict[str, float | str]] = {
    "mnv4-conv-s": {"row": "MNv4-Conv-S", "top1": 73.8, "params_m": 3.8, "gmacs": 0.2},
    "mnv4-conv-m": {"row": "MNv4-Conv-M", "top1": 79.9, "params_m": 9.2, "gmacs": 1.0},
    "mnv4-conv-l": {"row": "MNv4-Conv-L", "top1": 82.9, "params_m": 31.0, "gmacs": 5.9},
    "mnv4-hybrid-m": {"row": "MNv4-Hybrid-M", "top1": 80.7, "params_m": 10.5, "gmacs": 1.2},
    "mnv4-hybrid-l": {"row": "MNv4-Hybrid-L", "top1": 83.4, "params_m": 35.9, "gmacs": 7.2},
    "mnv2-0.5": {"row": "MobileNet-V2-0.5x", "top1": 66.0, "params_m": 2.0, "gmacs": 0.1},
    "mnv3l-0.5": {"row": "MobileNet-V3L-0.5x", "top1": 69.2, "params_m": 2.7, "gmacs": 0.1},
    "mnv2-1.0": {"row": "MobileNet-V2", "top1": 73.4, "params_m": 3.5, "gmacs": 0.3},
    "mnv1-1.0": {"row": "MobileNet-V1", "top1": 74.0, "params_m": 4.2, "gmacs": 0.6},
    # mnv3l-1.0: no Table 6 row.
    "mnv2-1.5": {"row": "MobileNet-V2-1.5x", "top1": 76.8, "params_m": 6.8, "gmacs": 0.7},
    "mnv2-2.0": {"row": "MobileNet-V2-2.0x", "top1": 78.4, "params_m": 11.2, "gmacs": 1.1},
}

#: Measured on this implementation (1000 classes, width 1.0, batch 1, default resolution):
#: (parameters, MACs = convs + linear + attention matmuls).
MEASURED: dict[str, tuple[int, int]] = {
    "mnv4-conv-s": (3_774_024, 186_005_568),
    "mnv4-conv-m": (9_715_512, 1_080_244_224),
    "mnv4-conv-l": (32_590_864, 6_376_220_672),
    "mnv4-hybrid-m": (11_074_648, 1_271_183_360),
    "mnv4-hybrid-l": (37_764_624, 7_711_877_120),
    "mnv2-0.5": (1_968_680, 97_131_840),
    "mnv3l-0.5": (2_689_904, 73_663_088),
    "mnv2-1.0": (3_504_872, 300_774_272),
    "mnv1-1.0": (4_231_976, 568_740_352),
    "mnv3l-1.0": (5_483_032, 216_589_760),
    "mnv2-1.5": (6_858_152, 672_832_704),
    "mnv2-2.0": (11_258_088, 1_137_428_224),
}

DETECTOR_SOURCE = (
    "Qin et al., 'MobileNetV4: Universal Models for the Mobile Ecosystem' (arXiv 2404.10518, ECCV 2024), "
    "Table 7: COCO val2017 AP of RetinaNet at 384px, params, MACs, Pixel 6 CPU latency. Its params are a Keras "
    "count_params() of the TF Model Garden model (91 classes, unused 960/1280 backbone convs and BN moving "
    "statistics included); see counting.table7_convention"
)

#: Paper Table 7, for the two MNv4 rows it has (keyed by detector id; ``row`` is Table 7's backbone name).
PUBLISHED_DETECTORS: dict[str, dict[str, float | str]] = {
    "retinanet-mnv4-conv-m": {
        "row": "MNv4-Conv-M", "ap": 32.6, "params_m": 9.79, "gmacs": 5.06, "pixel6_cpu_ms": 51.3,
    },
    "retinanet-mnv4-hybrid-m": {
        "row": "MNv4-Hybrid-M", "ap": 34.0, "params_m": 11.15, "gmacs": 5.62, "pixel6_cpu_ms": 60.5,
    },
}

#: Measured on this implementation (80 classes, 384 px, batch 1; ``counting.detector_costs``).
MEASURED_DETECTORS: dict[str, tuple[int, int]] = {
    "retinanet-mnv4-conv-s": (2_318_548, 3_060_096_768),
    "retinanet-mnv4-conv-m": (8_190_404, 4_951_643_904),
    "retinanet-mnv4-conv-l": (30_897_820, 8_888_654_592),
    "retinanet-mnv4-hybrid-m": (9_549_540, 5_499_221_760),
    "retinanet-mnv4-hybrid-l": (36_071_580, 10_224_311_040),
}

TORCH = Requirement("torch", install_command("torch"))


def _family(model_id: str) -> str:
    return next((f for prefix, f in BASELINE_FAMILIES.items() if model_id.startswith(prefix)), FAMILY)


def model_specs() -> list[ModelSpec]:
    """The five MNv4 classifiers, the MobileNetV1/V2/V3 Pareto baselines, then the RetinaNet-MNv4 detectors."""
    return classifier_specs() + detector_specs()


def detector_specs() -> list[ModelSpec]:
    """The RetinaNet-MNv4 detectors (``kind="detection"``), in the order of their backbones."""
    out = []
    for detector_id, det in DETECTOR_DEFS.items():
        params, macs = MEASURED_DETECTORS[detector_id]
        published = PUBLISHED_DETECTORS.get(detector_id, {})
        if published:
            published = {**published, "resolution": det.resolution, "source": DETECTOR_SOURCE}
        out.append(
            ModelSpec(
                id=detector_id,
                builder=DETECTOR_BUILDER,
                resolution=det.resolution,
                num_classes=det.num_classes,
                kind="detection",
                family=DETECTOR_FAMILY,
                params=params,
                macs=macs,
                summary=det.summary,
                published=published,
                requires=(TORCH,),
                backbone=det.backbone,
            )
        )
    return out


def classifier_specs() -> list[ModelSpec]:
    """The five MNv4 models, then the MobileNetV1/V2/V3 Pareto baselines, each group smallest first."""
    aliases = {**TIMM_NAMES, **BASELINE_TIMM_NAMES}
    out = []
    for model_id, model_def in all_model_defs().items():
        params, macs = MEASURED[model_id]
        published = PUBLISHED.get(model_id, {})
        if published:
            published = {**published, "resolution": model_def.resolution, "source": PAPER_SOURCE}
        out.append(
            ModelSpec(
                id=model_id,
                builder=BUILDER,
                resolution=model_def.resolution,
                family=_family(model_id),
                params=params,
                macs=macs,
                aliases=(aliases[model_id],) if model_id in aliases else (),
                summary=model_def.summary,
                published=published,
                requires=(TORCH,),
                baseline=model_id not in MODEL_DEFS,
                crop_pct=EVAL_CROP_PCT.get(model_id, ModelSpec.crop_pct),
            )
        )
    return out
