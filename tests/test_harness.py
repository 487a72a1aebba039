"""The LoadGen harness on a fake session: figures, validity, seeds, payloads, one test per process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mnv4suite import loadgen_log

DRIVER = Path(__file__).with_name("loadgen_driver.py")


def drive(tmp_path: Path, scenario: str, mode: str, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, str(DRIVER), scenario, mode, str(tmp_path / "logs"), *extra],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_single_stream_performance_reports_loadgen_figures(tmp_path):
    report = drive(tmp_path, "SingleStream", "performance")
    lat = report["latency"]
    assert lat["queries"] >= 64
    assert 0.9 <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert lat["early_stopping_p90_ms"] >= lat["p90_ms"]
    assert lat["samples_per_s"] > 0
    assert report["validity"]["result"] == "VALID"
    assert report["validity"]["min_queries_met"] and report["validity"]["min_duration_met"]
    assert report["payloads"] == {}  # performance mode logs no accuracy payloads

    detail = loadgen_log.read_detail(tmp_path / "logs")
    # the seeds we set are the ones LoadGen used
    assert (detail["effective_qsl_rng_seed"], detail["effective_sample_index_rng_seed"],
            detail["effective_schedule_rng_seed"]) == (1, 2, 3)
    # raw logs are kept; the (large) trace is switched off
    assert {p.name for p in (tmp_path / "logs").iterdir()} >= {"mlperf_log_detail.txt", "mlperf_log_summary.txt"}
    assert (tmp_path / "logs" / "mlperf_log_trace.json").stat().st_size == 0


def test_offline_reports_throughput(tmp_path):
    report = drive(tmp_path, "Offline", "performance")
    assert report["latency"]["samples_per_s"] > 0
    assert report["validity"]["result"] in ("VALID", "INVALID")
    assert report["validity"]["min_duration_met"] is not None


def test_accuracy_mode_logs_one_payload_per_sample(tmp_path):
    report = drive(tmp_path, "SingleStream", "accuracy")
    assert report["latency"] is None
    assert report["payloads"] == {str(i): i % 10 for i in range(16)}


def test_both_modes_in_one_submission_run(tmp_path):
    report = drive(tmp_path, "SingleStream", "both")
    assert report["latency"]["queries"] >= 64
    assert len(report["payloads"]) == 16


def test_second_test_in_one_process_is_refused(tmp_path):
    report = drive(tmp_path, "SingleStream", "performance", "--twice")
    assert "one LoadGen test per process" in report["second"]
