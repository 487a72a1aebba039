"""The MobileNetV4 reference models: Conv-S/M/L and Hybrid-M/L, drop-in compatible with timm checkpoints,
and the paper's RetinaNet detectors on them.

    from mnv4suite.reference_models import create_model, create_detector
    model = create_model("mnv4-conv-s", weights="hf-hub:timm/mobilenetv4_conv_small.e2400_r224_in1k")
    detector = create_detector("retinanet-mnv4-conv-m", backbone_weights="pretrained")

Importing this package stays framework-free (plugin discovery must not pay for torch): the
architecture data (``specs``) and metadata (``catalog``) are plain Python, and the PyTorch parts
(``mobilenetv4``, ``torch_blocks``, ``weights``, ``counting``) load on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import model_specs
from .specs import MODEL_DEFS, TIMM_NAMES, canonical_name, get_model_def

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "MODEL_DEFS",
    "TIMM_NAMES",
    "canonical_name",
    "create_detector",
    "create_model",
    "get_model_def",
    "list_models",
    "model_specs",
]

_LAZY_SUBMODULES = ("counting", "export", "keras_blocks", "keras_model", "keras_retinanet", "mobilenetv4", "retinanet",
                    "torch_blocks", "weights")


def list_models() -> list[str]:
    """The model ids, smallest first."""
    return list(MODEL_DEFS)


def create_model(
    name: str,
    num_classes: int = 1000,
    weights: str | Path | None = None,
    width_multiplier: float = 1.0,
    **kwargs: Any,
) -> "nn.Module":
    """Build an MNv4 model (eval mode) by id or timm name; see ``mobilenetv4.create_model``."""
    from .mobilenetv4 import create_model as _create

    return _create(name, num_classes=num_classes, weights=weights, width_multiplier=width_multiplier, **kwargs)


def create_detector(name: str, num_classes: int | None = None, weights: str | Path | None = None,
                    **kwargs: Any) -> "nn.Module":
    """Build a RetinaNet-MNv4 detector (eval mode); see ``retinanet.create_detector``."""
    from .retinanet import create_detector as _create

    return _create(name, num_classes=num_classes, weights=weights, **kwargs)


def __getattr__(name: str) -> Any:
    # PEP 562: `reference_models.weights` etc. import torch only when first touched.
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
