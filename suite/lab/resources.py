"""What a lab node advertises as Ray custom resources, and what each job asks for.

A node advertises, with amount 1 each:
  mnv4suite:slot                 the exclusive benchmark slot (one latency job at a time)
  mnv4suite:node:NAME            its lab name, so runs can be pinned to it (`--node NAME`)
  mnv4suite:hw:HARDWARE          hardware it really runs (`host-cpu` always, `cuda-gpu`, ...)
  mnv4suite:measures:BACKEND     backends whose runtime and device probes pass here
  mnv4suite:prepares:BACKEND     backends whose packages are installed (convert, stand in, estimate)

A job asks for a token amount of the one backend resource it needs (it needs the thing, not a
share of it) and for the slot: all of it when LoadGen times it, a quarter otherwise, so accuracy
runs, stand-ins and conversions share a node with each other but never with a latency job.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Iterable

from mnv4suite.api import Availability, BackendSpec

SLOT = "mnv4suite:slot"
SHARED_SLOT = 0.25
TOKEN = 0.001
HOST_CPU = "host-cpu"


def hardware(hardware_id: str) -> str:
    return f"mnv4suite:hw:{hardware_id}"


def measures(backend_id: str) -> str:
    return f"mnv4suite:measures:{backend_id}"


def prepares(backend_id: str) -> str:
    return f"mnv4suite:prepares:{backend_id}"


def node_name(name: str) -> str:
    return f"mnv4suite:node:{name}"


NODE_PREFIX = node_name("")


def default_name() -> str:
    return socket.gethostname()


def host_resources(backends: Iterable[BackendSpec], name: str | None = None) -> dict[str, float]:
    """The resources this host holds, from the same probes as `mnv4suite list backends`, then each
    backend's full runtime check (which may import its framework)."""
    found = {SLOT: 1.0, node_name(name or default_name()): 1.0, hardware(HOST_CPU): 1.0}
    for spec in backends:
        if not spec.requirements():
            continue
        found[prepares(spec.id)] = 1.0
        if _runs_here(spec):
            found[measures(spec.id)] = 1.0
            found[hardware(spec.hardware)] = 1.0
    return dict(sorted(found.items()))


def _runs_here(spec: BackendSpec) -> bool:
    if not spec.probe():
        return False
    try:
        return bool(spec.create().probe())
    except Exception:  # noqa: BLE001 - a probe that breaks means the backend cannot run here
        return False


def is_timed(mode: str) -> bool:
    return mode in ("performance", "both")


def job_demand(backend_id: str, mode: str, measured: bool, pinned: str | None = None) -> dict[str, float]:
    """Ray resources for one job: measured on a node that runs the backend, else prepared (stand-in
    and estimate) on one that has its packages. `pinned` is a node's lab name."""
    demand = {measures(backend_id) if measured else prepares(backend_id): TOKEN,
              SLOT: 1.0 if measured and is_timed(mode) else SHARED_SLOT}
    if pinned:
        demand[node_name(pinned)] = TOKEN
    return demand


def prepare_demand(backend_id: str, pinned: str | None = None) -> dict[str, float]:
    """An artifact build: CPU work that needs the backend's packages, never beside a latency job."""
    demand = {prepares(backend_id): TOKEN, SLOT: SHARED_SLOT}
    if pinned:
        demand[node_name(pinned)] = TOKEN
    return demand


@dataclass
class Node:
    """A lab node as the driver sees it (from Ray's node table)."""

    id: str
    hostname: str
    address: str
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        names = [k[len(NODE_PREFIX):] for k in self.resources if k.startswith(NODE_PREFIX)]
        return names[0] if names else self.hostname

    @property
    def in_lab(self) -> bool:
        return SLOT in self.resources

    def holds(self, demand: dict[str, float]) -> bool:
        return all(self.resources.get(key, 0.0) >= amount for key, amount in demand.items())

    def listed(self, prefix: str) -> list[str]:
        return sorted(k.split(":", 2)[2] for k in self.resources if k.startswith(f"mnv4suite:{prefix}:"))

    @classmethod
    def from_ray(cls, entry: dict[str, Any]) -> "Node":
        return cls(id=entry["NodeID"], hostname=entry.get("NodeManagerHostname", ""),
                   address=entry.get("NodeManagerAddress", ""), resources=dict(entry.get("Resources", {})))


class Lab:
    """The nodes of a lab, answering the planner's questions (mnv4suite.runner.Hardware) for all of them."""

    def __init__(self, nodes: list[Node], pinned: str | None = None):
        self.nodes = [n for n in nodes if n.in_lab]
        self.pinned = pinned

    @property
    def usable(self) -> list[Node]:
        return [n for n in self.nodes if self.pinned is None or n.name == self.pinned]

    def holders(self, backend: BackendSpec) -> list[Node]:
        return [n for n in self.usable if measures(backend.id) in n.resources]

    def preparers(self, backend: BackendSpec) -> list[Node]:
        return [n for n in self.usable if prepares(backend.id) in n.resources]

    def requirements(self, backend: BackendSpec) -> Availability:
        if self.preparers(backend):
            return Availability.ok()
        here = backend.requirements()
        how = f" ({here.explain()})" if not here else ""
        return Availability.missing(f"no node {self._scope()} has its packages{how}; install them on a node "
                                    "and join it again (mnv4suite lab join)")

    def probe(self, backend: BackendSpec) -> Availability:
        holders = self.holders(backend)
        if holders:
            return Availability.ok(f"on {', '.join(n.name for n in holders)}")
        return Availability.missing(f"no node {self._scope()} holds {backend.hardware} with a working {backend.id}")

    def measured(self, backend: BackendSpec) -> bool:
        return bool(self.holders(backend))

    def _scope(self) -> str:
        return f"'{self.pinned}'" if self.pinned else "in the lab"

    def resolve(self, wanted: str) -> str:
        """A node's lab name from its lab name, Ray node id (or a prefix of 6+), host name or address."""
        for test in (lambda n: n.name == wanted,
                     lambda n: len(wanted) >= 6 and n.id.startswith(wanted),
                     lambda n: wanted in (n.hostname, n.address)):
            found = [n for n in self.nodes if test(n)]
            if len(found) == 1:
                return found[0].name
            if len(found) > 1:
                raise_ambiguous(wanted, found)
        known = ", ".join(f"{n.name} ({n.address}, {n.id[:8]})" for n in self.nodes) or "none"
        from mnv4suite.errors import UserError

        raise UserError(f"--node {wanted}: no lab node has that name, id, host name or address; lab nodes: {known}")


def raise_ambiguous(wanted: str, found: list[Node]) -> None:
    from mnv4suite.errors import UserError

    raise UserError(f"--node {wanted} matches {len(found)} nodes: "
                    + ", ".join(f"{n.name} (id {n.id[:8]})" for n in found) + "; pass the lab name or node id")
