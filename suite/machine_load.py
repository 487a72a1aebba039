"""Was the machine quiet while LoadGen timed it?

On a 2-core machine PyTorch's latency grows 10-40x when another process competes for a core, and
nothing in the figures says so. Around each timed test the worker takes two snapshots of /proc: the
CPU time of the whole machine (/proc/stat), the CPU time of its own process and waited-for children
(/proc/self/stat), steal time (a virtual machine's host taking cycles), the kernel's pressure-stall
counters (/proc/pressure/cpu and io: how long some task waited for a CPU or for I/O) and the load
average. What the machine spent beyond the worker's own use, averaged over the test, is the competition;
the stall counters catch what CPU time alone misses (tasks waiting rather than running: CPU time taken
by others stayed under 0.25 cores while the load average was 5 on 2 cores and PyTorch ran 1.4-2x slow).

A test is busy when other processes used more than OTHER_CPU_LIMIT cores on average, tasks waited for a
CPU or for I/O more than PRESSURE_LIMIT of the time, or the hypervisor stole more than STEAL_LIMIT of
the machine's time. Off Linux nothing is sampled and the result says the load is unknown; without
pressure counters (kernels before 4.20, or built without them) only CPU time and steal are judged.
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
#: Share of a test's time some task may wait for a CPU, or for I/O, before it is marked busy. The
#: suite's own threads make some: 0.6-2.7% in quiet SingleStream and Offline tests on 2 cores (CPU
#: backends, Conv-S to Hybrid-M), while one busy core beside a PyTorch loop made 50%.
PRESSURE_LIMIT = 0.10
METHOD = ("/proc/stat, /proc/self/stat and /proc/pressure before and after the timed test: the machine's busy "
          "CPU time minus the worker's own, time some task waited for a CPU or for I/O, and steal time")


@dataclass(frozen=True)
class Snapshot:
    wall_s: float
    busy_ticks: int  # user + nice + system + irq + softirq, all CPUs
    steal_ticks: int
    total_ticks: int
    own_ticks: int  # this process (all threads) and its waited-for children
    load_average: tuple[float, float, float]
    #: microseconds some task waited for a CPU / for I/O since boot (/proc/pressure); None without PSI
    cpu_stall_us: int | None = None
    io_stall_us: int | None = None


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
                    load_average=tuple(float(v) for v in load),
                    cpu_stall_us=_stall_us(proc / "pressure" / "cpu"), io_stall_us=_stall_us(proc / "pressure" / "io"))


def _stall_us(path: Path) -> int | None:
    """The "some" line's total of a pressure file ("some avg10=0.00 avg60=0.00 avg300=0.00 total=123")."""
    try:
        for line in path.read_text().splitlines():
            kind, *fields = line.split()
            if kind == "some":
                return int(dict(f.split("=", 1) for f in fields)["total"])
    except (OSError, ValueError, KeyError):
        pass
    return None


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
    pressure = {
        name: (after_us - before_us) / 1e6 / wall
        for name, before_us, after_us in (("cpu", before.cpu_stall_us, after.cpu_stall_us),
                                          ("io", before.io_stall_us, after.io_stall_us))
        if before_us is not None and after_us is not None
    }
    reasons = []
    if other > OTHER_CPU_LIMIT:
        reasons.append(f"other processes used {other:.2f} of {cores} cores on average (limit {OTHER_CPU_LIMIT})")
    for name, what in (("cpu", "a CPU"), ("io", "I/O")):
        if pressure.get(name, 0.0) > PRESSURE_LIMIT:
            reasons.append(f"tasks waited for {what} {pressure[name]:.0%} of the time (limit {PRESSURE_LIMIT:.0%})")
    if steal > STEAL_LIMIT:
        reasons.append(f"the hypervisor stole {steal:.0%} of the machine's time (limit {STEAL_LIMIT:.0%})")
    return {
        "quiet": not reasons,
        "reasons": reasons,
        "other_cpu_cores": round(other, 3),
        "steal_fraction": round(steal, 4),
        **{f"{name}_pressure": round(min(max(share, 0.0), 1.0), 4) for name, share in pressure.items()},
        "load_average_before": list(before.load_average),
        "load_average_after": list(after.load_average),
        "duration_s": round(wall, 3),
        "method": METHOD,
    }
