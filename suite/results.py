"""Result files: one JSON per run, validated against the versioned schema shipped with the suite,
written atomically so that a crash never leaves a half-written result."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mnv4suite.errors import UserError
from mnv4suite.fileio import atomic_write_json

SCHEMA_VERSION = "1.1"  # written; the schema file also reads 1.0
SCHEMA_FILE = "result-1.schema.json"
RESULT_FILE = "result.json"


class InvalidResultError(UserError):
    """A result that does not match the schema; the message lists every violation."""


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("mnv4suite").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    cls = jsonschema.validators.validator_for(schema())
    return cls(schema(), format_checker=cls.FORMAT_CHECKER)


def schema_errors(result: dict[str, Any]) -> list[str]:
    errors = sorted(_validator().iter_errors(result), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def validate(result: dict[str, Any], source: str = "result") -> None:
    errors = schema_errors(result)
    if errors:
        raise InvalidResultError(f"{source} does not match schema {SCHEMA_VERSION}:\n  " + "\n  ".join(errors))


def write(result: dict[str, Any], path: Path) -> Path:
    """Validate first, then replace atomically: an invalid result is never written."""
    validate(result)
    atomic_write_json(path, result)
    return path


def read(path: Path) -> dict[str, Any]:
    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read result file {path}: {exc}") from exc
    validate(result, source=str(path))
    return result
