"""Core ML on the Apple Neural Engine: an fp16 ML Program converted from the PyTorch reference.

Conversion (any OS): ``torch.export`` of the eval-mode module -> ``run_decompositions({})`` ->
``coremltools.convert`` to an ML Program (``.mlpackage``) with fp16 compute, float32 input and
output, compute units CPU_AND_NE, minimum deployment target iOS 15 (what an iPhone 13 shipped
with). coremltools 9 has a frontend for ``torch.export`` programs; it is used instead of
``torch.jit.trace``, which recent torch releases deprecate. coremltools fuses conv + BN itself.

The artifact cache stores files, and an ``.mlpackage`` is a directory, so the cached artifact is a
zip of it (``artifact.mlpackage.zip`` holding ``model.mlpackage/...``, entries sorted, fixed
timestamps). ``unpack()`` gives the directory back; on macOS ``load()`` unpacks it into a
temporary directory that lives as long as the session.

Predictions need Core ML, which exists only on macOS (coremltools' ``libcoremlpython`` binding).
Elsewhere the backend still converts and caches the package, and ``stand_in`` is None: nothing
off Apple hardware executes an ML Program faithfully (the Neural Engine's fp16 arithmetic and
Core ML's op placement are not reproduced by any CPU interpreter), so the runner reports the
roofline estimate for the iPhone 13 profile and no accuracy.
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
import re
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mnv4suite.api import Artifact, Availability, Backend, PreparedModel, Session
from mnv4suite.errors import UnavailableError

INPUT, OUTPUT = "input", "logits"
PACKAGE = "model.mlpackage"  # the directory name inside the zip
COMPUTE_UNITS = "CPU_AND_NE"
DEPLOYMENT_TARGET = "iOS15"
CONVERTER = "torch.export + run_decompositions({}) -> coremltools.convert(mlprogram)"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def import_coremltools():
    """coremltools, imported quietly and without TensorFlow.

    Its import probes for TensorFlow (seconds, for a frontend this backend never uses) and logs a
    warning per missing macOS binding; both are kept out of the run. The torch-version warning is
    recorded in the artifact details instead (``coremltools_tested_torch``).
    """
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    logger = logging.getLogger("coremltools")
    level = logger.level
    block_tf = "tensorflow" not in sys.modules
    logger.setLevel(logging.ERROR)
    if block_tf:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]  # makes `import tensorflow` fail fast
    try:
        import coremltools
    finally:
        if block_tf and sys.modules.get("tensorflow", False) is None:
            del sys.modules["tensorflow"]
        logger.setLevel(level)
    return coremltools


def versions() -> dict[str, str]:
    import torch

    ct = import_coremltools()
    return {"coremltools": ct.__version__, "torch": torch.__version__}


# --------------------------------------------------------------------------- the .mlpackage as one file


def pack(package_dir: Path, dest: Path) -> None:
    """Zip ``package_dir`` (an .mlpackage directory) into ``dest`` as ``model.mlpackage/...``."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in Path(package_dir).rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{PACKAGE}/{path.relative_to(package_dir).as_posix()}", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())


def unpack(archive_path: Path, dest_dir: Path) -> Path:
    """Extract a packed artifact into ``dest_dir``; returns the .mlpackage directory."""
    with zipfile.ZipFile(archive_path) as archive:
        for name in archive.namelist():
            if not name.startswith(f"{PACKAGE}/") or ".." in Path(name).parts:
                raise ValueError(f"{archive_path} is not a packed Core ML model: unexpected entry '{name}'")
        archive.extractall(dest_dir)
    return Path(dest_dir) / PACKAGE


def describe(archive_path: Path) -> dict[str, Any]:
    """What a packed ML Program holds: I/O, spec version, and its operations by type (consts aside)."""
    ct = import_coremltools()
    with tempfile.TemporaryDirectory(prefix="mnv4-coreml-") as tmp:
        model = ct.models.MLModel(str(unpack(archive_path, Path(tmp))), skip_model_load=True)
        spec = model.get_spec()
    ops: Counter[str] = Counter()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            ops.update(op.type for op in block.operations if op.type != "const")
    dtype = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name
    return {
        "spec_version": spec.specificationVersion,
        "inputs": {i.name: [list(i.type.multiArrayType.shape), dtype(i.type.multiArrayType.dataType)] for i in spec.description.input},
        "outputs": {o.name: [list(o.type.multiArrayType.shape), dtype(o.type.multiArrayType.dataType)] for o in spec.description.output},
        "mil_ops": dict(sorted(ops.items())),
    }


_PROGRESS = re.compile(r"\d+%\|")  # a tqdm progress bar frame


@contextlib.contextmanager
def without_progress_bars():
    """Drop coremltools' tqdm bars (hundreds of frames per conversion); pass every other line on."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:
        kept = [line for line in re.split(r"[\r\n]+", captured.getvalue()) if line.strip() and not _PROGRESS.search(line)]
        if kept:
            print("\n".join(kept), file=sys.stderr, flush=True)


def convert(module, input_shape: tuple[int, ...], dest: Path) -> None:
    """The PyTorch module as a packed fp16 ML Program at ``dest``."""
    import warnings

    import torch

    ct = import_coremltools()
    example = torch.zeros(input_shape, dtype=torch.float32)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecation chatter
        program = torch.export.export(module.eval(), (example,)).run_decompositions({})
    with without_progress_bars(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # coremltools calling its own deprecated helpers, per op
        mlmodel = _convert(ct, program, input_shape)
    with tempfile.TemporaryDirectory(prefix="mnv4-coreml-") as tmp:
        package = Path(tmp) / PACKAGE
        mlmodel.save(str(package))
        pack(package, dest)


def _convert(ct, program, input_shape):
    return ct.convert(
        program,
        source="pytorch",
        inputs=[ct.TensorType(name=INPUT, shape=input_shape, dtype=np.float32)],
        outputs=[ct.TensorType(name=OUTPUT, dtype=np.float32)],
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT16,
        compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS),
        minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
        skip_model_load=True,  # loading needs Core ML (macOS); the package is all prepare() makes
    )


# --------------------------------------------------------------------------- running (macOS)


def op_placement(ct, mlmodel) -> tuple[list[str], int] | None:
    """(ops Core ML plans to run off the Neural Engine, ops planned), or None where no plan is available.

    MLComputePlan needs macOS 14.4+; "preferred device" is Core ML's plan, not a trace.
    """
    try:
        from coremltools.models.compute_device import MLNeuralEngineComputeDevice
        from coremltools.models.compute_plan import MLComputePlan

        plan = MLComputePlan.load_from_path(mlmodel.get_compiled_model_path(), getattr(ct.ComputeUnit, COMPUTE_UNITS))
        operations = plan.model_structure.program.functions["main"].block.operations
    except Exception:  # noqa: BLE001 - older macOS or coremltools: placement unknown, and said so
        return None
    off, planned = [], 0
    for op in operations:
        if op.operator_name == "const":
            continue
        planned += 1
        usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
        device = usage.preferred_compute_device if usage is not None else None
        if not isinstance(device, MLNeuralEngineComputeDevice):
            where = type(device).__name__.replace("ML", "").replace("ComputeDevice", "") if device else "unknown"
            off.append(f"{op.operator_name} ({where})")
    return off, planned


class CoreMLSession(Session):
    def __init__(self, archive_path: Path):
        ct = import_coremltools()
        self._tmp = tempfile.TemporaryDirectory(prefix="mnv4-coreml-")
        package = unpack(archive_path, Path(self._tmp.name))
        self.model = ct.models.MLModel(str(package), compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS))
        placement = op_placement(ct, self.model)
        where = f"Core ML {COMPUTE_UNITS}, fp16, on this Mac ({platform.machine()}, macOS {platform.mac_ver()[0]})"
        if placement is None:
            self.accelerator = f"Apple Neural Engine ({where}); per-op placement unknown (MLComputePlan needs macOS 14.4+)"
        else:
            off, planned = placement
            self.cpu_fallback_ops = tuple(off)
            self.accelerator = f"Apple Neural Engine ({where}); {planned - len(off)} of {planned} ops planned on the ANE"

    def run(self, inputs: np.ndarray) -> np.ndarray:
        out = self.model.predict({INPUT: np.ascontiguousarray(inputs, dtype=np.float32)})[OUTPUT]
        return np.asarray(out, dtype=np.float32)


def agreement(model: PreparedModel, session: Session) -> dict[str, Any]:
    """The Core ML logits against the fp32 PyTorch module's on one seeded input (recorded, not enforced:
    fp16 compute differs by design; accuracy runs on real data are the judge)."""
    import torch

    x = np.random.default_rng(1234).standard_normal(model.spec.input_shape(1)).astype(np.float32)
    with torch.inference_mode():
        want = model.module.eval()(torch.from_numpy(x)).float().numpy()
    got = session.run(x)
    cosine = float(np.sum(want * got) / max(float(np.linalg.norm(want) * np.linalg.norm(got)), 1e-30))
    return {"check_max_abs_diff": float(np.max(np.abs(want - got))), "check_cosine": cosine,
            "check_same_top1": bool(want.argmax() == got.argmax())}


class CoreMLANEBackend(Backend):
    """coremltools conversion everywhere; Core ML predictions on macOS / Apple silicon only."""

    def probe(self) -> Availability:
        found = self.spec.probe()  # requirements, then OS and CPU (cheap)
        if not found:
            return found
        ct = import_coremltools()
        try:
            from coremltools import libcoremlpython  # noqa: F401 - the Core ML binding, macOS wheels only
        except ImportError as exc:
            return Availability.missing(f"coremltools {ct.__version__} cannot run Core ML here: {exc}")
        return found

    def versions(self) -> dict[str, str]:
        return versions()

    def cache_key(self, model: PreparedModel) -> dict[str, Any]:
        return {
            "model": model.spec.id,
            "weights": model.checksum,
            "precision": "fp16",
            "format": "mlprogram (.mlpackage, zipped)",
            "input_shape": model.spec.input_shape(1),
            "io": [INPUT, OUTPUT],
            "compute_units": COMPUTE_UNITS,
            "deployment_target": DEPLOYMENT_TARGET,
            "converter": CONVERTER,
            **versions(),
        }

    def prepare(self, model: PreparedModel, cache, calibration=None) -> Artifact:
        import torch

        ct = import_coremltools()
        timing: dict[str, float] = {}

        def build(tmp: Path) -> None:
            start = time.perf_counter()
            try:
                convert(model.module, model.spec.input_shape(1), tmp)
            except Exception as exc:
                raise RuntimeError(
                    f"coremltools {ct.__version__} could not convert {model.spec.id} (torch {torch.__version__}, "
                    f"via {CONVERTER}): {type(exc).__name__}: {exc}"
                ) from exc
            timing["convert_s"] = round(time.perf_counter() - start, 2)

        path, digest, cached = cache.fetch_or_build(self.cache_key(model), ".mlpackage.zip", build)
        tested = getattr(sys.modules.get("coremltools._deps"), "_TORCH_MAX_VERSION", None)
        details = {
            "format": "ML Program, zipped .mlpackage (unzip: model.mlpackage/)",
            "compute_precision": "fp16",
            "compute_units": COMPUTE_UNITS,
            "deployment_target": DEPLOYMENT_TARGET,
            "converter": CONVERTER,
            **({"coremltools_tested_torch": f"<= {tested}"} if tested else {}),
            **timing,
            **describe(path),
        }
        return Artifact(kind="coreml-mlpackage", path=path, sha256=digest, cached=cached, details=details)

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        found = self.probe()
        if not found:
            raise UnavailableError(f"coreml-ane cannot run here: {found.explain()}")
        session = CoreMLSession(artifact.path)
        artifact.details.update(agreement(model, session))
        return session

    # stand_in: the base class's None. No faithful executor of an ML Program exists off Apple hardware.
