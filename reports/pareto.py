"""Accuracy/latency Pareto fronts over result files: what a person looks at first, so every number says
where it comes from.

Public API (also used by the leaderboard):

* :class:`Point` - one result placed in the accuracy/latency plane, with ``latency_kind``
  (``"measured"`` by LoadGen or ``"estimated"`` by the roofline model) and ``accuracy_kind``
  (``"measured"`` or ``"published"``, the paper's figure used where no measurement exists).
* :func:`front_flags` - the non-dominated flags of plain ``(latency, accuracy)`` pairs.
* :func:`points_from_results` - result dicts (as ``mnv4suite.results.read`` returns them) to points.
* :func:`groups` - points split per (task, hardware target, scenario), each with its front marked.

Dominance: lower latency and higher accuracy are better. ``q`` dominates ``p`` when it is no worse in
both and strictly better in one. The front is exactly the set of points nothing dominates, so ties are
deterministic: two points with equal latency and equal accuracy are both on the front (neither is
better), and of two points with equal latency only the more accurate one can be. Values are compared
exactly as given; points without a latency or an accuracy (or with NaN), and points whose accuracy is
the paper's published figure rather than a measurement, are never on the front.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

MEASURED = "measured"
ESTIMATED = "estimated"
PUBLISHED = "published"

#: The headline metric of each task's accuracy (the first metric is used for other tasks).
HEADLINE_METRIC = {"imagenet": "top1", "coco": "ap"}

#: Published accuracy key in ``ModelSpec.published`` per metric.
PUBLISHED_KEY = {"top1": "top1", "ap": "ap"}


@dataclass(frozen=True)
class Point:
    """One result in the accuracy/latency plane of its task, hardware target and scenario."""

    task: str
    hardware: str
    scenario: str
    model: str
    backend: str
    precision: str
    latency_ms: float | None
    latency_kind: str | None  # "measured" | "estimated" | None (nothing to place it by)
    latency_metric: str  # e.g. "p90 ms (early stopping)", "roofline ms"
    accuracy: float | None
    accuracy_kind: str | None  # "measured" | "published" | None
    accuracy_metric: str | None  # e.g. "top1"
    status: str = "complete"  # "partial": accuracy over fewer samples than requested
    accuracy_note: str = ""  # where a borrowed or published accuracy comes from
    run_id: str = ""
    source: str = ""  # the result file
    validity: str = ""
    on_front: bool = False
    #: an estimate's typical error (the device profile's held-out median, %); None when measured or unknown
    latency_band_pct: float | None = None

    @property
    def placed(self) -> bool:
        """Has both coordinates, so it can be plotted and take part in the front."""
        return _finite(self.latency_ms) and _finite(self.accuracy)

    @property
    def label(self) -> str:
        return f"{self.model} / {self.backend} ({self.precision})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def front_flags(pairs: Sequence[tuple[float | None, float | None]]) -> list[bool]:
    """Non-dominated flags of ``(latency, accuracy)`` pairs (lower latency, higher accuracy is better).

    O(n log n): walk latencies upwards; at each latency only the most accurate points can be on the
    front, and only if they beat every strictly faster point. See the module docstring for ties.
    """
    placed = [i for i, (lat, acc) in enumerate(pairs) if _finite(lat) and _finite(acc)]
    flags = [False] * len(pairs)
    placed.sort(key=lambda i: (pairs[i][0], -pairs[i][1], i))
    best_faster = -math.inf
    start = 0
    while start < len(placed):
        latency = pairs[placed[start]][0]
        stop = start
        while stop < len(placed) and pairs[placed[stop]][0] == latency:
            stop += 1
        top = pairs[placed[start]][1]  # sorted by accuracy descending within equal latency
        if top > best_faster:
            for i in placed[start:stop]:
                if pairs[i][1] == top:
                    flags[i] = True
        best_faster = max(best_faster, top)
        start = stop
    return flags


def dominates(q: tuple[float, float], p: tuple[float, float]) -> bool:
    """True when ``q`` is no slower, no less accurate, and strictly better in one of the two."""
    return q[0] <= p[0] and q[1] >= p[1] and (q[0] < p[0] or q[1] > p[1])


def mark_front(points: Sequence[Point]) -> list[Point]:
    """The same points with ``on_front`` set, in a stable order: latency, then accuracy (best first), then label.

    Only measured accuracy takes part: a point placed by the paper's published accuracy is drawn, apart,
    but never joined into a front that would then read as measured."""
    flags = front_flags([(p.latency_ms, p.accuracy if p.accuracy_kind == MEASURED else None) for p in points])
    marked = [replace(p, on_front=f) for p, f in zip(points, flags)]
    return sorted(marked, key=_order)


def _order(p: Point) -> tuple:
    lat = p.latency_ms if _finite(p.latency_ms) else math.inf
    acc = -p.accuracy if _finite(p.accuracy) else math.inf
    return (lat, acc, p.model, p.backend, p.precision, p.run_id, p.source)


def front(points: Sequence[Point]) -> list[Point]:
    """The non-dominated points, fastest first."""
    return [p for p in mark_front(points) if p.on_front]


# --------------------------------------------------------------------------- from result files


def headline_metric(task: str, metrics: Mapping[str, float]) -> str | None:
    name = HEADLINE_METRIC.get(task)
    if name in metrics:
        return name
    return next(iter(metrics), None)


def latency_of(result: Mapping[str, Any]) -> tuple[float | None, str | None, str]:
    """(ms, kind, metric name) of a result: LoadGen's latency where measured, the roofline's where estimated.

    SingleStream uses the early-stopping p90 (MLPerf's figure of merit), else p90; Offline uses ms per
    sample from the throughput, since its per-query latency covers the whole batch.
    """
    latency = result.get("latency") or {}
    if latency.get("kind") == MEASURED:
        if result.get("scenario") == "Offline" and latency.get("samples_per_s"):
            return 1e3 / latency["samples_per_s"], MEASURED, "ms per sample (Offline throughput)"
        if latency.get("early_stopping_p90_ms") is not None:
            return latency["early_stopping_p90_ms"], MEASURED, "p90 ms (early stopping)"
        if latency.get("p90_ms") is not None:
            return latency["p90_ms"], MEASURED, "p90 ms"
    estimate = result.get("estimate") or {}
    if estimate.get("kind") == ESTIMATED and estimate.get("ms") is not None:
        band = estimate.get("typical_error_pct")
        return estimate["ms"], ESTIMATED, ("roofline ms (estimated, typically within "
                                           f"±{band:.0f}%)" if band is not None else "roofline ms (estimated)")
    return None, None, "-"


def _measured(result: Mapping[str, Any]) -> tuple[str, float] | None:
    accuracy = result.get("accuracy") or {}
    metrics = accuracy.get("metrics") or {}
    name = headline_metric(result["task"]["id"], metrics)
    return (name, float(metrics[name])) if name else None


PublishedLookup = Callable[[str, str], "tuple[float, str] | None"]

#: Hardware targets that name a class of machine, not one device: a lab measures them on several.
MACHINE_CLASSES = {"host-cpu": lambda r: r["system"].get("cpu") or "unknown CPU",
                   "cuda-gpu": lambda r: r["backend"].get("accelerator") or "unknown GPU"}


def _machine_hardware(results: Sequence[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], str]:
    """The hardware a result's point belongs to. Measured on a machine class (host-cpu, cuda-gpu) by
    more than one machine, as a lab sweep does, the machine is named too, so that two CPUs never
    share a front."""
    def machine(r: Mapping[str, Any]) -> str | None:
        hardware = r["backend"]["hardware"]
        if hardware not in MACHINE_CLASSES or (r.get("latency") or {}).get("kind") != "measured":
            return None
        return MACHINE_CLASSES[hardware](r)

    seen: dict[str, set[str]] = {}
    for r in results:
        if (name := machine(r)) is not None:
            seen.setdefault(r["backend"]["hardware"], set()).add(name)

    def hardware_of(r: Mapping[str, Any]) -> str:
        hardware, name = r["backend"]["hardware"], machine(r)
        return f"{hardware} ({name})" if name is not None and len(seen[hardware]) > 1 else hardware

    return hardware_of


def points_from_results(
    results: Iterable[Mapping[str, Any]],
    published: PublishedLookup | None = None,
    sources: Sequence[str] | None = None,
) -> list[Point]:
    """One point per result.

    Accuracy, first found wins: the result's own measurement; a measurement of the same model, task
    and precision in another result (noted), from the same backend and weights if there is one (the same
    artifact answered it), else the same weights, else any; complete runs before partial ones; the published figure
    from ``published(model_id, metric) -> (value, source) | None``, labelled "published", used only
    where no measured accuracy of that model, task and precision exists in the set.
    """
    results = list(results)
    sources = list(sources) if sources is not None else [""] * len(results)
    # a compliance run (LoadGen TEST01/TEST04) is evidence about another run, not a figure of its own
    kept = [i for i, r in enumerate(results) if not (r.get("loadgen") or {}).get("audit")]
    results, sources = [results[i] for i in kept], [sources[i] for i in kept]
    def key(r: Mapping[str, Any]) -> tuple[str, str, str]:
        return r["task"]["id"], r["model"]["id"], r["model"]["precision"]

    measured_by: dict[tuple[str, str, str], list[tuple[Mapping[str, Any], tuple[str, float]]]] = {}
    for r in results:
        if found := _measured(r):
            measured_by.setdefault(key(r), []).append((r, found))

    def lender(r: Mapping[str, Any]) -> tuple[Mapping[str, Any], tuple[str, float]] | None:
        def closeness(candidate) -> tuple:
            other = candidate[0]
            weights = other["model"].get("checksum") == r["model"].get("checksum")
            return (not (weights and other["backend"]["id"] == r["backend"]["id"]), not weights,
                    other.get("status") != "complete", other["run_id"])

        return min(measured_by.get(key(r), []), key=closeness, default=None)

    points = []
    hardware_of = _machine_hardware(results)
    for r, source in zip(results, sources):
        task = r["task"]["id"]
        ms, kind, latency_metric = latency_of(r)
        status = r.get("status", "complete")
        own = _measured(r)
        accuracy = accuracy_kind = metric = None
        note = ""
        if own:
            metric, accuracy = own
            accuracy_kind = MEASURED
            if status == "partial":
                note = f"partial: {r['task']['dataset'].get('skipped', 0)} sample(s) skipped"
        else:
            if lent := lender(r):
                other, (metric, accuracy) = lent
                accuracy_kind = MEASURED
                note = f"measured by run {other['run_id']} on {other['backend']['id']}"
                if other.get("status") != "complete":
                    note += " (partial)"
            elif published is not None:
                metric = HEADLINE_METRIC.get(task, "top1")
                found = published(r["model"]["id"], metric)
                if found:
                    accuracy, note = float(found[0]), found[1]
                    accuracy_kind = PUBLISHED
                else:
                    metric = None
        points.append(
            Point(
                task=task,
                hardware=hardware_of(r),
                scenario=r["scenario"],
                model=r["model"]["id"],
                backend=r["backend"]["id"],
                precision=r["model"]["precision"],
                latency_ms=ms,
                latency_kind=kind,
                latency_metric=latency_metric,
                accuracy=accuracy,
                accuracy_kind=accuracy_kind,
                accuracy_metric=metric,
                status=status,
                accuracy_note=note,
                run_id=r["run_id"],
                source=source,
                validity=r["validity"]["result"],
                latency_band_pct=(r.get("estimate") or {}).get("typical_error_pct") if kind == ESTIMATED else None,
            )
        )
    return points


@dataclass
class Group:
    """The points of one task, hardware target and scenario, front marked (see the module docstring)."""

    task: str
    hardware: str
    scenario: str
    points: list[Point] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.task}__{self.hardware}__{self.scenario}"

    @property
    def title(self) -> str:
        return f"{self.task} on {self.hardware} ({self.scenario})"

    @property
    def front(self) -> list[Point]:
        return [p for p in self.points if p.on_front]

    @property
    def accuracy_metric(self) -> str:
        return next((p.accuracy_metric for p in self.points if p.accuracy_metric), "accuracy")

    @property
    def latency_metrics(self) -> list[str]:
        return sorted({p.latency_metric for p in self.points if p.latency_kind})

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "hardware": self.hardware,
            "scenario": self.scenario,
            "accuracy_metric": self.accuracy_metric,
            "points": [p.to_dict() for p in self.points],
            "front": [i for i, p in enumerate(self.points) if p.on_front],
        }


def groups(points: Iterable[Point]) -> list[Group]:
    """Points per (task, hardware target, scenario), sorted by those keys, each with its front marked."""
    by_key: dict[tuple[str, str, str], list[Point]] = {}
    for p in points:
        by_key.setdefault((p.task, p.hardware, p.scenario), []).append(p)
    return [Group(*key, points=mark_front(pts)) for key, pts in sorted(by_key.items())]


def catalog_published(specs: Mapping[str, Any]) -> PublishedLookup:
    """A ``published`` lookup over ``ModelSpec`` objects by id (their ``published`` dicts, e.g. Table 6)."""

    def lookup(model_id: str, metric: str) -> tuple[float, str] | None:
        spec = specs.get(model_id)
        pub = getattr(spec, "published", None) or {}
        value = pub.get(PUBLISHED_KEY.get(metric, metric))
        if value is None:
            return None
        # the citation alone: the same for every model of a table, so a report can say it once
        return float(value), pub.get("source") or "the model's published figures"

    return lookup
