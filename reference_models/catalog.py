"""What the suite knows about the reference models without importing a framework.

Params and MACs are facts of this implementation (the MACs from ``counting.model_costs`` at each
model's default resolution; a test recomputes both). ``published`` holds the paper's Table 6 claims,
copied here as data so the installed package never reads ``shared/`` at runtime.
"""

from __future__ import annotations

from mnv4suite.api import ModelSpec, Requirement

from .specs import MODEL_DEFS, TIMM_NAMES

BUILDER = "mnv4suite.reference_models.mobilenetv4:build"
FAMILY = "MobileNetV4"

PAPER_SOURCE = (
    "Qin et al., 'MobileNetV4: Universal Models for the Mobile Ecosystem' (arXiv 2404.10518, ECCV 2024), "
    "Table 6: ImageNet-1k top-1 (trained on ImageNet-1k only), params, MACs"
)

#: Paper Table 6. The paper's params/MACs for the M/L models are lower than those of the released
#: architectures (timm = TF Model Garden); only Conv-S agrees. No explanation is published.
PUBLISHED: dict[str, dict[str, float]] = {
    "mnv4-conv-s": {"top1": 73.8, "params_m": 3.8, "gmacs": 0.2},
    "mnv4-conv-m": {"top1": 79.9, "params_m": 9.2, "gmacs": 1.0},
    "mnv4-conv-l": {"top1": 82.9, "params_m": 31.0, "gmacs": 5.9},
    "mnv4-hybrid-m": {"top1": 80.7, "params_m": 10.5, "gmacs": 1.2},
    "mnv4-hybrid-l": {"top1": 83.4, "params_m": 35.9, "gmacs": 7.2},
}

#: Measured on this implementation (1000 classes, width 1.0, batch 1, default resolution):
#: (parameters, MACs = convs + linear + attention matmuls).
MEASURED: dict[str, tuple[int, int]] = {
    "mnv4-conv-s": (3_774_024, 186_005_568),
    "mnv4-conv-m": (9_715_512, 1_080_244_224),
    "mnv4-conv-l": (32_590_864, 6_376_220_672),
    "mnv4-hybrid-m": (11_074_648, 1_271_183_360),
    "mnv4-hybrid-l": (37_764_624, 7_711_877_120),
}

TORCH = Requirement("torch", "pip install 'mnv4suite[torch]'")


def model_specs() -> list[ModelSpec]:
    """The five MNv4 models as ``ModelSpec`` records, smallest first."""
    out = []
    for model_id, model_def in MODEL_DEFS.items():
        params, macs = MEASURED[model_id]
        out.append(
            ModelSpec(
                id=model_id,
                builder=BUILDER,
                resolution=model_def.resolution,
                family=FAMILY,
                params=params,
                macs=macs,
                aliases=(TIMM_NAMES[model_id],),
                summary=model_def.summary,
                published={**PUBLISHED[model_id], "resolution": model_def.resolution, "source": PAPER_SOURCE},
                requires=(TORCH,),
            )
        )
    return out
