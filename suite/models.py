"""Building a model for a run: the module, where its weights came from, and their checksum."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mnv4suite.api import ModelSpec, PreparedModel

RANDOM_INIT_SEED = 0


def state_dict_checksum(module) -> str:
    """sha256 over names, dtypes, shapes and bytes of the state dict, in key order."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def prepare_model(spec: ModelSpec, weights: str | Path | None = None) -> PreparedModel:
    """Build `spec` in eval mode. Without weights, a seeded random init keeps latency runs reproducible."""
    import torch

    if weights is None:
        torch.manual_seed(RANDOM_INIT_SEED)
    module = spec.build(weights=weights).eval()
    provenance = str(weights) if weights is not None else f"random-init (seed {RANDOM_INIT_SEED})"
    return PreparedModel(spec=spec, module=module, weights=provenance, checksum=state_dict_checksum(module))
