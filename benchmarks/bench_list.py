"""Wall time of `mnv4suite list` (discovery must import no framework and stay well under a second).

    python benchmarks/bench_list.py [--runs 10]

Prints the median and best of N cold process runs, next to a bare `python -c pass` for scale.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    rows = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "mnv4suite list": [sys.executable, "-m", "mnv4suite", "list"],
        "mnv4suite list backends": [sys.executable, "-m", "mnv4suite", "list", "backends"],
    }
    print(f"{'command':<26} {'median s':>9} {'best s':>8}   ({args.runs} runs each)")
    for name, cmd in rows.items():
        t = wall(cmd, args.runs)
        print(f"{name:<26} {statistics.median(t):>9.3f} {min(t):>8.3f}")


if __name__ == "__main__":
    main()
