"""Progress of the long steps before a timed test: model conversion and int8 calibration.

The same library as the harness's query bar (tqdm): on a terminal, a live line per step with its
elapsed time and, where the step counts something (calibration samples), n of N; on a terminal or
not, one closing line per step with the seconds it took. A converter that blocks for minutes still
shows the clock moving: the line is redrawn every second.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import IO, Iterator


class Steps:
    """The steps of one piece of work (``what``, e.g. "int8 TFLite of mnv4-conv-m")."""

    def __init__(self, what: str, stream: IO[str] | None = None) -> None:
        self.what = what
        self.stream = stream
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str, total: int | None = None) -> Iterator["Step"]:
        from tqdm import tqdm

        stream = self.stream or sys.stderr
        counts = "{n_fmt}/{total_fmt} " if total else ""
        bar = tqdm(total=total, desc=f"  {self.what}: {name}", file=stream, leave=False, disable=None,
                   bar_format="{desc} " + counts + "[{elapsed}]")
        stop = threading.Event()
        ticker = threading.Thread(target=_tick, args=(bar, stop), daemon=True)
        ticker.start()
        start = time.perf_counter()
        running = Step(bar)
        try:
            yield running
        finally:
            stop.set()
            ticker.join()
            bar.close()
            self.seconds[name] = round(time.perf_counter() - start, 2)
            done = f" ({running.done} of {total})" if total else ""
            print(f"  {self.what}: {name}{done} took {self.seconds[name]:.1f} s", file=stream, flush=True)


class Step:
    """What a running step may report: one more item done."""

    def __init__(self, bar) -> None:
        self._bar = bar
        self.done = 0  # counted here: a bar off a terminal is disabled and counts nothing

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._bar.update(n)


def _tick(bar, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        bar.refresh()
