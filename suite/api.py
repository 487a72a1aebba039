"""The contract between the core and its plugins.

Plugins hand the core *specs*: small frozen records that say what they offer and where the
implementation lives ("module:attribute"). The core imports an implementation only when a run
needs it, so discovery (`mnv4suite list`) never pays for torch, tensorflow or onnxruntime.

Built-in and third-party plugins use exactly these types; nothing here imports a framework.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pluggy

PROJECT = "mnv4suite"
hookimpl = pluggy.HookimplMarker(PROJECT)


def load_object(path: str) -> Any:
    """Import "package.module:attribute" on demand."""
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


# --------------------------------------------------------------------------- availability


@dataclass(frozen=True)
class Requirement:
    """A Python module a plugin needs, and how a user gets it."""

    module: str
    install: str  # what to tell the user, e.g. "pip install 'mnv4suite[onnx]'"

    def missing(self) -> str | None:
        # find_spec on a top-level name locates the package without executing it.
        if importlib.util.find_spec(self.module) is None:
            return _not_installed([self.module], self.install)
        return None


def _not_installed(modules: Sequence[str], install: str) -> str:
    names = [f"'{m}'" for m in modules]
    if len(names) == 1:
        return f"Python package {names[0]} is not installed ({install})"
    return f"Python packages {', '.join(names[:-1])} and {names[-1]} are not installed ({install})"


@dataclass(frozen=True)
class Availability:
    """Whether something can run here; if not, every reason why."""

    available: bool
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # true but not blocking, e.g. "runs on 2 threads"

    @classmethod
    def ok(cls, *notes: str) -> "Availability":
        return cls(True, (), tuple(notes))

    @classmethod
    def missing(cls, *reasons: str) -> "Availability":
        return cls(False, tuple(reasons))

    def __bool__(self) -> bool:
        return self.available

    def explain(self) -> str:
        return "available" if self.available else "; ".join(self.reasons)


def install_command(*extras: str) -> str:
    """The one way the suite tells a user to install extras: through the pinned constraints file."""
    return f"pip install -c constraints.txt 'mnv4suite[{','.join(sorted(set(extras)))}]'"


_EXTRAS = re.compile(r"pip install -c constraints\.txt 'mnv4suite\[([a-z0-9_,-]+)\]'")


def merge_installs(reasons: Iterable[str]) -> list[str]:
    """One ``install_command`` for every suite extra the reasons ask for, then any other command as given."""
    extras: set[str] = set()
    for reason in reasons:
        for group in _EXTRAS.findall(reason):
            extras.update(group.split(","))
    return [install_command(*extras)] if extras else []


def check_requirements(requirements: Iterable[Requirement]) -> Availability:
    """Every missing requirement, those one install command brings named together with it once."""
    missing: dict[str, list[str]] = {}
    for req in requirements:
        if req.missing():
            missing.setdefault(req.install, []).append(req.module)
    reasons = [_not_installed(modules, install) for install, modules in missing.items()]
    return Availability.missing(*reasons) if reasons else Availability.ok()


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSpec:
    """A model the suite can run. `builder` returns an eval-mode torch.nn.Module."""

    id: str
    builder: str  # "module:function"; called as builder(model_id, num_classes=..., weights=...)
    resolution: int
    num_classes: int = 1000
    kind: str = "classification"  # which tasks can use it
    family: str = ""
    params: int | None = None
    macs: int | None = None
    aliases: tuple[str, ...] = ()
    summary: str = ""
    published: dict[str, Any] = field(default_factory=dict)  # e.g. {"top1": 73.8, "source": "..."}
    requires: tuple[Requirement, ...] = ()
    #: Pareto baselines run when named; a run that names no model takes the others.
    baseline: bool = False
    #: For a detector: the classifier whose body it uses, so `--task coco --model mnv4-conv-m` finds it.
    backbone: str | None = None
    #: The centre-crop fraction its accuracy is evaluated with (timm's crop_pct: the shorter side is
    #: resized to resolution / crop_pct first); a checkpoint's published top-1 holds only at its own.
    crop_pct: float = 0.875

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, 3, self.resolution, self.resolution)

    def build(self, num_classes: int | None = None, weights: str | Path | None = None):
        builder = load_object(self.builder)
        return builder(self.id, num_classes=num_classes or self.num_classes, weights=weights)


# --------------------------------------------------------------------------- backends


class Session(abc.ABC):
    """A prepared model ready to answer queries: the thing LoadGen times."""

    #: What actually executed the model, e.g. "CPU (XNNPACK, 2 threads)". Never the wish, the fact.
    accelerator: str = "cpu"
    #: Operators the delegate handed back to the CPU (empty when the delegate ran everything).
    cpu_fallback_ops: Sequence[str] = ()
    #: CPU threads the session runs with (None where a device runs the model).
    threads: int | None = None

    @abc.abstractmethod
    def run(self, inputs: np.ndarray) -> np.ndarray:
        """One inference on an NCHW float32 batch; returns the model's raw output."""


@dataclass
class Artifact:
    """What a backend prepared for the device: a file on disk, or an in-memory model."""

    kind: str  # "onnx", "tflite", "torch-eager", ...
    path: Path | None = None
    sha256: str | None = None
    cached: bool = False  # True when reused from the artifact cache
    details: dict[str, Any] = field(default_factory=dict)
    payload: Any = None  # in-memory object (e.g. a torch module); never serialised


@dataclass
class PreparedModel:
    """A model ready for a backend: spec, built module and weight provenance."""

    spec: ModelSpec
    module: Any  # torch.nn.Module in eval mode
    weights: str  # file path, hub name or "random-init (seed N)"
    checksum: str  # sha256 over the state dict, so results name the exact weights


@dataclass
class CalibrationSet:
    """Representative inputs for post-training int8 quantization, taken from the task's data.

    Real data whenever the user gave some: random calibration costs int8 models many points of
    accuracy. Without data the set is the task's synthetic inputs, and says so.
    """

    source: str  # e.g. "imagenet at /data/val: 128 evenly spaced samples"
    synthetic: bool
    samples: list[np.ndarray]  # pre-processed NCHW float32 inputs, batch 1

    @property
    def digest(self) -> str:
        """Content hash, part of the artifact cache key of every calibrated artifact."""
        import hashlib

        h = hashlib.sha256(self.source.encode())
        for sample in self.samples:
            h.update(np.ascontiguousarray(sample, dtype=np.float32).tobytes())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "samples": len(self.samples), "synthetic": self.synthetic, "sha256": self.digest}


def available_cores() -> int:
    """The cores this process may run on (its affinity mask: a container's share, not the host's count)."""
    import os

    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class Backend(abc.ABC):
    """A framework x delegate pair. Subclasses import their framework lazily."""

    def __init__(self, spec: "BackendSpec"):
        self.spec = spec
        #: CPU threads the run asked for (`--threads`); None: the backend's own default
        self.threads: int | None = None
        #: samples per inference the session will be given (Offline batches; see BackendSpec.offline_batch)
        self.batch: int = 1

    def thread_count(self) -> int:
        """Threads for a CPU session: the run's setting, else one per core this process may use."""
        return self.threads or available_cores()

    def probe(self) -> Availability:
        """Can the device run here? Allowed to import the framework and look for libraries/devices."""
        return self.spec.probe()

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of every framework library this backend uses."""

    @abc.abstractmethod
    def prepare(self, model: PreparedModel, cache: "ArtifactCacheLike", calibration: CalibrationSet | None = None) -> Artifact:
        """Export/convert/quantize the model for this backend (cached). Must work without the device.

        `calibration` is given to int8 backends: quantize with it, never with random noise."""

    @abc.abstractmethod
    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        """Turn an artifact into a session on the real device."""

    def stand_in(self, artifact: Artifact, model: PreparedModel) -> Session | None:
        """When the device is missing: the nearest faithful executor of the same artifact (the int8
        model on the CPU interpreter, a vendor emulator), used for accuracy only. Its latency is never
        reported as the device's. None when there is no faithful executor."""
        return None


class ArtifactCacheLike(abc.ABC):
    """What backends need from the artifact cache (see mnv4suite.cache)."""

    @abc.abstractmethod
    def fetch_or_build(self, key: dict[str, Any], suffix: str, build: Callable[[Path], None]) -> tuple[Path, str, bool]:
        """Return (path, sha256, was_cached); `build(tmp_path)` writes the file when missing."""


@dataclass(frozen=True)
class BackendSpec:
    """A backend as discovery sees it: id, what it stands for, how to load it."""

    id: str
    framework: str
    delegate: str
    precision: str  # fp32 | fp16 | int8
    hardware: str  # id of the device profile it stands for
    implementation: str  # "module:Class", a Backend subclass
    requires: tuple[Requirement, ...] = ()
    summary: str = ""
    #: cheap extra probe (shared library, device node) that must not import a framework
    probe_hook: Callable[[], Availability] | None = None
    #: cheap check of a model: None when this backend can run it, else the reason it cannot
    supports: Callable[[ModelSpec], str | None] | None = None
    #: the artifact is a file that runs on any machine with the runtime, so a lab may build it once on
    #: one node and ship it to the others (False: in-memory, or compiled for the host that built it)
    ships_artifact: bool = True
    #: taken by a run that names no backend; precision variants of a backend run when named
    in_default_run: bool = True
    #: samples per inference in the Offline scenario unless --batch says otherwise; 1: sessions take
    #: batch 1 only (a file exported or compiled for it)
    offline_batch: int = 1
    #: a reduced-precision variant's fp32 backend: a run measuring accuracy adds its accuracy job, so
    #: the variant's accuracy is reported against fp32 of the same weights on the same samples
    fp32_reference: str | None = None
    #: who makes the runtime (MLPerf Mobile's backend vendor); empty: known from the framework
    vendor: str = ""
    #: seconds a cold-cache prepare() of a MobileNet-sized model takes on a 2-core machine, (low, high);
    #: a run with many such conversions says so up front. None: quick (eager, or an export of seconds)
    cold_prepare_s: tuple[float, float] | None = None

    def variant(self, precision: str, summary: str, implementation: str | None = None) -> "BackendSpec":
        """The same backend at another precision (`<id>-<precision>`): same runtime, device, probes and
        batching, run only when named, its accuracy compared with this fp32 backend's."""
        return replace(self, id=f"{self.id}-{precision}", precision=precision, summary=summary,
                       implementation=implementation or self.implementation, in_default_run=False,
                       fp32_reference=self.id)

    def unsupported(self, model: ModelSpec) -> str | None:
        return self.supports(model) if self.supports is not None else None

    def requirements(self) -> Availability:
        """Packages needed to prepare the artifact at all (convert, quantize, stand in)."""
        return check_requirements(self.requires)

    def probe(self) -> Availability:
        """Requirements, then the runtime and device (cheap: no framework import)."""
        found = self.requirements()
        if found and self.probe_hook is not None:
            return self.probe_hook()
        return found

    def create(self) -> Backend:
        return load_object(self.implementation)(self)


# --------------------------------------------------------------------------- tasks


class Dataset(abc.ABC):
    """The query sample library: pre-processed inputs held in memory, as MLPerf allows."""

    name: str = ""
    #: how many samples were skipped as unreadable, with (file, reason) for each
    skipped: list[tuple[str, str]]

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @property
    def synthetic(self) -> bool:
        return False

    def info(self) -> dict[str, Any]:
        """Provenance for the result file (layout, label or annotation file, selection, cache)."""
        return {}

    def performance_count(self) -> int:
        """How many samples LoadGen keeps in RAM for performance runs."""
        return min(len(self), 1024)

    def load(self, indices: Sequence[int]) -> None:
        """Bring these samples into memory before timing starts."""

    def unload(self, indices: Sequence[int]) -> None:
        """Release samples LoadGen no longer needs."""

    @abc.abstractmethod
    def get(self, index: int) -> np.ndarray:
        """The pre-processed NCHW float32 input (batch 1) of one sample."""


class Task(abc.ABC):
    """Data, post-processing and metric: identical for every backend."""

    #: numpy type of the payload's elements, as MLCommons' compliance scripts take it (`--dtype`)
    payload_dtype: str = "byte"

    def __init__(self, spec: "TaskSpec"):
        self.spec = spec

    @abc.abstractmethod
    def dataset(self, model: ModelSpec, data: Path | None, count: int | None = None, on_error: str = "stop",
                cache_dir: Path | None = None) -> Dataset:
        """Real data from `data`, or a synthetic input-shaped set when `data` is None.

        `count`: a deterministic subset; `on_error`: "stop" at the first unusable file or "skip" and
        count it; `cache_dir`: where pre-processed inputs may be kept between runs (None: nowhere)."""

    @abc.abstractmethod
    def encode(self, outputs: np.ndarray, index: int, dataset: Dataset) -> bytes:
        """Post-process the raw model outputs of sample `index` into its LoadGen accuracy-log payload.

        The sample and its dataset are given because a payload may depend on them: MLPerf's detection
        payload carries the sample index and boxes relative to the original image's size."""

    @abc.abstractmethod
    def metric(self, payloads: dict[int, bytes], dataset: Dataset) -> dict[str, Any]:
        """Accuracy from the payloads LoadGen logged, keyed by sample index."""

    def mlcommons_files(self, dataset: Dataset, log_dir: Path) -> str | None:
        """Write beside the accuracy log what MLCommons' own accuracy script needs to score it unmodified
        (a label or annotation file of exactly the run's samples, in sample order), and return the
        command that scores it, run in `log_dir`. None: the task has no such script."""
        return None


@dataclass(frozen=True)
class TaskSpec:
    id: str
    implementation: str  # "module:Class", a Task subclass
    model_kind: str = "classification"
    metrics: tuple[str, ...] = ()
    summary: str = ""
    requires: tuple[Requirement, ...] = ()

    def probe(self) -> Availability:
        return check_requirements(self.requires)

    def create(self) -> Task:
        return load_object(self.implementation)(self)


# --------------------------------------------------------------------------- hardware


@dataclass(frozen=True)
class Runtime:
    """What a device's runtime does to a model before its hardware runs it. A roofline that ignores it
    times the model the runtime was given, not the one it ran: a rejected op splits the graph, a
    depthwise conv without a kernel of its own runs a slow general one, padding moves more bytes."""

    #: op classes its delegate rejects: they, and every piece of the graph but the largest run of
    #: accepted ops, run on the CPU (roofline.CPU_FALLBACK), timed at the "cpu_fallback" class peak
    delegate_rejects: tuple[str, ...] = ()
    #: (kernel, stride) of the depthwise convs it has a kernel of its own for; the others run on its
    #: general kernel ("general_depthwise"). None: windows narrower than 7 (roofline.op_class)
    dedicated_depthwise: tuple[tuple[int, int], ...] | None = None
    #: bytes it pads the last axis of every activation tensor to (0: packed), so an op moves more than
    #: its elements: roofline.laid_out
    last_axis_alignment_bytes: int = 0

    def __post_init__(self) -> None:  # lists from a plugin become values that compare and hash
        object.__setattr__(self, "delegate_rejects", tuple(self.delegate_rejects))
        if self.dedicated_depthwise is not None:
            object.__setattr__(self, "dedicated_depthwise",
                               tuple(sorted((int(k), int(s)) for k, s in self.dedicated_depthwise)))


@dataclass(frozen=True)
class DeviceProfile:
    """A hardware target. Figures carry their provenance: published, derived, fitted or measured."""

    id: str
    name: str
    kind: str  # cpu | gpu | dsp | npu | edgetpu
    ridge_point: float | None = None  # MACs per byte where compute and memory time meet
    peak_macs_per_s: float | None = None
    bandwidth_bytes_per_s: float | None = None
    source: str = ""
    notes: str = ""
    #: the typical error of its estimates: median |estimate - measured| / measured, in percent, of
    #: models held out of the fit (nested leave-one-out); None when never validated
    typical_error_pct: float | None = None
    #: Spearman rank correlation of those held-out estimates with the measured latencies
    held_out_spearman: float | None = None
    #: its 5th-95th percentiles for measured latencies anywhere within their published rounding
    held_out_spearman_within_rounding: tuple[float, float] | None = None
    #: fixed time per inference on top of the layers' roofline time (dispatch, synchronisation)
    overhead_s: float = 0.0
    #: time per launched layer (conv, linear, attention: an accelerator's per-op launch cost; element-wise
    #: ops are fused into the layer before them)
    dispatch_s: float = 0.0
    #: (op class, effective peak MACs/s) for classes the device runs at their own speed (depthwise,
    #: attention, ...; roofline.OP_CLASSES); the others run at ``peak_macs_per_s``, a class without its
    #: own at its parent's (roofline.PARENT) where that has one
    class_peaks: tuple[tuple[str, float], ...] = ()
    #: ops its runtime cannot run ("gelu", "layernorm", "attention"): a model with one is "Failed", as Table 6 says
    unsupported_ops: tuple[str, ...] = ()
    #: what its runtime does to a model before the hardware runs it (which ops it hands back to the CPU,
    #: which kernels it has, how it lays tensors out)
    runtime: Runtime = Runtime()
