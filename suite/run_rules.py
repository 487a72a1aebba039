"""Run rules: LoadGen presets, scenarios, modes and the default seeds, as MLPerf Mobile uses them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mnv4suite.errors import UnknownNameError


@dataclass(frozen=True)
class Preset:
    name: str
    min_query_count: int
    min_duration_ms: int
    summary: str


#: MLPerf Mobile's presets. 64 queries is the least that yields an early-stopping p90 estimate.
PRESETS = {
    p.name: p
    for p in (
        Preset("normal", 1024, 60_000, "submission quality: 1024 queries and 60 s"),
        Preset("quick", 128, 10_000, "128 queries and 10 s"),
        Preset("rapid", 64, 6_000, "smoke test: 64 queries and 6 s"),
    )
}

SCENARIOS = ("SingleStream", "Offline")
MODES = ("performance", "accuracy", "both")


@dataclass(frozen=True)
class Seeds:
    """LoadGen's three RNG seeds, always set explicitly and recorded in the result."""

    qsl: int = 3066443479025735752
    sample_index: int = 10688027786191513374
    schedule: int = 14962580496156340209

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError("preset", name, PRESETS)
    return PRESETS[name]


def normalize_scenario(name: str) -> str:
    for scenario in SCENARIOS:
        if name.lower().replace("-", "").replace("_", "") == scenario.lower():
            return scenario
    raise UnknownNameError("scenario", name, SCENARIOS)


def check_mode(name: str) -> str:
    if name not in MODES:
        raise UnknownNameError("mode", name, MODES)
    return name
