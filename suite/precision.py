"""Reduced precision against fp32 of the same weights, measured in the same run.

A precision variant (int8, bf16, fp16) names its fp32 backend (`BackendSpec.fp32_reference`). When
a run measures accuracy, the planner adds the reference's accuracy job for each model unless the
run already has it, and after the run each variant's metrics are set beside the reference's. Only
results of the same task, model, weights checksum and sample selection are compared: an accuracy
difference is then the precision's, not the data's or the weights'.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Sequence

from mnv4suite.api import Availability, BackendSpec
from mnv4suite.worker import Job

#: What a run writes in its folder when it compared anything.
COMPARISON_FILE = "precision-vs-fp32.json"


def reference_jobs(jobs: Sequence[Job], backends: Callable[[str], BackendSpec | None],
                   probe: Callable[[BackendSpec], Availability]) -> tuple[list[Job], list[str]]:
    """Accuracy jobs of the fp32 references the run lacks, and a note for each reference added or missing."""
    planned = {(j.model, j.backend) for j in jobs}
    added: dict[tuple[str, str], Job] = {}
    notes: dict[str, str] = {}
    for job in jobs:
        if job.mode == "performance":
            continue
        reference = backends(job.backend).fp32_reference
        if reference is None or (job.model, reference) in planned or (job.model, reference) in added:
            continue
        if not probe(backends(job.backend)):
            continue  # the variant itself is not measured here: nothing to compare
        if backends(reference) is None:
            notes[reference] = (f"{job.backend}'s accuracy is not compared with fp32: its reference backend "
                                f"'{reference}' is not installed")
            continue
        found = probe(backends(reference))
        if not found:
            notes[reference] = (f"{job.backend}'s accuracy is not compared with fp32: its reference {reference} "
                                f"cannot run here ({found.explain()})")
            continue
        added[job.model, reference] = replace(job, backend=reference, mode="accuracy", batch=1, out_dir=".")
        notes[reference] = (f"adding {reference} accuracy jobs: the fp32 reference of {job.backend} "
                            "(same weights, same samples)")
    return list(added.values()), list(notes.values())


def _key(result: dict[str, Any]) -> tuple:
    dataset = result["task"]["dataset"]
    return (result["task"]["id"], result["model"]["id"], result["model"]["checksum"],
            dataset.get("path"), dataset["samples"], dataset.get("requested"))


def compare(results: Iterable[dict[str, Any]], backends: Callable[[str], BackendSpec | None]) -> list[dict[str, Any]]:
    """One row per variant result that has an fp32 reference result of the same model, weights and samples."""
    results = [r for r in results if (r.get("accuracy") or {}).get("metrics")]
    by_backend = {(r["backend"]["id"], _key(r)): r for r in results}
    rows = []
    for result in results:
        spec = backends(result["backend"]["id"])
        if spec is None or spec.fp32_reference is None:
            continue
        reference = by_backend.get((spec.fp32_reference, _key(result)))
        if reference is None:
            continue
        fp32 = reference["accuracy"]["metrics"]
        rows.append({
            "task": result["task"]["id"], "model": result["model"]["id"], "backend": spec.id,
            "precision": result["model"]["precision"], "reference": spec.fp32_reference,
            "samples": result["task"]["dataset"]["samples"],
            "calibration": result["model"].get("calibration"),
            "metrics": {name: {"value": value, "fp32": fp32[name], "delta": value - fp32[name]}
                        for name, value in result["accuracy"]["metrics"].items() if name in fp32},
        })
    return rows


def render(rows: Sequence[dict[str, Any]]) -> str:
    from tabulate import tabulate

    table = [[r["model"], r["backend"], r["precision"], r["reference"], name, f"{m['value']:.2f}", f"{m['fp32']:.2f}",
              f"{m['delta']:+.2f}", r["samples"]]
             for r in rows for name, m in r["metrics"].items()]
    return tabulate(table, headers=["model", "backend", "precision", "fp32 reference", "metric", "value", "fp32",
                                    "difference", "samples"], tablefmt="simple", disable_numparse=True)
