"""The float64 oracle for the five MNv4 models, made from its seeded recipe (tests/fixtures/timm/README.md).

Weights and inputs are re-made with numpy from the seed and timm's state-dict manifest; the stored
float64 logits are what the reference implementation (timm) computes for them. Everything lives in
the repository: the tests never read a folder outside it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "timm"

#: The recipe's model order (j = 0..4).
TIMM_NAMES = ("mobilenetv4_conv_small", "mobilenetv4_conv_medium", "mobilenetv4_conv_large",
              "mobilenetv4_hybrid_medium", "mobilenetv4_hybrid_large")


@lru_cache(maxsize=1)
def manifest() -> dict:
    return json.loads((FIXTURES / "timm_mnv4_manifest.json").read_text())


@lru_cache(maxsize=1)
def _oracle() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "oracle_f64.npz") as data:
        return {key: data[key] for key in data.files}


def seed() -> int:
    return int(_oracle()["seed"])


def resolution(name: str) -> int:
    return int(manifest()[name]["resolution"])


def state_dict(name: str) -> dict[str, np.ndarray]:
    """timm-named float64 tensors (int64 batch counters), drawn as the recipe says."""
    j = TIMM_NAMES.index(name)
    out = {}
    for i, (key, shape) in enumerate(manifest()[name]["state_dict"].items()):
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            out[key] = np.zeros(shape, dtype=np.int64)
            continue
        u = np.random.default_rng([seed() + j, i]).random(int(np.prod(shape))).reshape(shape)
        if key.endswith("running_var") or key.endswith("gamma"):
            out[key] = 0.5 + u
        elif key.endswith("running_mean") or key.endswith("bias"):
            out[key] = 0.2 * (u - 0.5)
        elif len(shape) >= 2:
            out[key] = (2 * u - 1) * np.sqrt(3 / np.prod(shape[1:]))
        else:
            out[key] = 1 + 0.2 * (u - 0.5)
    return out


def inputs(name: str) -> np.ndarray:
    """The recipe's (2, 3, R, R) float64 input for ``name``."""
    j = TIMM_NAMES.index(name)
    r = resolution(name)
    return np.random.default_rng([seed(), 1_000_000 + j]).random((2, 3, r, r)) * 2 - 1


def logits(name: str) -> np.ndarray:
    """timm's float64 logits for ``inputs(name)`` with ``state_dict(name)``: (2, 1000)."""
    return _oracle()[f"{name}.logits"]


def write_fixtures(name: str, folder: Path) -> tuple[Path, Path]:
    """``<name>.weights.safetensors`` (float32, timm's keys) and ``<name>.io.safetensors`` (float32 input and
    logits) in ``folder``: the files a user's timm checkpoint and a reference run would give."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights, io = folder / f"{name}.weights.safetensors", folder / f"{name}.io.safetensors"
    if not weights.is_file():
        tensors = {k: v if v.dtype == np.int64 else v.astype(np.float32) for k, v in state_dict(name).items()}
        save_file(tensors, str(weights))
    if not io.is_file():
        save_file({"input": inputs(name).astype(np.float32), "logits": logits(name).astype(np.float32)}, str(io))
    return weights, io


def float32_tolerance(logits) -> float:
    """What float32 may be off by on these weights: 5e-4 of the largest logit (at least 1e-4 absolute).
    Measured against the float64 logits: Hybrid-M's recipe weights give logits up to 112, its float32 PyTorch
    module is 0.016 (1.4e-4 relative) off and its Keras twin 0.042 (3.7e-4); Conv-S's reach 1.3 and agree
    to 4e-7. A wrong layer is off by the size of the logits themselves."""
    return 5e-4 * max(0.2, float(np.max(np.abs(logits))))
