"""LoadGen's compliance tests TEST01 and TEST04, run beside the job they audit and verified as MLCommons
verifies them (`compliance/TEST01/run_verification.py`, `compliance/TEST04/verify_performance.py`).

* TEST01: a performance run in which LoadGen logs the answers to a random sample of queries
  (`accuracy_log_sampling_target`). Each logged answer must equal the accuracy run's answer for the
  same sample (first payload element, read with the task's payload type), and the run's score must be
  within 10% of the audited run's (20% for SingleStream latencies under 200 us).
* TEST04: a performance run that issues one sample again and again (`performance_issue_same`). It must
  not be faster than the audited run beyond the same threshold: a SUT that caches answers is.

LoadGen reads `audit.config` from its working directory. Every test runs from its own log folder, so a
compliance job writes its audit.config there and a stray one in the user's folder overrides nothing;
LoadGen's warning that it found one is still looked for in every log (`overridden_by_audit_config`).

The verification writes what MLCommons' tools write (`verify_accuracy.txt`, `verify_performance.txt`
ending in "TEST PASS" or "TEST FAIL") under `compliance/<job>/<TEST>/` in the run folder, with the audited
run's logs laid out as MLCommons' `--results_dir` expects (`accuracy/`, `performance/run_1/`), so their
scripts can be run on the same files.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnv4suite import loadgen_log
from mnv4suite.errors import UserError
from mnv4suite.fileio import atomic_write_json
from mnv4suite.worker import Job

AUDIT_FILE = "audit.config"
TESTS = ("TEST01", "TEST04")
COMPLIANCE_DIR = "compliance"
SUMMARY_FILE = "compliance.json"

_CONFIGS = {
    "TEST01": ("*.*.mode = 2", "*.*.accuracy_log_rng_seed = 720381539243781796",
               "*.*.accuracy_log_sampling_target = 128"),
    "TEST04": ("*.*.mode = 2", "*.*.performance_issue_unique = 0", "*.*.performance_issue_same = 1",
               "*.*.performance_issue_same_index = 3"),
}
#: The figure each scenario is scored by, as MLCommons' TEST01 verify_performance.py reads it.
SCORE_KEY = {"SingleStream": "early_stopping_latency_ss", "Offline": "result_samples_per_second"}


def audit_config(test: str) -> str:
    """The audit.config LoadGen reads for `test` (mode 2: performance only)."""
    return f"# mnv4suite: LoadGen compliance test {test}\n" + "\n".join(_CONFIGS[test]) + "\n"


def check_tests(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in TESTS]
    if unknown:
        raise UserError(f"unknown compliance test {', '.join(unknown)}: choose from {', '.join(TESTS)}")
    return list(dict.fromkeys(names))


def audit_jobs(jobs: Sequence[Job], tests: Sequence[str]) -> list[Job]:
    """One performance-only job per timed job and test, run after the job it audits."""
    audits = []
    for job in jobs:
        if job.mode == "accuracy" or job.audit:
            continue
        for test in tests:
            if test == "TEST01" and job.mode != "both":
                raise UserError("--audit TEST01 compares answers logged in a performance run with the accuracy "
                                "run's: give --data (the run then measures accuracy and performance)")
            # TEST01 needs real answers; otherwise time exactly what the audited run timed
            audits.append(replace(job, audit=test, mode="performance", out_dir=".",
                                  encode_in_performance=test == "TEST01" or job.mode == "both"))
    return audits


# --------------------------------------------------------------------------- verification


@dataclass
class Verdict:
    job: str
    test: str
    accuracy: str | None  # "TEST PASS" / "TEST FAIL ..." (TEST01 only)
    performance: str
    folder: Path

    @property
    def passed(self) -> bool:
        return self.performance == "TEST PASS" and self.accuracy in (None, "TEST PASS")

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "test": self.test, "accuracy": self.accuracy, "performance": self.performance,
                "passed": self.passed, "folder": str(self.folder)}


def _score(detail: dict[str, Any]) -> tuple[str, float | None, str | None]:
    """(scenario, score, why it cannot be used) from a detail log, as MLCommons reads it."""
    scenario = detail.get("effective_scenario")
    value = detail.get(SCORE_KEY.get(scenario, ""))
    if detail.get("result_validity") != "VALID":
        return scenario, None, f"result is {detail.get('result_validity', 'missing')}"
    if value is None:
        return scenario, None, f"no {SCORE_KEY.get(scenario, 'score')} in the log"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e18:
        return scenario, None, f"{SCORE_KEY.get(scenario, 'score')} is {str(value)[:40]!r}, not a positive number"
    return scenario, float(value), None


def _threshold(scenario: str, reference: float) -> float:
    return 0.20 if scenario == "SingleStream" and reference <= 200_000 else 0.10


def verify_accuracy(reference_log: Path, test_log: Path, dtype: str) -> tuple[str, list[str]]:
    """TEST01: every sampled answer of the performance run equals the accuracy run's (first element)."""
    from mnv4suite.safeparse import load_json  # the logs may come from a submission

    reference: dict[int, str] = {}
    for entry in load_json(reference_log.read_bytes(), str(reference_log), max_depth=None):
        reference.setdefault(int(entry["qsl_idx"]), entry["data"])
    matched = mismatched = missing = identical = 0
    test_entries = load_json(test_log.read_bytes(), str(test_log), max_depth=None) if test_log.stat().st_size else []
    for entry in test_entries:
        idx = int(entry["qsl_idx"])
        if idx not in reference:
            missing += 1
            continue
        matched += 1
        got = np.frombuffer(bytes.fromhex(entry["data"]), dtype)
        want = np.frombuffer(bytes.fromhex(reference[idx]), dtype)
        if (got.size == 0 or want.size == 0) and got.size != want.size or got.size and want.size and got[0] != want[0]:
            mismatched += 1
        identical += int(entry["data"] == reference[idx])
    verdict = "TEST PASS" if mismatched == 0 and matched > 0 else "TEST FAIL"
    lines = [f"num_acc_log_entries = {len(reference)}", f"num_perf_log_entries = {len(test_entries)}",
             f"num_perf_log_qsl_idx_match = {matched}", f"num_perf_log_data_mismatch = {mismatched}",
             f"num_missing_qsl_idxs = {missing}", f"num_perf_log_payloads_identical = {identical}", verdict]
    return verdict, lines


def verify_performance(reference_detail: dict[str, Any], test_detail: dict[str, Any], test: str) -> tuple[str, list[str]]:
    """TEST01: within the threshold either way; TEST04: not faster than the threshold allows."""
    ref_scenario, ref, ref_problem = _score(reference_detail)
    test_scenario, got, test_problem = _score(test_detail)
    if ref_problem or test_problem:
        verdict = f"TEST FAIL: {'reference ' + ref_problem if ref_problem else 'test ' + test_problem}"
        return verdict, [verdict]
    if ref_scenario != test_scenario:
        return "TEST FAIL: test and reference scenarios differ", ["TEST FAIL: test and reference scenarios differ"]
    threshold = _threshold(ref_scenario, ref)
    if ref_scenario == "SingleStream":  # a latency: as a rate, higher is faster
        ref_rate, test_rate = 1e9 / ref, 1e9 / got
    else:
        ref_rate, test_rate = ref, got
    if test == "TEST01":
        ok = ref * (1 - threshold) <= got <= ref * (1 + threshold)
    else:
        ok = test_rate < ref_rate * (1 + threshold)
    verdict = "TEST PASS" if ok else "TEST FAIL: test score invalid"
    return verdict, [f"scenario = {ref_scenario}", f"reference score = {ref}", f"test score = {got}",
                     f"threshold = {threshold:.2f}", verdict]


def verify(reference_dir: Path, test_dir: Path, test: str, dtype: str, out: Path, job_name: str) -> Verdict:
    """Verify one compliance run against the run it audits; write MLCommons' files under `out`."""
    ref_logs, test_logs = reference_dir / "loadgen", test_dir / "loadgen"
    out.mkdir(parents=True, exist_ok=True)
    # the audited run's logs where MLCommons' run_verification.py --results_dir looks for them
    for sub, name in (("accuracy", loadgen_log.ACCURACY), ("performance/run_1", loadgen_log.DETAIL),
                      ("performance/run_1", loadgen_log.SUMMARY)):
        if (ref_logs / name).is_file():
            (out / "results" / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy2(ref_logs / name, out / "results" / sub / name)
    accuracy = None
    if test == "TEST01":
        accuracy, lines = verify_accuracy(ref_logs / loadgen_log.ACCURACY, test_logs / loadgen_log.ACCURACY, dtype)
        (out / "verify_accuracy.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    performance, lines = verify_performance(loadgen_log.read_detail(ref_logs), loadgen_log.read_detail(test_logs), test)
    (out / "verify_performance.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Verdict(job_name, test, accuracy, performance, out)


def verify_run(outcomes: Sequence[Any], run_dir: Path, payload_dtype) -> list[Verdict]:
    """Every compliance job of a finished run, verified against its audited job (both must have results)."""
    by_name = {o.job.name: o for o in outcomes if o.ok}
    verdicts = []
    for outcome in outcomes:
        job = outcome.job
        if not job.audit or not outcome.ok:
            continue
        audited = by_name.get(replace(job, audit=None).name)
        if audited is None:
            continue
        name = audited.job.name
        verdicts.append(verify(audited.job_dir, outcome.job_dir, job.audit, payload_dtype(job.task),
                               run_dir / COMPLIANCE_DIR / name / job.audit, name))
    if verdicts:
        atomic_write_json(run_dir / SUMMARY_FILE, [v.as_dict() for v in verdicts])
    return verdicts


def render(verdicts: Sequence[Verdict]) -> str:
    from tabulate import tabulate

    rows = [[v.job, v.test, v.accuracy or "-", v.performance, "PASS" if v.passed else "FAIL"] for v in verdicts]
    return tabulate(rows, headers=["audited job", "test", "accuracy check", "performance check", "verdict"],
                    tablefmt="simple", disable_numparse=True)
