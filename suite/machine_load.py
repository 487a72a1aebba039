"""Was the machine quiet while LoadGen timed it?

On a 2-core machine PyTorch's latency grows 10-40x when another process competes for a core, and
nothing in the figures says so. Around each timed test the worker takes two snapshots of /proc: the
CPU time of the whole machine (/proc/stat), the CPU time of its own process and waited-for children
(/proc/self/stat), steal time (a virtual machine's host taking cycles), and the load average. What the
machine spent beyond the worker's own use, averaged over the test, is the competition.

A test is busy when other processes used more than OTHER_CPU_LIMIT cores on average, or the
hypervisor stole more than STEAL_LIMIT of the machine's time. Off Linux nothing is sampled and the
result says the load is unknown.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Cores' worth of CPU that other processes may use during a test before it is marked busy.
OTHER_CPU_LIMIT = 0.25
#: Share of the machine's time a hypervisor may steal during a test before it is marked busy.
STEAL_LIMIT = 0.05
METHOD = ("/proc/stat and /proc/self/stat before and after the timed test: the machine's busy CPU time "
          "minus the worker's own, and steal time")


@dataclass(frozen=True)
class Snapshot:
    wall_s: float
    busy_ticks: int  # user + nice + system + irq + softirq, all CPUs
    steal_ticks: int
    total_ticks: int
    own_ticks: int  # this process (all threads) and its waited-for children
    load_average: tuple[float, float, float]


def snapshot(proc: Path = Path("/proc")) -> Snapshot | None:
    try:
        fields = (proc / "stat").read_text().splitlines()[0].split()[1:]
        own = (proc / "self" / "stat").read_text().rsplit(")", 1)[1].split()
        load = (proc / "loadavg").read_text().split()[:3]
    except (OSError, IndexError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    # /proc/PID/stat after the command name: state is field 3, utime..cstime are fields 14-17
    own_ticks = sum(int(v) for v in own[11:15])
    return Snapshot(wall_s=time.monotonic(), busy_ticks=user + nice + system + irq + softirq, steal_ticks=steal,
                    total_ticks=user + nice + system + idle + iowait + irq + softirq + steal, own_ticks=own_ticks,
                    load_average=tuple(float(v) for v in load))


def compare(before: Snapshot | None, after: Snapshot | None, cores: int | None = None) -> dict[str, Any]:
    """The machine's load during the test, as the result records it."""
    if before is None or after is None:
        return {"quiet": None, "reasons": ["the machine's load cannot be read here (no /proc)"], "method": METHOD}
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    wall = max(after.wall_s - before.wall_s, 1e-9)
    cores = cores or os.cpu_count() or 1
    other = max(0, (after.busy_ticks - before.busy_ticks) - (after.own_ticks - before.own_ticks)) / ticks_per_s / wall
    total = max(1, after.total_ticks - before.total_ticks)
    steal = (after.steal_ticks - before.steal_ticks) / total
    reasons = []
    if other > OTHER_CPU_LIMIT:
        reasons.append(f"other processes used {other:.2f} of {cores} cores on average (limit {OTHER_CPU_LIMIT})")
    if steal > STEAL_LIMIT:
        reasons.append(f"the hypervisor stole {steal:.0%} of the machine's time (limit {STEAL_LIMIT:.0%})")
    return {
        "quiet": not reasons,
        "reasons": reasons,
        "other_cpu_cores": round(other, 3),
        "steal_fraction": round(steal, 4),
        "load_average_before": list(before.load_average),
        "load_average_after": list(after.load_average),
        "duration_s": round(wall, 3),
        "method": METHOD,
    }
