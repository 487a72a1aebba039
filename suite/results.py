"""Result files: one JSON per run, validated against the versioned schema shipped with the suite,
written atomically so that a crash never leaves a half-written result."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mnv4suite.errors import UserError
from mnv4suite.fileio import atomic_write_bytes, json_bytes

SCHEMA_VERSION = "1.4"  # written; the schema file also reads 1.0 to 1.3
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
    # "not valid under any of the given schemas" (a oneOf of null or an object) says nothing: name the
    # deepest problem inside instead
    errors = [max(e.context, key=lambda c: len(c.absolute_path)) if e.validator == "oneOf" and e.context else e
              for e in errors]
    found = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
    # JSON Schema's minimum/maximum let NaN through (every comparison with it is false)
    return found + [f"{where}: {value} is not a finite number" for where, value in _non_finite(result)]


def _non_finite(value: Any, where: str = "(root)") -> list[tuple[str, float]]:
    stack, found = [(value, where)], []
    while stack:
        item, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            found.append((path, item))
        elif isinstance(item, dict):
            stack.extend((v, f"{path}/{k}" if path != "(root)" else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}/{i}") for i, v in enumerate(item))
    return sorted(found)


def validate(result: dict[str, Any], source: str = "result") -> None:
    errors = schema_errors(result)
    if errors:
        raise InvalidResultError(f"{source} does not match schema {SCHEMA_VERSION}:\n  " + "\n  ".join(errors))


#: Far above any result the suite writes (a few KiB; a COCO artifact's details stay well under 1 MiB).
MAX_RESULT_BYTES = 4 << 20


def write(result: dict[str, Any], path: Path) -> Path:
    """Validate first, then replace atomically: an invalid result, or one too large for ``read`` to take
    back, is never written."""
    validate(result)
    data = json_bytes(result)
    if len(data) > MAX_RESULT_BYTES:
        raise ValueError(f"a result of {len(data)} bytes is more than the {MAX_RESULT_BYTES} a reader "
                         "accepts: a field grew without bound (a bug in the suite or a plugin: please report it)")
    atomic_write_bytes(path, data)
    return path


def per_query_latency(result: dict[str, Any]) -> dict[str, Any]:
    """The latency figures that are a query's latency. In Offline, LoadGen sends every sample in one query,
    so its "latencies" are times from the start of the test to each sample's end (seconds at the normal
    preset, beside SingleStream's milliseconds): its figure is the throughput, samples/s."""
    latency = result.get("latency") or {}
    return {} if result.get("scenario") == "Offline" else latency


def read(path: Path) -> dict[str, Any]:
    """A result file from anywhere (a report, a submission): size, depth and finite numbers checked first."""
    from mnv4suite.safeparse import load_json, printable

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_RESULT_BYTES + 1)
        result = load_json(data, "the file", max_bytes=MAX_RESULT_BYTES)
    except IsADirectoryError:
        raise UserError(f"cannot read result file {printable(path)}: it is a folder") from None
    except OSError as exc:
        raise UserError(f"cannot read result file {printable(path)}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"cannot read result file {printable(path)}: {printable(exc)}") from None
    validate(result, source=printable(str(path)))
    return result
