"""Loading checkpoints safely: local files or Hugging Face hub names, strict key/shape checks.

Nothing here executes pickled code: ``.safetensors`` files are read with safetensors, anything else
with ``torch.load(weights_only=True)``. A checkpoint that does not fit the model raises a
``UserError`` that names the file and lists the missing, unexpected and mis-shaped keys, because
"size mismatch" deep inside ``load_state_dict`` is hard to act on.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mnv4suite.api import install_command
from mnv4suite.errors import UserError

HUB_PREFIXES = ("hf-hub:", "hf_hub:")
#: Files tried, in order, in a hub repository (timm's layout: safetensors first).
HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")
#: Keys under which training scripts nest the state dict, tried in order.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "net")
_SHOW = 8  # entries (modules) listed per category in error messages


def is_hub_name(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and source.startswith(HUB_PREFIXES)


def load_weights(
    model: nn.Module,
    source: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    strict: bool = True,
) -> str:
    """Load a checkpoint into ``model`` (dtype cast to the model's, e.g. fp16 -> fp32).

    Returns a description of where the weights came from (file path or hub name and file).
    With ``strict=False`` missing and unexpected keys are tolerated; mis-shaped keys never are.
    """
    state_dict, origin = load_state_dict(source, cache_dir=cache_dir)
    fit = check_fit(model.state_dict(), state_dict)
    if fit.mismatched or (strict and not fit.ok):
        raise UserError(fit.describe(origin))
    model.load_state_dict(state_dict, strict=strict)
    return origin


def check_finite(state_dict: Mapping[str, torch.Tensor], origin: str) -> None:
    """NaN or infinite weights make every answer garbage that still looks like a result: refuse them."""
    broken = [(k, int((~torch.isfinite(v)).sum()), v.numel()) for k, v in state_dict.items()
              if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        named = ", ".join(f"{k} ({bad} of {total})" for k, bad, total in broken[:5])
        more = f" and {len(broken) - 5} more tensors" if len(broken) > 5 else ""
        raise UserError(f"weights file '{origin}' holds NaN or infinite values in {len(broken)} tensor(s): "
                        f"{named}{more}. The checkpoint is damaged (or was saved after training diverged)")


def load_state_dict(
    source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """Read a state dict from a local file or hub name; returns it with a description of its origin."""
    if is_hub_name(source):
        path = download_from_hub(str(source), cache_dir=cache_dir)
        origin = f"{source} ({path.name})"
    else:
        path = Path(source).expanduser()
        origin = str(path)
        if not path.is_file():
            what = "is a directory, not a checkpoint file" if path.is_dir() else "does not exist"
            raise UserError(f"weights file '{path}' {what}")
    state_dict = _read_checkpoint(path, origin)
    check_finite(state_dict, origin)
    return state_dict, origin


def _read_checkpoint(path: Path, origin: str) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            raw = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"weights file '{origin}' is not a readable safetensors file: {exc}") from exc
    else:
        try:
            # timm/torchvision training checkpoints carry their argparse arguments: data, not code.
            with torch.serialization.safe_globals([argparse.Namespace]):
                raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # the safe unpickler raises many types on foreign or corrupt files
            hint = ""
            if isinstance(exc, pickle.UnpicklingError):
                hint = (
                    ". It holds Python objects besides tensors; if you trust its source, re-save just the "
                    "state dict, e.g. torch.save(torch.load(f, weights_only=False)['state_dict'], 'weights.pth')"
                )
            raise UserError(
                f"weights file '{origin}' could not be read as a PyTorch checkpoint (safe loading, "
                f"weights_only=True): {_first_line(exc)}{hint}"
            ) from exc
    return unwrap_state_dict(raw, origin)


def unwrap_state_dict(obj: object, origin: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the state dict inside common wrappers and drop DataParallel's ``module.`` prefix."""
    for _ in range(3):  # e.g. {"model": {"state_dict": ...}}
        if isinstance(obj, Mapping) and not _is_state_dict(obj):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        found = f"keys {sorted(map(str, obj))[:_SHOW]}" if isinstance(obj, Mapping) else type(obj).__name__
        raise UserError(f"weights file '{origin}' holds no state dict of tensors (found {found})")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_state_dict(obj: Mapping) -> bool:
    """Names to dense tensors: a sparse or quantized tensor is no checkpoint of these models."""
    return len(obj) > 0 and all(isinstance(k, str) and isinstance(v, torch.Tensor) and v.layout == torch.strided
                                and not v.is_quantized for k, v in obj.items())


# --------------------------------------------------------------------------- fit check


@dataclass(frozen=True)
class Fit:
    """How a checkpoint's keys and shapes compare with a model's."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]  # key, checkpoint shape, model shape

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, origin: str) -> str:
        lines = [
            f"weights file '{origin}' does not fit the model: {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} mis-shaped keys"
        ]
        if self.missing:
            lines.append("  missing: " + _truncate(_group(self.missing)))
        if self.unexpected:
            lines.append("  unexpected: " + _truncate(_group(self.unexpected)))
        if self.mismatched:
            by_shapes: dict[tuple, list[str]] = {}
            for key, ckpt, model in self.mismatched:
                by_shapes.setdefault((key.rpartition(".")[0], ckpt, model), []).append(key)
            shown = [
                f"{_group(keys)[0]} (checkpoint {list(ckpt)} vs model {list(model)})"
                for (_, ckpt, model), keys in sorted(by_shapes.items(), key=lambda kv: _natural(kv[1][0]))
            ]
            lines.append("  mis-shaped: " + _truncate(shown))
        lines.append("  (a checkpoint of another model, or trained for another num_classes or width_multiplier?)")
        return "\n".join(lines)


def check_fit(model_state: Mapping[str, torch.Tensor], checkpoint: Mapping[str, torch.Tensor]) -> Fit:
    missing = tuple(k for k in model_state if k not in checkpoint)
    unexpected = tuple(k for k in checkpoint if k not in model_state)
    mismatched = tuple(
        (k, tuple(checkpoint[k].shape), tuple(v.shape))
        for k, v in model_state.items()
        if k in checkpoint and tuple(checkpoint[k].shape) != tuple(v.shape)
    )
    return Fit(missing, unexpected, mismatched)


def _natural(key: str) -> list:
    """Sort key that puts blocks.2.10 after blocks.2.9."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in key.split(".")]


def _group(keys) -> list[str]:
    """Keys of one module on one line: ``blocks.1.0.bn.{weight,bias}``; modules in network order."""
    modules: dict[str, list[str]] = {}
    for key in sorted(keys, key=_natural):
        module, _, leaf = key.rpartition(".")
        modules.setdefault(module, []).append(leaf)
    return [
        f"{module}.{leaves[0]}" if len(leaves) == 1 else f"{module}.{{{','.join(leaves)}}}"
        for module, leaves in modules.items()
    ]


def _truncate(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


# --------------------------------------------------------------------------- hub


def parse_hub_name(name: str) -> tuple[str, str | None]:
    """``hf-hub:org/repo[@revision]`` -> (repo_id, revision)."""
    body = name.split(":", 1)[1]
    repo_id, _, revision = body.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise UserError(f"hub name '{name}' is not of the form 'hf-hub:<org>/<repo>[@<revision>]'")
    return repo_id, revision or None


def download_from_hub(name: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch (or find in the local cache) a checkpoint file of a Hugging Face hub repository.

    Honours the usual hub settings (``HF_HUB_OFFLINE``, ``HF_HOME``, tokens); ``cache_dir``
    overrides the cache location. Tries ``model.safetensors`` before ``pytorch_model.bin``.
    """
    repo_id, revision = parse_hub_name(name)
    try:
        import huggingface_hub
    except ImportError:
        raise UserError(
            f"loading '{name}' needs the 'huggingface_hub' package ({install_command('hub')}), "
            "or download the checkpoint yourself and pass its file path"
        ) from None
    errors = _hub_errors()
    last_error: BaseException | None = None
    for filename in HUB_FILENAMES:
        try:
            path = huggingface_hub.hf_hub_download(
                repo_id, filename, revision=revision, cache_dir=str(cache_dir) if cache_dir is not None else None
            )
            return Path(path)
        except errors["entry"] as exc:  # not in the repository (or not cached when offline): try the next
            last_error = exc
        except errors["repo"] as exc:
            raise UserError(f"hub repository for '{name}' not found or not accessible: {_first_line(exc)}") from exc
        except (OSError, ValueError) as exc:  # network and HTTP errors
            raise UserError(f"could not fetch '{name}' from the hub: {_first_line(exc)}") from exc
    where = f"cache '{cache_dir}'" if cache_dir is not None else "default hub cache"
    offline = _hub_offline()
    hint = f"; HF_HUB_OFFLINE is set, so only the {where} was searched" if offline else ""
    raise UserError(
        f"no checkpoint found for '{name}' (tried {', '.join(HUB_FILENAMES)}{hint}): {_first_line(last_error)}"
    )


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except (ImportError, AttributeError):
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _hub_errors() -> dict[str, tuple[type[BaseException], ...]]:
    try:
        from huggingface_hub import errors as hub_errors
    except ImportError:  # huggingface_hub < 0.23
        from huggingface_hub import utils as hub_errors
    def present(*names: str) -> tuple[type[BaseException], ...]:
        return tuple(getattr(hub_errors, n) for n in names if hasattr(hub_errors, n))

    return {
        "entry": present("EntryNotFoundError", "LocalEntryNotFoundError"),
        "repo": present("RepositoryNotFoundError", "RevisionNotFoundError"),
    }


def _first_line(exc: BaseException | None) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # torch decorates some messages with ANSI codes
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    # a bare "101" (KeyError from the unpickler on a file that is not a checkpoint) says nothing alone
    return line if len(line) > 12 else f"{type(exc).__name__}: {line} (not a checkpoint file?)"
