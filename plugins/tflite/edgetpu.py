"""The Edge TPU compiler step: run ``edgetpu_compiler`` on a full-int8 .tflite and read what it mapped.

The Edge TPU runs a model only after ``edgetpu_compiler`` has replaced the parts it supports with
``edgetpu-custom-op`` nodes; every op it does not map stays an ordinary TFLite op that the CPU runs.
The compiler's operation table (``-s``) says which ops went where, and why the others did not:

    Operator                       Count      Status
    CONV_2D                        31         Mapped to Edge TPU
    SOFTMAX                        1          Operation is otherwise supported, but not mapped due to ...

Pure Python (subprocess and text): nothing here imports a framework.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mnv4suite.errors import UnavailableError

#: Flags of every compilation; part of the compiled artifact's cache key.
#: -s: print the operation table; -t: the compiler's own timeout in seconds.
COMPILE_FLAGS = ("-s", "-t", "300")
MAPPED = "Mapped to Edge TPU"

_VERSION = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_ROW = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")
_FIELDS = {
    "total_ops": re.compile(r"Total number of operations:\s*(\d+)"),
    "edgetpu_subgraphs": re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)"),
    "ops_on_edgetpu": re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)"),
    "ops_on_cpu": re.compile(r"Number of operations that will run on CPU:\s*(\d+)"),
    "on_chip_memory_used": re.compile(r"On-chip memory used for caching model parameters:\s*(\S+)"),
    "off_chip_memory_used": re.compile(r"Off-chip memory used for streaming uncached model parameters:\s*(\S+)"),
}


@lru_cache(maxsize=8)
def compiler_version(compiler: str) -> str:
    """``16.0.384591198`` from ``edgetpu_compiler --version``; "unknown" when it says nothing parseable."""
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UnavailableError(f"cannot run {compiler} --version: {exc}") from exc
    found = _VERSION.search(out.stdout + out.stderr)
    return found.group(1) if found else "unknown"


def compiled_name(model: Path) -> str:
    """The file name edgetpu_compiler gives its output: ``<stem>_edgetpu.tflite``."""
    return f"{Path(model).stem}_edgetpu.tflite"


def command(compiler: str, model: Path, out_dir: Path) -> list[str]:
    return [compiler, *COMPILE_FLAGS, "-o", str(out_dir), str(model)]


def command_line(model: Path, out_dir: Path | str = ".", compiler: str = "edgetpu_compiler") -> str:
    """The exact command to run by hand where the compiler is installed."""
    return shlex.join(command(compiler, Path(model), Path(out_dir)))


@dataclass
class CompilerReport:
    """What edgetpu_compiler said about one model."""

    version: str | None
    succeeded: bool
    ops: list[dict[str, Any]] = field(default_factory=list)  # {"op", "count", "status"} rows of the table
    fields: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def mapped(self) -> int:
        return sum(r["count"] for r in self.ops if r["status"] == MAPPED)

    @property
    def on_cpu(self) -> list[dict[str, Any]]:
        return [r for r in self.ops if r["status"] != MAPPED]

    def cpu_fallback_ops(self) -> list[str]:
        """One entry per table row left on the CPU: "SOFTMAX x1: <the compiler's reason>"."""
        return [f"{r['op']} x{r['count']}: {r['status']}" for r in self.on_cpu]

    def to_dict(self) -> dict[str, Any]:
        cpu = sum(r["count"] for r in self.on_cpu)
        return {
            "compiler_version": self.version,
            "succeeded": self.succeeded,
            "ops_on_edgetpu": self.fields.get("ops_on_edgetpu", self.mapped),
            "ops_on_cpu": self.fields.get("ops_on_cpu", cpu),
            "cpu_fallback_ops": self.cpu_fallback_ops(),
            "operations": self.ops,
            **{k: v for k, v in self.fields.items() if k not in ("ops_on_edgetpu", "ops_on_cpu")},
            **({"errors": self.errors} if self.errors else {}),
        }


def parse_log(text: str) -> CompilerReport:
    """Read edgetpu_compiler's output (stdout with -s, or its .log file)."""
    version = _VERSION.search(text)
    fields: dict[str, Any] = {}
    for name, pattern in _FIELDS.items():
        found = pattern.search(text)
        if found:
            value = found.group(1)
            fields[name] = int(value) if value.isdigit() else value
    ops, in_table = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if re.match(r"^Operator\s+Count\s+Status$", stripped):
            in_table = True
            continue
        if in_table:
            row = _ROW.match(stripped)
            if row:
                ops.append({"op": row.group(1), "count": int(row.group(2)), "status": row.group(3)})
            elif stripped and ops:  # the table ends at the first line that is not a row
                in_table = False
    errors = [ln.strip() for ln in text.splitlines()
              if ln.strip().startswith(("ERROR", "Error", "Internal compiler error")) or "Compilation failed" in ln]
    succeeded = ("Model compiled successfully" in text or "Compilation succeeded" in text) and not any(
        "Compilation failed" in e for e in errors)
    return CompilerReport(version.group(1) if version else None, succeeded, ops, fields, errors)


@dataclass
class Compilation:
    compiled: Path  # the _edgetpu.tflite file
    log: str  # stdout + stderr, then the .log file when the compiler wrote one
    report: CompilerReport


def compile_model(compiler: str, model: Path, timeout: float = 600) -> tuple[Compilation, tempfile.TemporaryDirectory]:
    """Run the compiler on ``model`` in a fresh folder; the caller keeps the folder alive while it copies out.

    Raises UnavailableError with the compiler's own words when it fails: a model the Edge TPU cannot take."""
    folder = tempfile.TemporaryDirectory(prefix="mnv4suite-edgetpu-")
    out_dir = Path(folder.name)
    source = out_dir / "model_int8.tflite"
    shutil.copyfile(model, source)  # a fixed stem: the output names never depend on the cache's file names
    try:
        proc = subprocess.run(command(compiler, source, out_dir), capture_output=True, text=True, timeout=timeout,
                              cwd=out_dir)
    except subprocess.TimeoutExpired as exc:
        folder.cleanup()
        raise UnavailableError(f"edgetpu_compiler did not finish within {timeout:.0f} s on {model}") from exc
    except OSError as exc:
        folder.cleanup()
        raise UnavailableError(f"cannot run {compiler}: {exc}") from exc
    log = proc.stdout + proc.stderr
    log_file = out_dir / compiled_name(source).replace(".tflite", ".log")
    if not parse_log(log).ops and log_file.is_file():  # -s prints the table; else it is only in the .log file
        log += "\n" + log_file.read_text(errors="replace")
    report = parse_log(log)
    compiled = out_dir / compiled_name(source)
    if proc.returncode != 0 or not compiled.is_file() or compiled.stat().st_size == 0:
        folder.cleanup()
        tail = "; ".join(report.errors) or " ".join(log.strip().splitlines()[-3:]) or f"exit status {proc.returncode}"
        raise UnavailableError(f"edgetpu_compiler {report.version or ''} could not compile the int8 model: {tail}")
    report.succeeded = True
    return Compilation(compiled, log, report), folder
