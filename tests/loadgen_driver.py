"""Runs one LoadGen test on a fake session in a fresh process (LoadGen allows one per process).

Usage: python loadgen_driver.py SCENARIO MODE LOG_DIR [--twice]
Prints the harness report as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from mnv4suite.api import Dataset, Session
from mnv4suite.harness import HarnessSettings, run_test
from mnv4suite.run_rules import Preset, Seeds

SAMPLES = 16
SHORT = Preset("test", min_query_count=64, min_duration_ms=300, summary="tests only")


class FakeSession(Session):
    """Sleeps ~1 ms and returns logits whose argmax is the sample's value."""

    accelerator = "fake"

    def run(self, inputs):
        time.sleep(0.001)
        logits = np.zeros((1, 10), np.float32)
        logits[0, int(inputs.flat[0]) % 10] = 1.0
        return logits


class CountingDataset(Dataset):
    def __init__(self):
        self.skipped = []
        self.loaded: set[int] = set()

    def __len__(self):
        return SAMPLES

    def load(self, indices):
        self.loaded.update(indices)

    def unload(self, indices):
        self.loaded.difference_update(indices)

    def get(self, index):
        assert index in self.loaded, f"sample {index} used before LoadGen loaded it"
        return np.full((1, 3, 4, 4), index, np.float32)


def encode(outputs, index):
    return np.array([int(np.argmax(outputs))], "<i4").tobytes()


def main() -> None:
    scenario, mode, log_dir = sys.argv[1:4]
    settings = HarnessSettings(scenario=scenario, mode=mode, preset=SHORT, seeds=Seeds(1, 2, 3),
                               log_dir=Path(log_dir), warmup_runs=3, progress=False)
    report = run_test(FakeSession(), CountingDataset(), encode, settings)
    out = {
        "latency": report.latency,
        "validity": report.validity,
        "payloads": {str(k): int(np.frombuffer(v, "<i4")[0]) for k, v in report.payloads.items()},
        "loadgen_version": report.loadgen_version,
        "errors": report.errors,
    }
    if "--twice" in sys.argv:
        try:
            run_test(FakeSession(), CountingDataset(), encode, settings)
            out["second"] = "ran"
        except RuntimeError as exc:
            out["second"] = str(exc)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
