"""The rest of the MobileNetV4 paper's Table 6, described for counting only: no weights, no training.

Each entry builds a plain ``nn.Module`` in its *inference* form (re-parameterised branches merged,
BatchNorm folded where the runtimes fold it) so that ``counting.profile`` counts what a deployed model
computes and moves. They widen what the roofline profiles are fitted to and validated on
(``plugins/devices.py``); they are not in the model catalog and cannot be run.

Importing this package stays framework-free; ``CountedModel.build`` imports the family's module,
which imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class CountedModel:
    """A Table 6 model the suite counts but does not run (duck-types the parts of ``ModelSpec`` costing uses)."""

    id: str
    table6_name: str  # its row in mnv4_paper_results.yaml
    resolution: int
    module: str  # the family's module in this package
    builder: str  # a function there returning the inference-form nn.Module
    source: str  # where the architecture comes from

    def build(self):
        return getattr(importlib.import_module(f"{__name__}.{self.module}"), self.builder)()


def _m(id: str, row: str, resolution: int, module: str, builder: str, source: str) -> CountedModel:
    return CountedModel(id, row, resolution, module, builder, source)


_MOBILEONE = "MobileOne (Vasu et al. 2023), apple/ml-mobileone, inference (re-parameterised) form"
_FASTVIT = "FastViT (Vasu et al. 2023), apple/ml-fastvit, inference (re-parameterised) form"
_CONVNEXT = "ConvNeXt (Liu et al. 2022), facebookresearch/ConvNeXt"
_MULTIHARDWARE = "MobileNet MultiHardware (Chu et al. 2020), TF Model Garden MobileNetMultiMAX/AVG at width 1.5"
_EFFICIENTVIT = "EfficientViT (Cai et al. 2023), mit-han-lab/efficientvit, classification backbones"

#: Every counted-only model by id, in Table 6 order.
COUNTED_MODELS: dict[str, CountedModel] = {
    m.id: m
    for m in (
        _m("mobileone-s0", "MobileOne-S0", 224, "mobileone", "mobileone_s0", _MOBILEONE),
        _m("fastvit-t8", "FastViT-T8", 256, "fastvit", "fastvit_t8", _FASTVIT),
        _m("multihardware-max-1.5x", "MultiHardware-MAX-1.5x", 224, "multihardware", "multihardware_max_15",
           _MULTIHARDWARE),
        _m("multihardware-avg-1.5x", "MultiHardware-AVG-1.5x", 224, "multihardware", "multihardware_avg_15",
           _MULTIHARDWARE),
        _m("mobileone-s4", "MobileOne-S4", 224, "mobileone", "mobileone_s4", _MOBILEONE),
        _m("fastvit-s12", "FastViT-S12", 256, "fastvit", "fastvit_s12", _FASTVIT),
        _m("efficientvit-b1-r224", "MIT-EfficientViT-B1-r224", 224, "efficientvit", "efficientvit_b1", _EFFICIENTVIT),
        _m("fastvit-sa12", "FastViT-SA12", 256, "fastvit", "fastvit_sa12", _FASTVIT),
        _m("fastvit-sa24", "FastViT-SA24", 256, "fastvit", "fastvit_sa24", _FASTVIT),
        _m("efficientvit-b2-r256", "MIT-EfficientViT-B2-r256", 256, "efficientvit", "efficientvit_b2", _EFFICIENTVIT),
        _m("convnext-s", "ConvNext-S", 224, "convnext", "convnext_small", _CONVNEXT),
        _m("efficientvit-b3-r224", "MIT-EfficientViT-B3-r224", 224, "efficientvit", "efficientvit_b3", _EFFICIENTVIT),
        _m("fastvit-sa36", "FastViT-SA36", 256, "fastvit", "fastvit_sa36", _FASTVIT),
    )
}


def by_table6_name() -> dict[str, CountedModel]:
    return {m.table6_name: m for m in COUNTED_MODELS.values()}
