"""LoadGen compliance tests TEST01 / TEST04: planning, verification rules, and a run on this machine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnv4suite import compliance, loadgen_log, results
from mnv4suite.config import RunConfig
from mnv4suite.errors import UserError
from mnv4suite.worker import Job


def job(mode: str = "both", **kw) -> Job:
    return Job(task="imagenet", model="m", backend="b", mode=mode, out_dir="/runs/r/x", **kw)


def test_audit_jobs_follow_the_jobs_they_audit():
    jobs = [job(), job(mode="accuracy", scenario="Offline")]
    audits = compliance.audit_jobs(jobs, ["TEST01", "TEST04"])
    assert [(a.audit, a.mode, a.scenario, a.encode_in_performance) for a in audits] == [
        ("TEST01", "performance", "SingleStream", True), ("TEST04", "performance", "SingleStream", True)]
    assert audits[0].name == "imagenet__m__b__SingleStream__TEST01" and jobs[0].name == "imagenet__m__b__SingleStream"
    # TEST04 of a performance-only run times what that run timed: no post-processing
    [test04] = compliance.audit_jobs([job(mode="performance")], ["TEST04"])
    assert not test04.encode_in_performance
    with pytest.raises(UserError, match="TEST01 compares answers .* give --data"):
        compliance.audit_jobs([job(mode="performance")], ["TEST01"])


def test_unknown_test_names_are_refused():
    assert RunConfig(audit="TEST04,TEST01", data="/d").audit == ["TEST04", "TEST01"]
    with pytest.raises(UserError, match="unknown compliance test TEST05: choose from TEST01, TEST04"):
        RunConfig(audit=["TEST05"])


def test_audit_config_is_what_loadgen_reads():
    text = compliance.audit_config("TEST04")
    assert "*.*.mode = 2" in text and "*.*.performance_issue_same = 1" in text
    assert "*.*.accuracy_log_sampling_target" in compliance.audit_config("TEST01")


def write_log(path, entries):
    path.write_text(json.dumps([{"seq_id": i, "qsl_idx": q, "data": d} for i, (q, d) in enumerate(entries)]))
    return path


def payload(*top) -> str:
    return np.array(top, "<i4").tobytes().hex()


def test_test01_accuracy_check_compares_first_elements(tmp_path):
    reference = write_log(tmp_path / "acc.json", [(0, payload(3, 1)), (1, payload(7, 2)), (2, "")])
    same = write_log(tmp_path / "same.json", [(1, payload(7, 9)), (2, ""), (1, payload(7, 2))])
    verdict, lines = compliance.verify_accuracy(reference, same, "int32")
    assert verdict == "TEST PASS" and "num_perf_log_qsl_idx_match = 3" in lines
    assert "num_perf_log_payloads_identical = 2" in lines  # the first entry differs beyond element 0
    wrong = write_log(tmp_path / "wrong.json", [(0, payload(4, 1))])
    assert compliance.verify_accuracy(reference, wrong, "int32")[0] == "TEST FAIL"
    empty = write_log(tmp_path / "empty.json", [(2, payload(1))])  # no answer vs an answer
    assert compliance.verify_accuracy(reference, empty, "int32")[0] == "TEST FAIL"
    elsewhere = write_log(tmp_path / "none.json", [(9, payload(1))])  # nothing to compare is no pass
    assert compliance.verify_accuracy(reference, elsewhere, "int32")[0] == "TEST FAIL"


def detail(scenario: str, score: float, validity: str = "VALID") -> dict:
    return {"effective_scenario": scenario, compliance.SCORE_KEY[scenario]: score, "result_validity": validity}


@pytest.mark.parametrize("test, reference, got, verdict", [
    ("TEST01", detail("SingleStream", 1e6), detail("SingleStream", 1.09e6), "TEST PASS"),
    ("TEST01", detail("SingleStream", 1e6), detail("SingleStream", 1.2e6), "TEST FAIL: test score invalid"),
    ("TEST01", detail("SingleStream", 1e5), detail("SingleStream", 1.15e5), "TEST PASS"),  # < 200 us: 20%
    ("TEST01", detail("Offline", 100.0), detail("Offline", 85.0), "TEST FAIL: test score invalid"),
    ("TEST04", detail("SingleStream", 1e6), detail("SingleStream", 0.95e6), "TEST PASS"),  # 5% faster
    ("TEST04", detail("SingleStream", 1e6), detail("SingleStream", 0.5e6), "TEST FAIL: test score invalid"),
    ("TEST04", detail("Offline", 100.0), detail("Offline", 80.0), "TEST PASS"),  # slower is fine
    ("TEST04", detail("Offline", 100.0), detail("Offline", 115.0), "TEST FAIL: test score invalid"),
    ("TEST04", detail("Offline", 100.0, "INVALID"), detail("Offline", 100.0), "TEST FAIL: reference result is INVALID"),
])
def test_performance_checks_use_mlcommons_thresholds(test, reference, got, verdict):
    assert compliance.verify_performance(reference, got, test)[0] == verdict


def test_compliance_run_writes_verifiable_files_and_ignores_a_stray_audit_config(run_cli, tmp_path, image_folder):
    (tmp_path / "audit.config").write_text("*.*.mode = 2\n*.*.min_query_count = 1\n")  # a stray one, in the cwd
    run = run_cli("run", "--backend", "onnxruntime-cpu", "--model", "tiny-cnn", "--preset", "rapid",
                  "--data", str(image_folder), "--audit", "TEST01,TEST04", "--out", "out")
    assert run.returncode == 0, run.output
    assert "./audit.config is ignored" in run.stderr
    [run_dir] = (tmp_path / "out").iterdir()
    found = {r["loadgen"]["audit"]: r for r in map(results.read, run_dir.glob("*/result.json"))}
    assert set(found) == {None, "TEST01", "TEST04"}
    audited = found[None]
    assert audited["loadgen"]["overridden_by_audit_config"] is False  # the stray file changed nothing
    assert audited["loadgen"]["timed_postprocessing"] is True and audited["loadgen"]["postprocess_ms_per_sample"] > 0
    # the 1.1 fields MLPerf Mobile's extended result has
    assert audited["schema_version"] == results.SCHEMA_VERSION == "1.4" and audited["backend"]["vendor"] == "Microsoft"
    assert audited["loadgen"]["test"]["duration_s"] > 0 and audited["loadgen"]["test"]["started"] > audited["created"][:10]
    assert audited["latency"]["qps_with_loadgen_overhead"] > 0 and audited["batch"] == 1
    assert set(audited["system"]["device"]) == {"manufacturer", "model", "soc"}
    assert audited["suite"]["git_dirty"] in (True, False, None)
    assert found["TEST01"]["loadgen"]["overridden_by_audit_config"] is True
    assert "audit.config" in found["TEST01"]["loadgen"]["logs"]
    [test01, test04] = json.loads((run_dir / compliance.SUMMARY_FILE).read_text())
    assert (test01["test"], test01["accuracy"], test01["job"]) == (
        "TEST01", "TEST PASS", "imagenet__tiny-cnn__onnxruntime-cpu__SingleStream")
    assert test04["test"] == "TEST04" and test04["accuracy"] is None
    folder = run_dir / "compliance" / test01["job"] / "TEST01"
    assert (folder / "verify_accuracy.txt").read_text().strip().endswith("TEST PASS")
    assert (folder / "verify_performance.txt").read_text().strip().splitlines()[-1] == test01["performance"]
    # the audited run's logs where MLCommons' run_verification.py --results_dir looks
    assert (folder / "results" / "accuracy" / loadgen_log.ACCURACY).is_file()
    assert (folder / "results" / "performance" / "run_1" / loadgen_log.DETAIL).is_file()
    assert "compliance (verified as MLCommons' scripts verify" in run.stdout
