"""Submissions: the folder format, hardened loading, and `mnv4suite validate`.

A submission is a folder holding `submission.yaml` (who submits, on what system, with which plugin) and
run folders exactly as `mnv4suite run` writes them: `<run_id>/<job>/result.json` beside `loadgen/`, the
raw LoadGen logs. docs/submissions.md is the user-facing description.

Everything in a submission is untrusted. Loading reads only regular files inside the folder (symlinks,
devices and FIFOs are refused wherever they are), every file has a size limit, YAML is read with the safe
loader and without aliases, and nothing from the submission is imported or run: the verdict is computed
from data alone, by the same `loadgen_log` functions that produced the figures in the first place.

What validation can and cannot prove: a figure in result.json that differs from the raw logs, a log that
changed after the run, or a missing log are caught. The accuracy metric itself needs the dataset, which the
validator does not have; it checks that the accuracy log holds one payload per counted sample, and that the
metric reaches its target fraction of the fp32 reference. A forger who rewrites the logs *and* re-hashes them
consistently is not caught by any check here: that needs a signed or re-run result.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mnv4suite import loadgen_log, results
from mnv4suite.errors import UserError
from mnv4suite.safeparse import load_json, load_yaml, printable
from mnv4suite.run_rules import PRESETS, Seeds

SUBMISSION_FILE = "submission.yaml"
SUBMISSION_FORMAT = "mnv4suite-submission-1"
VERDICT_FORMAT = "mnv4suite-verdict-1"

#: Size limits (bytes). An accuracy log of COCO val2017 with 100 detections per image is ~60 MB.
MAX_YAML_BYTES = 64 * 1024
MAX_RESULT_BYTES = 4 * 1024 * 1024
MAX_LOG_BYTES = 512 * 1024 * 1024
MAX_ENTRIES = 20_000

#: The headline metric of each task kind and the fraction of the fp32 reference it must reach
#: (MLPerf Mobile: 98% for classification, 95% for detection).
ACCURACY_TARGETS = {"top1": ("classification", 0.98), "ap": ("detection", 0.95)}

#: Reference accuracies the suite knows for particular weights, by weights checksum, then task id:
#: {checksum: {task_id: {"top1": 73.8, "source": "..."}}}. None are known yet: the public checkpoints'
#: state-dict checksums have not been measured here, so a submission must carry its own fp32 result.
KNOWN_REFERENCES: dict[str, dict[str, dict[str, Any]]] = {}

#: Figures that are re-derived from mlperf_log_detail.txt (warmup_ms is the harness's own, not LoadGen's).
LATENCY_FIELDS = ("queries", "mean_ms", "min_ms", "max_ms", "p50_ms", "p90_ms", "p99_ms",
                  "early_stopping_p90_ms", "samples_per_s")

_TEXT = {"type": "string", "minLength": 1, "maxLength": 200}
SUBMISSION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["format", "submitter", "system", "plugin"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": SUBMISSION_FORMAT},
        "submitter": _TEXT,
        "system": {
            "type": "object",
            "required": ["name", "soc", "os", "frameworks"],
            "additionalProperties": False,
            "properties": {
                "name": _TEXT,
                "soc": {**_TEXT, "description": "the SoC, or the CPU for a machine without one"},
                "cpu": _TEXT,
                "accelerators": {"type": "array", "maxItems": 16, "items": _TEXT},
                "os": _TEXT,
                "frameworks": {"type": "object", "maxProperties": 32, "additionalProperties": _TEXT,
                               "propertyNames": {"maxLength": 100}},
            },
        },
        "plugin": {
            "type": "object",
            "required": ["distribution", "version"],
            "additionalProperties": False,
            "properties": {"distribution": _TEXT, "version": _TEXT},
        },
        "notes": {"type": "string", "maxLength": 5000},
    },
}


# --------------------------------------------------------------------------- run rules


@dataclass(frozen=True)
class Rules:
    """The run rules a verdict is given under. Only `submission` makes a submission verdict."""

    name: str
    min_preset: str
    note: str
    #: reject performance results whose machine was busy while LoadGen timed them
    quiet_machine: bool = True
    #: LoadGen compliance tests every performance result needs beside it, passing (mnv4suite.compliance)
    compliance_tests: tuple[str, ...] = ("TEST01", "TEST04")

    @property
    def min_query_count(self) -> int:
        return PRESETS[self.min_preset].min_query_count

    @property
    def min_duration_ms(self) -> int:
        return PRESETS[self.min_preset].min_duration_ms

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "min_query_count": self.min_query_count, "min_duration_ms": self.min_duration_ms}


RULES = {
    "submission": Rules("submission", "normal",
                        "MLPerf Mobile's minimum: preset normal (1024 queries and 60 s per performance run)"),
    "development": Rules("development", "rapid",
                         "relaxed for development (preset rapid: 64 queries and 6 s, busy machines allowed): "
                         "NOT a submission verdict", quiet_machine=False, compliance_tests=()),
}


def get_rules(name: str) -> Rules:
    if name not in RULES:
        raise UserError(f"unknown rules '{name}': choose one of {', '.join(RULES)}")
    return RULES[name]


# --------------------------------------------------------------------------- verdicts


@dataclass
class ResultVerdict:
    path: str  # relative to the submission, POSIX
    reasons: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return not self.reasons and self.result is not None

    def reject(self, rule: str, message: str) -> None:
        self.reasons.append(f"[{rule}] {message}")

    def summary(self) -> dict[str, Any]:
        r = self.result or {}
        get = lambda *keys: _dig(r, *keys)  # noqa: E731
        return {"task": get("task", "id"), "model": get("model", "id"), "precision": get("model", "precision"),
                "backend": get("backend", "id"), "scenario": get("scenario"), "mode": get("mode"),
                "preset": get("preset", "name")}

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "accepted": self.accepted, "reasons": list(self.reasons), **self.summary()}


@dataclass
class SubmissionVerdict:
    path: str
    rules: Rules
    meta: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)
    results: list[ResultVerdict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def accepted(self) -> bool:
        return not self.reasons and bool(self.results) and all(r.accepted for r in self.results)

    def reject(self, rule: str, message: str) -> None:
        self.reasons.append(f"[{rule}] {message}")

    def all_reasons(self) -> list[str]:
        """Submission-level reasons, then each rejected result's, prefixed with its path."""
        return self.reasons + [f"{r.path}: {why}" for r in self.results for why in r.reasons]

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "accepted": self.accepted, "rules": self.rules.describe(),
                "submission": self.meta, "reasons": list(self.reasons),
                "results": [r.as_dict() for r in self.results]}


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


# --------------------------------------------------------------------------- hardened file access


class UnsafeSubmission(Exception):
    """A file the validator refuses to read; the message says which and why."""


def _inventory(root: Path) -> tuple[list[PurePosixPath], list[str]]:
    """Every regular file under root (relative paths), and a problem per entry that is not one.

    Walks without following links. A symlink is refused wherever it points: one that stays inside is
    harmless today but makes what the verdict covers depend on the filesystem it is unpacked on.
    """
    files: list[PurePosixPath] = []
    problems: list[str] = []
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            count += 1
            if count > MAX_ENTRIES:
                problems.append(f"more than {MAX_ENTRIES} files and folders: not a submission this tool reads")
                return files, problems
            path = here / name
            rel = PurePosixPath(path.relative_to(root).as_posix())
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink(path)
                inside = _is_inside(root, path.parent / target)
                where = "inside the submission" if inside else "OUTSIDE the submission"
                problems.append(f"{rel} is a symlink to {target!r} ({where}): symlinks are refused, copy the file")
            elif stat.S_ISDIR(mode):
                continue
            elif stat.S_ISREG(mode):
                files.append(rel)
            else:
                problems.append(f"{rel} is not a regular file or folder: refused")
        dirnames[:] = [d for d in dirnames if stat.S_ISDIR(os.lstat(here / d).st_mode)]
    return files, problems


def _is_inside(root: Path, path: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
        return True
    except ValueError:
        return False


def _safe_relative(text: Any, what: str) -> PurePosixPath:
    """A path named inside a submission file: relative, no '..', no backslashes or NULs."""
    if not isinstance(text, str) or not text or "\\" in text or "\x00" in text:
        raise UnsafeSubmission(f"{what} {text!r} is not a plain relative path")
    rel = PurePosixPath(text)
    if rel.is_absolute() or ".." in rel.parts:
        raise UnsafeSubmission(f"{what} {text!r} points outside its folder: refused")
    return rel


def _read_bytes(root: Path, rel: PurePosixPath, limit: int) -> bytes:
    """One regular file inside root, at most `limit` bytes; refuses links anywhere on the way."""
    path = root
    for part in rel.parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise UnsafeSubmission(f"{rel} is missing") from None
        if stat.S_ISLNK(mode):
            raise UnsafeSubmission(f"{rel} goes through a symlink: refused")
    if not stat.S_ISREG(mode) or not _is_inside(root, path):
        raise UnsafeSubmission(f"{rel} is not a regular file inside the submission: refused")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise UnsafeSubmission(f"{rel} is larger than the {limit} bytes allowed")
    return data


# --------------------------------------------------------------------------- submission.yaml


def read_submission_yaml(data: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """The description and every problem with it. Safe loader, no aliases, one document, schema-checked."""
    import jsonschema
    import yaml

    try:
        meta = load_yaml(data, SUBMISSION_FILE, max_bytes=MAX_YAML_BYTES)
    except ValueError as exc:
        return None, [str(exc)]
    except yaml.YAMLError as exc:
        return None, [f"{SUBMISSION_FILE} is not valid UTF-8 YAML: {exc}"]
    cls = jsonschema.validators.validator_for(SUBMISSION_SCHEMA)
    errors = sorted(cls(SUBMISSION_SCHEMA).iter_errors(meta), key=lambda e: list(e.absolute_path))
    if errors:
        return None, [f"{SUBMISSION_FILE}: {'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}"
                      for e in errors[:20]]
    return meta, []


# --------------------------------------------------------------------------- validation


def check_output_file(option: str, path: Path) -> None:
    """A file the command will write: not a folder, and its folder must exist."""
    if path.is_dir():
        raise UserError(f"{option} {printable(path)} is a folder: give a file name to write")
    if not path.parent.is_dir():
        raise UserError(f"{option} {printable(path)}: the folder {printable(path.parent)} does not exist")


def validate_submission(path: Path, rules: Rules = RULES["submission"]) -> SubmissionVerdict:
    """The verdict on one submission folder: every result checked, every reason kept. Never raises on
    what the submission holds: a check that fails unexpectedly rejects it with the reason."""
    try:
        return _validate_submission(path, rules)
    except Exception as exc:  # noqa: BLE001 - whatever a hostile file provokes rejects it, never the whole site
        verdict = SubmissionVerdict(path=str(path), rules=rules)
        verdict.reject("files", f"the submission could not be checked: {type(exc).__name__}: {printable(exc)}")
        return verdict


def _validate_submission(path: Path, rules: Rules) -> SubmissionVerdict:
    root = Path(path)
    verdict = SubmissionVerdict(path=str(path), rules=rules)
    if root.is_symlink() or not root.is_dir():
        verdict.reject("format", f"{path} is not a folder")
        return verdict
    root = root.resolve()
    files, problems = _inventory(root)
    for problem in problems:
        verdict.reject("files", problem)

    try:
        verdict.meta, yaml_problems = read_submission_yaml(_read_bytes(root, PurePosixPath(SUBMISSION_FILE),
                                                                       MAX_YAML_BYTES))
    except UnsafeSubmission as exc:
        verdict.meta, yaml_problems = None, [f"{exc} (every submission needs one; see docs/submissions.md)"]
    for problem in yaml_problems:
        verdict.reject("submission.yaml", problem)

    result_paths = [f for f in files if f.name == results.RESULT_FILE]
    for rel in result_paths:
        if len(rel.parts) != 3:
            verdict.reject("format", f"{rel}: results belong at <run_id>/<job>/{results.RESULT_FILE}")
    for rel in sorted(p for p in result_paths if len(p.parts) == 3):
        verdict.results.append(_check_result(root, rel, files, rules))
    if not verdict.results:
        verdict.reject("format", f"no <run_id>/<job>/{results.RESULT_FILE} in the submission")

    if verdict.meta is not None:
        _check_plugin(verdict)
    _check_accuracy(verdict.results)
    _check_accuracy_coverage(verdict.results)
    _check_compliance(root, verdict.results, rules)
    return verdict


def _check_result(root: Path, rel: PurePosixPath, files: list[PurePosixPath], rules: Rules) -> ResultVerdict:
    verdict = ResultVerdict(path=str(rel))
    try:
        result = load_json(_read_bytes(root, rel, MAX_RESULT_BYTES), "result.json", max_bytes=MAX_RESULT_BYTES)
    except UnsafeSubmission as exc:
        verdict.reject("files", str(exc))
        return verdict
    except ValueError as exc:
        verdict.reject("schema", str(exc))
        return verdict
    errors = results.schema_errors(result) if isinstance(result, dict) else ["(root): not an object"]
    if errors:
        for error in errors[:20]:
            verdict.reject("schema", error)
        return verdict  # nothing else can be trusted to have the expected shape
    verdict.result = result
    _check_run_rules(verdict, result, rules)
    _check_logs(verdict, root, rel.parent, result, files)
    return verdict


def _check_run_rules(verdict: ResultVerdict, result: dict[str, Any], rules: Rules) -> None:
    if result["status"] != "complete":
        verdict.reject("status", f"status is {result['status']}: {result['task']['dataset'].get('skipped', 0)} "
                                 "sample(s) were skipped, so the accuracy is not comparable; fix the data and rerun")
    if not result["backend"]["available"] or result["estimate"] is not None or result["mode"] == "none":
        verdict.reject("measured", f"backend {result['backend']['id']} did not run on its device here "
                                   "(stand-in or roofline estimate): only measurements can be submitted")
    seeds = Seeds().as_dict()
    if result["seeds"] != seeds:
        wrong = ", ".join(f"{k}={result['seeds'][k]} (official {v})" for k, v in seeds.items() if result["seeds"][k] != v)
        verdict.reject("seeds", f"LoadGen seeds differ from the official ones: {wrong}")
    performance = result["mode"] in ("performance", "both")
    if performance:
        preset = result["preset"]
        if preset["min_query_count"] < rules.min_query_count or preset["min_duration_ms"] < rules.min_duration_ms:
            verdict.reject("preset", f"preset {preset['name']} ({preset['min_query_count']} queries, "
                                     f"{preset['min_duration_ms']} ms) is below the minimum of the {rules.name} rules: "
                                     f"{rules.note}")
        if result["validity"]["result"] != "VALID":
            verdict.reject("validity", f"LoadGen judged the run {result['validity']['result']}: "
                                       + ", ".join(f"{k}={v}" for k, v in result["validity"].items() if k != "result"))
        if result["latency"] is None:
            verdict.reject("figures", f"mode {result['mode']} but no latency figures")
        load = result.get("machine_load") or {}
        if rules.quiet_machine and load.get("quiet") is False:
            verdict.reject("quiet", "the machine was busy while LoadGen timed it ("
                                    + "; ".join(map(str, load.get("reasons", []))) + "): rerun on an idle machine")
    if result["mode"] in ("accuracy", "both"):
        if result["accuracy"] is None:
            verdict.reject("accuracy", f"mode {result['mode']} but no accuracy figures")
        elif result["task"]["dataset"]["synthetic"]:
            verdict.reject("accuracy", "accuracy measured on synthetic inputs means nothing: run with --data")


def _check_logs(verdict: ResultVerdict, root: Path, job_dir: PurePosixPath, result: dict[str, Any],
                files: list[PurePosixPath]) -> None:
    """Every listed log present and unmodified, and every figure equal to what the logs say."""
    import hashlib

    loadgen = result["loadgen"]
    try:
        log_rel = job_dir / _safe_relative(loadgen["log_dir"], "loadgen.log_dir")
        names = {name: _safe_relative(name, "log name") for name in loadgen["logs"]}
    except UnsafeSubmission as exc:
        verdict.reject("files", str(exc))
        return
    if any(len(p.parts) != 1 for p in names.values()):
        verdict.reject("files", "log names must be plain file names")
        return
    intact: set[str] = set()
    for name, expected in loadgen["logs"].items():
        try:
            data = _read_bytes(root, log_rel / name, MAX_LOG_BYTES)
        except UnsafeSubmission as exc:
            verdict.reject("logs", f"{exc}: every log listed in result.json must be in the submission")
            continue
        if hashlib.sha256(data).hexdigest() != expected:
            verdict.reject("logs", f"{log_rel / name} was modified after the run (its sha256 differs from result.json)")
        else:
            intact.add(name)
    unlisted = sorted(str(f) for f in files if f.parent == log_rel and f.name not in loadgen["logs"])
    if unlisted:
        verdict.reject("logs", f"log file(s) not listed in result.json: {', '.join(unlisted)}")

    measured = result["mode"] != "none"
    required = set()
    if measured:
        required.add(loadgen_log.DETAIL)
    if result["accuracy"] is not None:
        required.add(loadgen_log.ACCURACY)
    for name in sorted(required - set(loadgen["logs"])):
        verdict.reject("logs", f"{name} is not listed in result.json: the figures cannot be checked")
    if loadgen_log.DETAIL in intact:
        _check_detail_figures(verdict, root / log_rel, result)
    if loadgen_log.ACCURACY in intact and result["accuracy"] is not None:
        try:
            payloads = loadgen_log.read_accuracy_payloads(root / log_rel)
        except (ValueError, KeyError, TypeError) as exc:
            verdict.reject("logs", f"{log_rel / loadgen_log.ACCURACY} is unreadable: {exc}")
        else:
            if len(payloads) != result["accuracy"]["samples"]:
                verdict.reject("figures", f"accuracy.samples is {result['accuracy']['samples']} in result.json but "
                                          f"{log_rel / loadgen_log.ACCURACY} holds {len(payloads)} payloads")


def _check_detail_figures(verdict: ResultVerdict, log_dir: Path, result: dict[str, Any]) -> None:
    try:
        detail = loadgen_log.read_detail(log_dir)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        verdict.reject("logs", f"{loadgen_log.DETAIL} is unreadable: {exc}")
        return
    where = f"{loadgen_log.DETAIL}"

    def differ(field_name: str, ours: Any, theirs: Any) -> None:
        verdict.reject("figures", f"{field_name} is {ours!r} in result.json but {theirs!r} in {where}")

    logged_seeds = {"qsl": detail.get("effective_qsl_rng_seed"), "sample_index": detail.get("effective_sample_index_rng_seed"),
                    "schedule": detail.get("effective_schedule_rng_seed")}
    for key, value in logged_seeds.items():
        if result["seeds"][key] != value:
            differ(f"seeds.{key}", result["seeds"][key], value)
    if detail.get("effective_scenario") != result["scenario"]:
        differ("scenario", result["scenario"], detail.get("effective_scenario"))
    # Offline is one query of many samples: LoadGen's effective minimum query count there is always 1.
    query_count_key = "requested_min_query_count" if result["scenario"] == "Offline" else "effective_min_query_count"
    for key, log_key in (("min_query_count", query_count_key), ("min_duration_ms", "effective_min_duration_ms")):
        if result["preset"][key] != detail.get(log_key):
            differ(f"preset.{key}", result["preset"][key], detail.get(log_key))
    if result["loadgen"]["version"] != detail.get("loadgen_version"):
        differ("loadgen.version", result["loadgen"]["version"], detail.get("loadgen_version"))
    if loadgen_log.overridden_by_audit_config(detail) and not result["loadgen"].get("audit"):
        verdict.reject("rules", f"{where} says an audit.config overrode LoadGen's settings, and the result is not a "
                                "compliance run: its figures are not the settings it claims (run again without "
                                "an audit.config; compliance tests: mnv4suite run --audit)")
    if result["mode"] not in ("performance", "both"):
        return
    figures = loadgen_log.latency_figures(detail)
    latency = result["latency"] or {}
    for key in LATENCY_FIELDS + (("qps_with_loadgen_overhead",) if "qps_with_loadgen_overhead" in latency else ()):
        if latency.get(key) != figures[key]:
            differ(f"latency.{key}", latency.get(key), figures[key])
    logged_validity = loadgen_log.validity(detail)
    for key, value in logged_validity.items():
        if result["validity"].get(key) != value:
            differ(f"validity.{key}", result["validity"].get(key), value)


def headline_metric(metrics: dict[str, float]) -> tuple[str, str, float] | None:
    """(metric, task kind, target fraction) for the first metric with a known target."""
    for metric, (kind, fraction) in ACCURACY_TARGETS.items():
        if metric in metrics:
            return metric, kind, fraction
    return None


def _dataset_identity(result: dict[str, Any]) -> str:
    """Results are compared only over the same samples: same task, selection and pre-processing."""
    dataset = result["task"]["dataset"]
    details = {k: v for k, v in (dataset.get("details") or {}).items() if k != "input_cache"}
    return json.dumps([result["task"]["id"], dataset["synthetic"], dataset["samples"], details], sort_keys=True)


def _reference_key(result: dict[str, Any]) -> tuple[str, str, str]:
    return result["model"]["id"], result["model"]["checksum"], _dataset_identity(result)


def _check_accuracy(verdicts: list[ResultVerdict]) -> None:
    """Accuracy at or above the target fraction of the fp32 reference: the highest fp32 accuracy in the
    submission for the same model, weights and dataset, else one the suite knows for those weights."""
    with_accuracy = [v for v in verdicts if v.result is not None and v.result["accuracy"] is not None]
    references: dict[tuple[str, str, str], dict[str, float]] = {}
    for v in with_accuracy:
        r = v.result
        if r["model"]["precision"] != "fp32" or r["status"] != "complete" or r["task"]["dataset"]["synthetic"]:
            continue
        best = references.setdefault(_reference_key(r), {})
        for metric, value in r["accuracy"]["metrics"].items():
            best[metric] = max(value, best.get(metric, value))
    for v in with_accuracy:
        r = v.result
        metrics = r["accuracy"]["metrics"]
        found = headline_metric(metrics)
        if found is None:
            v.reject("accuracy", f"no accuracy target is known for task {r['task']['id']} "
                                 f"(metrics: {', '.join(metrics) or 'none'}; known: {', '.join(ACCURACY_TARGETS)})")
            continue
        metric, kind, fraction = found
        reference = references.get(_reference_key(r), {}).get(metric)
        source = "the fp32 result of the same model, weights and dataset in this submission"
        if reference is None:
            known = KNOWN_REFERENCES.get(r["model"]["checksum"], {}).get(r["task"]["id"], {})
            reference, source = known.get(metric), known.get("source", "the suite's reference for these weights")
        if reference is None:
            v.reject("accuracy", f"no fp32 reference for {r['model']['id']} (weights {r['model']['checksum'][:12]}) "
                                 f"on this dataset: add the fp32 result of the same model, weights and data")
            continue
        target = fraction * reference
        if metrics[metric] < target:
            v.reject("accuracy", f"{metric} {metrics[metric]:.3f} is below {fraction:.0%} of the fp32 reference "
                                 f"{reference:.3f} ({target:.3f}, the {kind} target; reference: {source})")


def _check_accuracy_coverage(verdicts: list[ResultVerdict]) -> None:
    """A performance-only result counts only beside an accepted accuracy run of the same model on the same backend."""
    def entry(r: dict[str, Any]) -> tuple[str, str, str, str]:
        return r["task"]["id"], r["model"]["id"], r["model"]["checksum"], r["backend"]["id"]

    covered = {entry(v.result) for v in verdicts if v.accepted and v.result["accuracy"] is not None}
    for v in verdicts:
        r = v.result
        if r is None or r["accuracy"] is not None or r["mode"] != "performance":
            continue
        if entry(r) not in covered:
            v.reject("accuracy", f"performance only, and no accepted accuracy run of {r['model']['id']} "
                                 f"(same weights) on {r['backend']['id']} in the submission")


def _check_compliance(root: Path, verdicts: list[ResultVerdict], rules: Rules) -> None:
    """Each timed result needs an accepted run of every required compliance test of the same job, and
    each must pass when verified from the logs (as `mnv4suite run --audit` verified it)."""
    from mnv4suite import compliance

    def job(r: dict[str, Any]) -> tuple:
        return r["task"]["id"], r["model"]["id"], r["model"]["checksum"], r["backend"]["id"], r["scenario"]

    def log_dir(v: ResultVerdict) -> Path:
        return root / PurePosixPath(v.path).parent / v.result["loadgen"]["log_dir"]

    audits = {(job(v.result), v.result["loadgen"]["audit"]): v for v in verdicts
              if v.accepted and v.result["loadgen"].get("audit")}
    for v in verdicts:
        r = v.result
        if not v.accepted or r["loadgen"].get("audit") or r["mode"] not in ("performance", "both"):
            continue
        for test in rules.compliance_tests:
            audit = audits.get((job(r), test))
            if audit is None:
                v.reject("compliance", f"no accepted {test} run of this job in the submission "
                                       f"(mnv4suite run --audit {test} runs and verifies one)")
                continue
            problems = []
            if test == "TEST01":
                if r["mode"] != "both":
                    problems.append("TEST01 needs the accuracy log of the run it audits (a run with --data)")
                else:
                    outcome, _ = compliance.verify_accuracy(log_dir(v) / loadgen_log.ACCURACY,
                                                            log_dir(audit) / loadgen_log.ACCURACY, _payload_dtype(r))
                    if outcome != "TEST PASS":
                        problems.append(f"TEST01 accuracy check: {outcome} ({audit.path})")
            outcome, _ = compliance.verify_performance(loadgen_log.read_detail(log_dir(v)),
                                                       loadgen_log.read_detail(log_dir(audit)), test)
            if outcome != "TEST PASS":
                problems.append(f"{test} performance check: {outcome} ({audit.path})")
            for problem in problems:
                v.reject("compliance", problem)


def _payload_dtype(result: dict[str, Any]) -> str:
    from mnv4suite.registry import get_registry

    task = get_registry().tasks.items.get(result["task"]["id"])
    return task.create().payload_dtype if task is not None else "byte"


def _check_plugin(verdict: SubmissionVerdict) -> None:
    """Every backend came from the suite itself or from the plugin the submission declares."""
    plugin = verdict.meta["plugin"]
    declared = f"{plugin['distribution']} {plugin['version']}"
    for v in verdict.results:
        if v.result is None:
            continue
        provider = v.result["backend"]["provider"]
        if provider.startswith("mnv4suite.plugins.") or provider == declared:
            continue
        v.reject("plugin", f"backend {v.result['backend']['id']} comes from {provider!r}, which is neither built "
                           f"into the suite nor the declared plugin {declared!r}")


# --------------------------------------------------------------------------- report and CLI


def verdict_json(verdicts: list[SubmissionVerdict]) -> dict[str, Any]:
    return {"format": VERDICT_FORMAT, "accepted": all(v.accepted for v in verdicts),
            "submissions": [v.as_dict() for v in verdicts]}


def render_verdicts(verdicts: list[SubmissionVerdict]) -> str:
    """The verdicts for a terminal: every name and reason came from a submission, so each is escaped."""
    lines: list[str] = []
    for sub in verdicts:
        lines.append(f"{'ACCEPTED' if sub.accepted else 'REJECTED'}  {printable(sub.path)}  (rules: {sub.rules.name})")
        if sub.rules.name != "submission":
            lines.append(f"  note: {sub.rules.note}")
        for reason in sub.reasons:
            lines.append(f"  - {printable(reason, 1000)}")
        for r in sub.results:
            s = r.summary()
            what = " ".join(str(s[k]) for k in ("task", "model", "precision", "backend", "scenario", "mode") if s[k])
            lines.append(f"  {'ok      ' if r.accepted else 'rejected'}  {printable(r.path)}  {printable(what)}")
            for reason in r.reasons:
                lines.append(f"      - {printable(reason, 1000)}")
    total = len(verdicts)
    accepted = sum(v.accepted for v in verdicts)
    lines.append(f"\n{accepted} of {total} submission(s) accepted")
    return "\n".join(lines)


def add_validate_arguments(parser) -> None:
    """Options of `mnv4suite validate`, for the CLI's subparser."""
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="submission folder(s)")
    parser.add_argument("--rules", choices=tuple(RULES), default="submission",
                        help="submission (default: MLPerf Mobile minimums) or development (preset rapid allowed; "
                             "the verdict says so)")
    parser.add_argument("--json", metavar="FILE", help="also write the verdict as JSON ('-' for stdout only)")


VALIDATE_HELP = "check submissions: schema, run rules, accuracy targets, figures against the raw LoadGen logs"


def cmd_validate(args) -> int:
    """Exit 0 when every submission is accepted, 1 when any is rejected."""
    rules = get_rules(args.rules)
    for given in args.submissions:
        if not Path(given).is_dir():
            raise UserError(f"submission folder {printable(given)} does not exist")
    if args.json not in (None, "-"):
        check_output_file("--json", Path(args.json))
    verdicts = [validate_submission(Path(given), rules) for given in args.submissions]
    report = verdict_json(verdicts)
    if args.json == "-":
        print(json.dumps(report, indent=2))
    else:
        print(render_verdicts(verdicts))
        if args.json:
            from mnv4suite.fileio import atomic_write_json

            atomic_write_json(Path(args.json), report)
    return 0 if report["accepted"] else 1
