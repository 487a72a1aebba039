"""`mnv4suite validate` on a real submission made by `mnv4suite run` with the test CNN: accepted when intact,
rejected with the reason for each way a submission can be wrong or forged."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnv4suite.reports import submission as subs

TESTS = Path(__file__).resolve().parent.parent
PLUGIN_DIR = TESTS / "plugins"
WNIDS = [f"n{i:08d}" for i in range(1000)]

SUBMISSION_YAML = """\
format: mnv4suite-submission-1
submitter: Test Lab
system:
  name: {name}
  soc: Test SoC 9000
  cpu: 2 cores
  os: Linux
  frameworks: {{torch: "2.13", onnxruntime: "1.32"}}
plugin:
  distribution: mnv4suite
  version: "0.1.0"
notes: "built-in backends only"
"""

# The reference (pytorch-cpu, fp32, accuracy only) and a measured run (onnxruntime-cpu, fp32, both modes).
RUNS = (
    ("pytorch-cpu", "accuracy"),
    ("onnxruntime-cpu", "both"),
)


def build_submission(base: Path) -> Path:
    """A real submission, made once per test session and copied by each test.

    The weights make the CNN answer class 0 for every image, so top-1 is 33.3% (one class in three):
    a non-zero accuracy that the 98% rule can be tested against.
    """
    root = base / "submission-kit"
    done = root / "submission"
    if (root / "done").exists():
        return done
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    sys.path.insert(0, str(TESTS))
    sys.path.insert(0, str(PLUGIN_DIR))
    import tinynet
    import torch
    from support import make_image_folder

    module = tinynet.build("tiny-cnn")
    with torch.no_grad():
        module[-1].bias[0] = 100.0
    torch.save(module.state_dict(), root / "weights.pt")
    data = make_image_folder(root / "imagenet", WNIDS[:3], per_class=4)
    (data / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {i}\n" for i, w in enumerate(WNIDS)))

    env = dict(os.environ, MNV4SUITE_PLUGINS="tinynet", MNV4SUITE_CACHE=str(root / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(PLUGIN_DIR), os.environ.get("PYTHONPATH")])))
    for backend, mode in RUNS:
        proc = subprocess.run(
            [sys.executable, "-m", "mnv4suite", "run", "--backend", backend, "--model", "tiny-cnn", "--mode", mode,
             "--preset", "rapid", "--data", str(data), "--weights", str(root / "weights.pt"), "--out", str(done)],
            cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # The kit is made on a shared test machine, which may be busy while it runs: the rules under test here
    # are the others, so its runs are recorded as quiet (the quiet rule has a test of its own).
    for path in done.glob("*/*/result.json"):
        result = json.loads(path.read_text())
        if result.get("machine_load"):
            result["machine_load"].update(quiet=True, reasons=[])
            path.write_text(json.dumps(result, indent=2))
    (done / subs.SUBMISSION_FILE).write_text(SUBMISSION_YAML.format(name="Test box"))
    (root / "done").write_text("")
    return done


@pytest.fixture(scope="session")
def built_submission(tmp_path_factory) -> Path:
    return build_submission(tmp_path_factory.getbasetemp())


@pytest.fixture
def submission(built_submission, tmp_path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(built_submission, tmp_path / "submission", symlinks=True))


DEV = subs.RULES["development"]


def result_path(root: Path, backend: str) -> Path:
    [path] = root.glob(f"*/imagenet__tiny-cnn__{backend}__SingleStream/result.json")
    return path


def edit_result(root: Path, backend: str, change) -> Path:
    path = result_path(root, backend)
    result = json.loads(path.read_text())
    change(result)
    path.write_text(json.dumps(result, indent=2))
    return path


def reasons(verdict: subs.SubmissionVerdict) -> str:
    return "\n".join(verdict.all_reasons())


def validate_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    subs.add_validate_arguments(parser)
    return subs.cmd_validate(parser.parse_args(list(argv)))


# --------------------------------------------------------------------------- accepted


def test_an_intact_submission_is_accepted_under_development_rules(submission, capsys):
    verdict = subs.validate_submission(submission, DEV)
    assert verdict.accepted, reasons(verdict)
    assert len(verdict.results) == 2 and all(r.accepted for r in verdict.results)
    assert verdict.meta["system"]["soc"] == "Test SoC 9000"
    reference = result_path(submission, "pytorch-cpu")
    assert json.loads(reference.read_text())["accuracy"]["metrics"]["top1"] == pytest.approx(100 / 3)

    assert validate_cli(str(submission), "--rules", "development") == 0
    out = capsys.readouterr().out
    assert "ACCEPTED" in out and "NOT a submission verdict" in out and "1 of 1 submission(s) accepted" in out


def test_the_rapid_preset_is_rejected_under_submission_rules(submission, tmp_path, capsys):
    verdict = subs.validate_submission(submission)  # default: the submission rules
    assert not verdict.accepted
    [measured] = [r for r in verdict.results if r.result["mode"] == "both"]
    assert measured.reasons == [measured.reasons[0]] and measured.reasons[0].startswith("[preset] preset rapid")
    assert "1024 queries and 60 s" in measured.reasons[0]
    # the accuracy-only reference has no performance run, so no preset to judge
    [reference] = [r for r in verdict.results if r.result["mode"] == "accuracy"]
    assert reference.accepted

    assert validate_cli(str(submission), "--json", str(tmp_path / "verdict.json")) == 1
    assert "REJECTED" in capsys.readouterr().out
    machine = json.loads((tmp_path / "verdict.json").read_text())
    assert machine["format"] == subs.VERDICT_FORMAT and machine["accepted"] is False
    [sub] = machine["submissions"]
    assert sub["rules"]["name"] == "submission" and sub["rules"]["min_query_count"] == 1024
    assert any("[preset]" in why for r in sub["results"] for why in r["reasons"])


# --------------------------------------------------------------------------- forged or broken results


def test_an_edited_latency_is_caught_against_the_detail_log(submission):
    def faster(result):
        result["latency"]["p90_ms"] = round(result["latency"]["p90_ms"] / 2, 6)

    edit_result(submission, "onnxruntime-cpu", faster)
    verdict = subs.validate_submission(submission, DEV)
    assert not verdict.accepted
    text = reasons(verdict)
    assert "[figures] latency.p90_ms is" in text and "mlperf_log_detail.txt" in text
    assert "onnxruntime-cpu" in text and "pytorch-cpu" not in text  # the intact result stays accepted


def test_a_missing_log_is_rejected(submission):
    (result_path(submission, "onnxruntime-cpu").parent / "loadgen" / "mlperf_log_detail.txt").unlink()
    verdict = subs.validate_submission(submission, DEV)
    assert not verdict.accepted
    assert "[logs] loadgen/mlperf_log_detail.txt is missing" in reasons(verdict).replace(
        str(result_path(submission, "onnxruntime-cpu").parent.relative_to(submission)) + "/", "")


def test_an_edited_log_is_rejected(submission):
    detail = result_path(submission, "onnxruntime-cpu").parent / "loadgen" / "mlperf_log_detail.txt"
    detail.write_text(detail.read_text().replace("result_90.00_percentile_latency_ns", "result_90.00_percentile_latency_ns "))
    verdict = subs.validate_submission(submission, DEV)
    assert "mlperf_log_detail.txt was modified after the run" in reasons(verdict)
    assert not verdict.accepted


def test_an_unlisted_file_in_the_log_folder_is_rejected(submission):
    (result_path(submission, "pytorch-cpu").parent / "loadgen" / "extra.txt").write_text("hello")
    verdict = subs.validate_submission(submission, DEV)
    assert "not listed in result.json" in reasons(verdict) and "extra.txt" in reasons(verdict)


def test_a_partial_result_is_rejected(submission):
    def partial(result):
        dataset = result["task"]["dataset"]
        result["status"] = "partial"
        dataset.update(skipped=1, requested=dataset["samples"] + 1, skipped_files=[["broken.JPEG", "truncated"]])

    edit_result(submission, "onnxruntime-cpu", partial)
    verdict = subs.validate_submission(submission, DEV)
    assert "[status] status is partial: 1 sample(s) were skipped" in reasons(verdict)
    assert not verdict.accepted


def test_unofficial_seeds_are_rejected(submission):
    def reseed(result):
        result["seeds"]["schedule"] = 1

    edit_result(submission, "onnxruntime-cpu", reseed)
    text = reasons(subs.validate_submission(submission, DEV))
    assert "[seeds] LoadGen seeds differ from the official ones: schedule=1 (official 14962580496156340209)" in text
    assert "[figures] seeds.schedule is 1 in result.json" in text  # and the log says otherwise


def test_accuracy_below_98_percent_of_the_fp32_reference_is_rejected(submission):
    def worse(result):
        result["accuracy"]["metrics"]["top1"] = 32.0  # reference 33.33: the target is 32.67

    edit_result(submission, "onnxruntime-cpu", worse)
    verdict = subs.validate_submission(submission, DEV)
    text = reasons(verdict)
    assert "[accuracy] top1 32.000 is below 98% of the fp32 reference 33.333 (32.667, the classification target" in text
    [bad] = [r for r in verdict.results if not r.accepted]
    assert bad.result["backend"]["id"] == "onnxruntime-cpu"


def test_accuracy_just_at_98_percent_is_accepted(submission):
    def at_target(result):
        result["accuracy"]["metrics"]["top1"] = 0.98 * 100 / 3 + 1e-9

    edit_result(submission, "onnxruntime-cpu", at_target)
    assert subs.validate_submission(submission, DEV).accepted


def test_without_an_fp32_reference_accuracy_cannot_be_judged(submission):
    shutil.rmtree(result_path(submission, "pytorch-cpu").parent)

    def other_weights(result):
        result["accuracy"]["metrics"]["top1"] = 10.0
        result["model"]["precision"] = "int8"

    edit_result(submission, "onnxruntime-cpu", other_weights)
    text = reasons(subs.validate_submission(submission, DEV))
    assert "[accuracy] no fp32 reference for tiny-cnn" in text


def test_a_result_that_breaks_the_schema_is_rejected(submission):
    edit_result(submission, "pytorch-cpu", lambda r: r.update(injected="x"))
    text = reasons(subs.validate_submission(submission, DEV))
    assert "[schema] (root): Additional properties are not allowed ('injected' was unexpected)" in text


def test_a_log_dir_outside_the_job_folder_is_refused(submission):
    edit_result(submission, "pytorch-cpu", lambda r: r["loadgen"].update(log_dir="../../.."))
    text = reasons(subs.validate_submission(submission, DEV))
    assert "loadgen.log_dir '../../..' points outside its folder: refused" in text


# --------------------------------------------------------------------------- unsafe files


def test_a_symlink_pointing_outside_is_refused_and_not_read(submission, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the validator")
    log_dir = result_path(submission, "onnxruntime-cpu").parent / "loadgen"
    (log_dir / "mlperf_log_summary.txt").unlink()
    (log_dir / "mlperf_log_summary.txt").symlink_to(secret)
    verdict = subs.validate_submission(submission, DEV)
    text = reasons(verdict)
    assert not verdict.accepted
    assert f"mlperf_log_summary.txt is a symlink to '{secret}' (OUTSIDE the submission): symlinks are refused" in text
    assert "goes through a symlink: refused" in text  # the log was not read through it
    assert "not for the validator" not in json.dumps(subs.verdict_json([verdict]))


def test_a_symlinked_run_folder_is_refused(submission):
    job = result_path(submission, "pytorch-cpu").parent
    shutil.move(job, submission.parent / "elsewhere")
    job.symlink_to(submission.parent / "elsewhere")
    verdict = subs.validate_submission(submission, DEV)
    assert "OUTSIDE the submission" in reasons(verdict) and not verdict.accepted
    assert len(verdict.results) == 1  # nothing found behind the link


def test_a_fifo_is_refused_without_blocking(submission):
    os.mkfifo(result_path(submission, "pytorch-cpu").parent / "loadgen" / "mlperf_log_trace.json.fifo")
    verdict = subs.validate_submission(submission, DEV)
    assert "is not a regular file or folder: refused" in reasons(verdict)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("format: mnv4suite-submission-1\nsubmitter: [unclosed\n", "is not valid UTF-8 YAML"),
        ("format: mnv4suite-submission-1\nsubmitter: Lab\nplugin: {distribution: x, version: '1'}\n",
         "(top level): 'system' is a required property"),
        (SUBMISSION_YAML.format(name="Box").replace("  soc: Test SoC 9000\n", ""),
         "system: 'soc' is a required property"),
        (SUBMISSION_YAML.format(name="Box").replace("mnv4suite-submission-1", "2"),
         "format: 'mnv4suite-submission-1' was expected"),
        ("a: &x [1, 2]\nb: *x\n", "uses YAML aliases"),
        ("!!python/object/apply:os.system ['echo owned']\n", "is not valid UTF-8 YAML"),
        ("- just\n- a list\n", "(top level): ['just', 'a list'] is not of type 'object'"),
        ("x" * (subs.MAX_YAML_BYTES + 1), "larger than the 65536 bytes allowed"),
    ],
    ids=["syntax", "no-system", "no-soc", "format", "alias", "python-tag", "list", "too-big"],
)
def test_a_malformed_submission_yaml_is_rejected(submission, content, expected):
    (submission / subs.SUBMISSION_FILE).write_text(content)
    verdict = subs.validate_submission(submission, DEV)
    assert not verdict.accepted and verdict.meta is None
    assert expected in "\n".join(verdict.reasons)


def test_a_missing_submission_yaml_is_rejected(submission):
    (submission / subs.SUBMISSION_FILE).unlink()
    verdict = subs.validate_submission(submission, DEV)
    assert "submission.yaml is missing (every submission needs one" in "\n".join(verdict.reasons)


def test_a_backend_from_an_undeclared_plugin_is_rejected(submission):
    edit_result(submission, "onnxruntime-cpu", lambda r: r["backend"].update(provider="shady-plugin 6.6.6"))
    text = reasons(subs.validate_submission(submission, DEV))
    assert "[plugin] backend onnxruntime-cpu comes from 'shady-plugin 6.6.6'" in text


def test_results_elsewhere_than_run_and_job_folders_are_rejected(submission):
    stray = submission / "result.json"
    shutil.copy(result_path(submission, "pytorch-cpu"), stray)
    verdict = subs.validate_submission(submission, DEV)
    assert "[format] result.json: results belong at <run_id>/<job>/result.json" in verdict.reasons


def test_validate_names_a_folder_that_does_not_exist(tmp_path):
    from mnv4suite.errors import UserError

    with pytest.raises(UserError, match="does not exist"):
        validate_cli(str(tmp_path / "nope"))


def test_a_busy_machine_is_rejected_under_the_submission_rules(submission):
    def busy(result):
        result["machine_load"] = {"quiet": False, "reasons": ["other processes used 1.02 of 2 cores on average"],
                                  "other_cpu_cores": 1.02, "steal_fraction": 0.0, "method": "test"}

    edit_result(submission, "onnxruntime-cpu", busy)
    text = reasons(subs.validate_submission(submission, subs.get_rules("submission")))
    assert "[quiet] the machine was busy while LoadGen timed it (other processes used 1.02 of 2 cores" in text
    assert "[quiet]" not in reasons(subs.validate_submission(submission, DEV))  # development rules allow it


def test_a_run_overridden_by_an_audit_config_is_rejected_unless_it_is_a_compliance_run(submission):
    """The log says LoadGen took its settings from an audit.config: the result's settings are not what ran."""
    import hashlib

    detail = result_path(submission, "onnxruntime-cpu").parent / "loadgen" / "mlperf_log_detail.txt"
    warning = {"key": "warning_generic_message", "value": "Found Audit Config file (audit.config). Overriding "
               "TestSettings from audit.config file.", "metadata": {"is_error": False, "is_warning": True}}
    detail.write_text(":::MLLOG " + json.dumps(warning) + "\n" + detail.read_text())
    digest = hashlib.sha256(detail.read_bytes()).hexdigest()

    def rehash(result):
        result["loadgen"]["logs"]["mlperf_log_detail.txt"] = digest

    edit_result(submission, "onnxruntime-cpu", rehash)
    verdict = subs.validate_submission(submission, DEV)
    assert "[rules] mlperf_log_detail.txt says an audit.config overrode LoadGen's settings" in reasons(verdict)
    assert not verdict.accepted

    edit_result(submission, "onnxruntime-cpu", lambda result: result["loadgen"].update(audit="TEST04"))
    assert "audit.config" not in reasons(subs.validate_submission(submission, DEV))


def test_timed_results_need_their_compliance_runs(submission):
    rules = subs.Rules("test", "rapid", "compliance required", quiet_machine=False, compliance_tests=("TEST01", "TEST04"))
    assert subs.RULES["submission"].compliance_tests == ("TEST01", "TEST04") and not DEV.compliance_tests
    verdict = subs.validate_submission(submission, rules)
    [timed] = [r for r in verdict.results if r.result["mode"] == "both"]
    assert not timed.accepted
    assert "[compliance] no accepted TEST01 run of this job in the submission" in reasons(verdict)
    assert "[compliance] no accepted TEST04 run" in reasons(verdict)

    # a TEST01 run of the same job, as `mnv4suite run --audit` makes it, next to the submission's runs
    env = dict(os.environ, MNV4SUITE_PLUGINS="tinynet", MNV4SUITE_CACHE=str(submission.parent / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(PLUGIN_DIR), os.environ.get("PYTHONPATH")])))
    data = submission.parent / "imagenet"
    sys.path.insert(0, str(TESTS))
    from support import make_image_folder

    make_image_folder(data, WNIDS[:3], per_class=4)
    (data / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {i}\n" for i, w in enumerate(WNIDS)))
    [both] = [p for p in submission.glob("*/*onnxruntime-cpu*/result.json")]
    weights = json.loads(both.read_text())["model"]["weights"]
    proc = subprocess.run(
        [sys.executable, "-m", "mnv4suite", "run", "--backend", "onnxruntime-cpu", "--model", "tiny-cnn",
         "--preset", "rapid", "--data", str(data), "--weights", weights, "--audit", "TEST01", "--out", str(submission)],
        cwd=submission.parent, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = subs.validate_submission(submission, rules)
    text = reasons(verdict)
    assert "no accepted TEST01 run" not in text and "TEST01 accuracy check" not in text
    assert "[compliance] no accepted TEST04 run" in text  # still required, still missing
