"""Gathering result files for a report: any mix of files and folders, each validated; an invalid file is
named with its problem and skipped, never dropped silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from mnv4suite import results as result_files
from mnv4suite.errors import UserError


@dataclass
class Collected:
    results: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # one per result
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def find(paths: Iterable[str | Path]) -> list[Path]:
    """Result files under ``paths``: files as given, folders searched recursively for result.json."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(path.rglob(result_files.RESULT_FILE)))
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"results path {path} does not exist: give result.json files or folders holding them")
    return list(dict.fromkeys(p.resolve() for p in found))


def collect(paths: Iterable[str | Path]) -> Collected:
    out = Collected()
    for path in find(paths):
        try:
            result = result_files.read(path)
        except UserError as exc:
            out.invalid.append((str(path), str(exc)))
            continue
        out.results.append(result)
        out.paths.append(str(path))
    return out
