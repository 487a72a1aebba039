"""Parsing files other people wrote (results, submissions, configs, annotation files) with limits.

Python's json and PyYAML recurse once per nesting level, so a few kilobytes of brackets raise
RecursionError (or, for YAML, spend minutes first); json accepts NaN and Infinity, which no figure
may be; YAML aliases can expand one line into gigabytes once something formats the value. Every
untrusted file goes through here: size first, then nesting depth counted without recursion, then
the real parser. Each problem is a ValueError naming what was wrong and the limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Deeper than any file the suite reads or writes (results nest 6 levels, COCO files 4).
MAX_DEPTH = 64


def depth_beyond(value: Any, limit: int) -> int | None:
    """The nesting depth of parsed JSON/YAML if it exceeds `limit`, else None (iterative, stops early)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return depth
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows (a figure must be finite)")


#: More digits than any float holds (1.8e308): a longer integer is no figure, and converting it fails later.
MAX_INT_DIGITS = 309


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits is no figure (at most {MAX_INT_DIGITS})")
    return int(text)


def load_json(data: bytes | str, what: str, max_bytes: int | None = None, max_depth: int | None = MAX_DEPTH) -> Any:
    """Parse untrusted JSON: at most `max_bytes`, UTF-8, no NaN or Infinity, at most `max_depth` levels
    (None: only as deep as the parser itself can go, for large files whose shape is checked anyway)."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if max_bytes is not None and len(raw) > max_bytes:
        raise ValueError(f"{what} is {len(raw)} bytes, more than the {max_bytes} allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from None
    try:
        value = json.loads(text, parse_constant=_no_constants, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except ValueError as exc:  # a constant or an integer refused above
        raise ValueError(f"{what}: {exc}") from None
    except RecursionError:  # the C decoder gives up at the interpreter's recursion limit, at once
        raise ValueError(f"{what} nests too deep to read (over {MAX_DEPTH} levels is refused)") from None
    if max_depth is not None and (depth := depth_beyond(value, max_depth)):
        raise ValueError(f"{what} nests {depth}+ levels deep, more than the {max_depth} allowed")
    return value


def load_yaml(data: bytes | str, what: str, max_bytes: int = 1 << 20, max_depth: int = MAX_DEPTH) -> Any:
    """Parse an untrusted or hand-written YAML file: safe loader, no aliases, bounded size and depth.

    The event stream is read first (PyYAML's parser is not recursive; its composer is), so a deep or
    aliased file is refused before anything is built."""
    import yaml

    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise ValueError(f"{what} is {len(raw)} bytes, more than the {max_bytes} allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from None
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            mark = event.start_mark
            raise ValueError(f"{what} uses YAML aliases (*{printable(event.anchor, 40)} at line {mark.line + 1}): "
                             "write every value out (aliases can expand a small file into gigabytes)")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                mark = event.start_mark
                raise ValueError(f"{what} nests more than {max_depth} levels deep (line {mark.line + 1})")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.safe_load(text)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: Any, limit: int = 300) -> str:
    """Text from an untrusted source made safe for a terminal: control characters (ANSI escapes,
    carriage returns, bidi overrides) shown as escapes, newlines kept, long text cut."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
