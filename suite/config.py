"""Run configuration: the `mnv4suite run` flags, or the same keys in a YAML file.

A YAML config is the flags written down; flags given on the command line override it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mnv4suite.errors import UserError
from mnv4suite.safeparse import load_yaml, printable
from mnv4suite.run_rules import check_mode, get_preset, normalize_scenario

DEFAULT_OUT = "mnv4suite-results"
MAX_CONFIG_BYTES = 1 << 20


@dataclass
class RunConfig:
    task: str = "imagenet"
    backend: list[str] = field(default_factory=list)  # empty: every backend available here
    model: list[str] = field(default_factory=list)  # empty: every model the task can run
    preset: str = "normal"
    scenario: str | list[str] = "SingleStream"  # several: each job runs once per scenario
    mode: str | None = None  # None: "both" with --data, else "performance"
    data: str | None = None
    count: int | None = None
    weights: str | None = None
    out: str = DEFAULT_OUT
    on_error: str = "stop"
    cache_dir: str | None = None
    cooldown: float = 0.0  # seconds before each timed test
    threads: int | None = None  # CPU threads per session; None: each backend's default
    batch: int | None = None  # Offline samples per inference; None: each backend's default
    audit: list[str] = field(default_factory=list)  # LoadGen compliance tests (TEST01, TEST04)

    def __post_init__(self) -> None:
        for key in ("task", "preset", "data", "weights", "out", "on_error", "cache_dir", "mode"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise UserError(f"'{key}' must be text, not {_kind(value)} {printable(repr(value), 60)}")
            if isinstance(value, str) and "\x00" in value:
                raise UserError(f"'{key}' holds a NUL character")
        for key in ("task", "preset", "out", "on_error"):
            if getattr(self, key) is None:
                raise UserError(f"'{key}' needs a value (leave the key out for the default)")
        if self.scenario is None:
            raise UserError("'scenario' needs a value: SingleStream, Offline or both (leave the key out for SingleStream)")
        self.backend = _as_list(self.backend, "backend")
        self.model = _as_list(self.model, "model")
        get_preset(self.preset)
        names = _as_list(self.scenario, "scenario") or ["SingleStream"]
        scenarios = list(dict.fromkeys(normalize_scenario(name) for name in names))
        self.scenario = scenarios[0] if len(scenarios) == 1 else scenarios
        if self.mode is None:
            self.mode = "both" if self.data else "performance"
        check_mode(self.mode)
        if self.mode != "performance" and not self.data:
            raise UserError(
                f"--mode {self.mode} measures accuracy and needs a dataset: pass --data PATH "
                "(or use --mode performance, which runs on generated inputs of the task's shape)"
            )
        if self.on_error not in ("stop", "skip"):
            raise UserError(f"on_error must be 'stop' or 'skip', not '{self.on_error}'")
        if isinstance(self.cooldown, bool) or not isinstance(self.cooldown, (int, float)) or not 0 <= self.cooldown <= 3600:
            raise UserError(f"cooldown must be a number of seconds from 0 to 3600, not {self.cooldown!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or not 1 <= self.threads <= 1024):
            raise UserError(f"threads must be a whole number from 1 to 1024, not {self.threads!r}")
        if self.batch is not None:
            if isinstance(self.batch, bool) or not isinstance(self.batch, int) or not 1 <= self.batch <= 4096:
                raise UserError(f"batch must be a whole number from 1 to 4096, not {self.batch!r}")
            if self.batch > 1 and "Offline" not in self.scenarios:
                raise UserError(f"--batch {self.batch}: SingleStream answers one sample per query; batches are "
                                "for the Offline scenario (--scenario Offline)")
        from mnv4suite.compliance import check_tests

        self.audit = check_tests(_as_list(self.audit, "audit"))
        if self.count is not None and (isinstance(self.count, bool) or not isinstance(self.count, int)
                                       or not 1 <= self.count <= MAX_COUNT):
            raise UserError(f"count must be a whole number from 1 to {MAX_COUNT}, not {printable(repr(self.count), 60)}")
        if self.count is not None and not self.data:
            raise UserError(f"--count {self.count} picks samples of a dataset, and no --data was given: pass --data PATH, "
                            "or leave --count out (without a dataset the run times generated inputs)")


    @property
    def scenarios(self) -> list[str]:
        return [self.scenario] if isinstance(self.scenario, str) else list(self.scenario)


#: More samples than any dataset the suite knows (ImageNet val 50,000; COCO train 118,287) by far,
#: and within what LoadGen's sample counters take.
MAX_COUNT = 10_000_000


def _kind(value: Any) -> str:
    return {list: "a list", dict: "a mapping", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), f"a {type(value).__name__}")


def _as_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise UserError(f"'{key}' must be a name or a list of names, not {printable(repr(value), 80)}")
    # "a,b" on the command line means two names
    return [name.strip() for item in value for name in item.split(",") if name.strip()]


def yaml_problem(exc: Exception) -> str:
    """Where the mistake is: YAML notices a problem where it stops making sense (often the next line), so
    the construct it was reading when it started (an unclosed bracket or quote) comes first."""
    def at(mark) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    problem = getattr(exc, "problem", None) or str(exc)
    problem_mark, context_mark = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    found = f"{problem} at {at(problem_mark)}" if problem_mark is not None else problem
    context = getattr(exc, "context", None)
    if context and context_mark is not None and (problem_mark is None or context_mark.line != problem_mark.line):
        return f"{context} at {at(context_mark)} (the mistake is likely there): {found}"
    return found


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Load a config file, answering every problem with the file name and position."""
    import yaml

    path = Path(path)
    if path.is_dir():
        raise UserError(f"config file {path} is a folder: give the YAML file itself")
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        data = load_yaml(path.read_bytes(), f"config file {path}", max_bytes=MAX_CONFIG_BYTES)
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {yaml_problem(exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must be a mapping of option: value, not a {type(data).__name__}")
    known = {f.name for f in fields(RunConfig)}
    for key in data:
        normalized = str(key).replace("-", "_")
        if normalized not in known:
            close = difflib.get_close_matches(normalized, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UserError(f"config file {path}: unknown option '{key}'.{hint} Known options: {', '.join(sorted(known))}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(file_values: dict[str, Any], cli_values: dict[str, Any]) -> RunConfig:
    """Command-line values (those not None) override the file's."""
    merged = {**file_values, **{k: v for k, v in cli_values.items() if v is not None}}
    try:
        return RunConfig(**merged)
    except TypeError as exc:
        raise UserError(f"bad run configuration: {exc}") from exc
