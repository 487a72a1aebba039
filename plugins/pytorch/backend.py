"""PyTorch backends: eager on the CPU (the reference), AOTInductor-compiled on the CPU, CUDA graphs.

All three run the same inference rewrite of the model (``optimize.py``): BatchNorm folded into
the preceding conv and channels-last memory format, checked against the unmodified module before
the artifact is used (``fold_check_max_abs_diff`` in the artifact details).

* ``pytorch-cpu``: the rewritten module in eager mode under ``torch.inference_mode``.
* ``pytorch-cpu-compiled``: ``torch.export`` of the rewritten module, compiled ahead of time by
  AOTInductor into a ``.pt2`` package (a zip holding a shared library and the weights), stored in
  the artifact cache. Building it takes seconds to tens of seconds and a C++ compiler; a cached
  package loads in milliseconds. The cache key holds everything the library depends on: torch
  version and git revision, the compiler, the CPU vector ISA inductor generated code for, the
  input shape and memory format, and the rewrite. Not the thread count: the generated OpenMP
  loops take it at run time (``#pragma omp parallel`` without ``num_threads``, checked on 2.13).
* ``pytorch-cuda``: the rewritten module on an NVIDIA GPU in fp32, captured in a CUDA graph per
  input shape and replayed per query (eager batch-1 inference is launch bound and would report the
  host's Python overhead as the GPU's latency). TF32 is switched off for convolutions and matmuls,
  so "fp32" means IEEE fp32 as on the CPU (PyTorch lets cuDNN convs use TF32 by default, which
  keeps only 10 mantissa bits). ``pytorch-cuda-fp16`` / ``-bf16``: the same graph in half precision.
  No stand-in when the GPU is missing: a CPU run of the same fp32 model is exactly what
  ``pytorch-cpu`` reports, under its own name.
"""

from __future__ import annotations

import platform
import subprocess
import time
import warnings
from typing import Any

import numpy as np
import torch

from mnv4suite.api import Artifact, Availability, Backend, PreparedModel, Session
from mnv4suite.errors import JobFailed, UnavailableError

from . import probes
from .optimize import optimize_for_inference

#: Bump when optimize.py changes what it produces: part of every compiled artifact's cache key.
REWRITE_VERSION = 1
#: Largest |folded - reference| accepted, relative to the reference logits' largest magnitude.
FOLD_RTOL = 1e-4
CHECK_SEED = 1234


def _threads() -> int:
    return torch.get_num_threads()


class TorchSession(Session):
    """A torch module answering NCHW float32 batches; channels-last modules get channels-last inputs."""

    def __init__(self, module: torch.nn.Module, channels_last: bool = False, device: str = "cpu",
                 accelerator: str | None = None, dtype: torch.dtype = torch.float32):
        self.module = module.eval()
        self.channels_last = channels_last
        self.device = torch.device(device)
        self.dtype = dtype
        self.threads = _threads() if self.device.type == "cpu" else None
        self.accelerator = accelerator or f"CPU (PyTorch eager, {_threads()} threads)"

    def run(self, inputs: np.ndarray) -> np.ndarray:
        # inference_mode is thread-local and LoadGen calls from its own thread: enter it per call.
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
            if self.device.type != "cpu":
                x = x.to(self.device, non_blocking=False)
            if self.dtype != torch.float32:
                x = x.to(self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = self.module(x)
            return out.float().cpu().numpy()  # .cpu() waits for the GPU: the query is complete


class CompiledSession(Session):
    """An AOTInductor package: the compiled model runs without Python, dynamo or guards."""

    def __init__(self, path: str, channels_last: bool = True):
        import torch._inductor  # noqa: F401 - aoti_load_package; a second of imports, so only here

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's LeafSpec deprecation, raised on load
            self.runner = torch._inductor.aoti_load_package(path)
        self.channels_last = channels_last
        self.threads = _threads()
        self.accelerator = f"CPU (PyTorch AOTInductor, {_threads()} threads)"

    def run(self, inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
            if self.channels_last:  # the package was compiled for these strides
                x = x.contiguous(memory_format=torch.channels_last)
            return self.runner(x).numpy()


def check_input_of_shape(shape: tuple[int, ...]) -> np.ndarray:
    """A seeded input (same every run, independent of global RNG state): photo-like images where the
    shape is an RGB image batch, since white noise drives trained weights to logits no photo gives (and
    float32, let alone bf16, is ill-conditioned there); noise for any other shape."""
    if len(shape) == 4 and shape[1] == 3 and shape[2] == shape[3] >= 16:
        from mnv4suite.reference_models.probe_images import natural_images

        return natural_images(shape[0], shape[2], seed=CHECK_SEED)
    return np.random.default_rng(CHECK_SEED).standard_normal(shape).astype(np.float32)


def check_input(model: PreparedModel, batch: int = 1) -> np.ndarray:
    return check_input_of_shape(tuple(model.spec.input_shape(batch)))


def reference_logits(model: PreparedModel, inputs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.module.eval()(torch.from_numpy(inputs)).float().numpy()


def check_against_reference(model: PreparedModel, session: Session, what: str,
                            rtol: float = FOLD_RTOL, precision: torch.dtype | None = None) -> dict[str, float]:
    """Max |diff| of the session's logits from the unmodified module's; raise if beyond tolerance.

    ``precision``: the session computes in a narrower float (bf16, fp16), whose own rounding through a
    deep network can exceed any fixed tolerance; then, before refusing, the session is judged against
    the unmodified module computing in that precision too, both measured from float64 arithmetic."""
    x = check_input(model)
    ref = reference_logits(model, x)
    if not np.isfinite(ref).all():
        raise JobFailed(f"{model.spec.id} (weights: {model.weights}) computes NaN or infinite logits on a seeded "
                        "check input: its weights overflow or are damaged, so there is nothing to benchmark")
    got = session.run(x)
    scale = float(np.max(np.abs(ref)))
    if not np.isfinite(got).all():
        raise JobFailed(f"{what} of {model.spec.id} computes NaN or infinite logits on a seeded check input, where the "
                        f"unmodified module's reach {scale:.3g}: the weights ({model.weights}) are too large for it "
                        "to compute in its precision, so there is nothing to benchmark")
    diff = float(np.max(np.abs(ref - got)))
    checked = {"check_max_abs_diff": diff, "check_max_abs_logit": scale}
    if diff <= rtol * max(scale, 1.0):
        return checked
    # Where float32 itself is ill-conditioned (trained weights on a noise input: large logits through attention),
    # the module is no exact answer either: measure both against float64 arithmetic on the same weights.
    exact = _float64_logits(model, x)
    module = _logits_in(model, x, precision) if precision is not None else ref
    own_error = float(np.max(np.abs(module - exact)))
    session_error = float(np.max(np.abs(got - exact)))
    if session_error <= 2 * own_error + rtol * max(scale, 1.0):
        return {**checked, "check_float64_error": session_error, "check_module_float64_error": own_error}
    itself = "the module itself" if precision is None else f"the module itself in {str(precision).removeprefix('torch.')}"
    raise RuntimeError(
        f"{what} of {model.spec.id} disagrees with the PyTorch module: max |diff| {diff:.3g} for logits up "
        f"to {scale:.3g} (tolerance {rtol:g} relative to the largest logit), and is {session_error:.3g} from "
        f"float64 arithmetic where {itself} is {own_error:.3g}. Refusing to benchmark a model that "
        "computes something else; please report this with the model id"
    )


def _float64_logits(model: PreparedModel, inputs: np.ndarray) -> np.ndarray:
    return _logits_in(model, inputs, torch.float64)


def _logits_in(model: PreparedModel, inputs: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """The unmodified module's logits with its weights and arithmetic in ``dtype``, on the CPU."""
    import copy

    with torch.inference_mode():
        module = copy.deepcopy(model.module).to(dtype).eval()
        return module(torch.from_numpy(inputs).to(dtype)).double().numpy()


class TorchCPUBackend(Backend):
    """What the CPU backends share: torch's version, and `--threads` as torch's intra-op thread count
    (process-wide, which is safe: a worker runs one job)."""

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def use_threads(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)


class PyTorchCPUBackend(TorchCPUBackend):
    """Eager PyTorch with BN folded, channels-last, inference mode: the reference backend."""

    def prepare(self, model: PreparedModel, cache, calibration=None) -> Artifact:
        self.use_threads()
        module, details = optimize_for_inference(model.module)
        session = TorchSession(module, channels_last=True)
        details.update({f"fold_{k}": v for k, v in check_against_reference(model, session, "the BN-folded model").items()})
        return Artifact(kind="torch-eager", payload=module,
                        details={"threads": _threads(), "inference_mode": True, **details})

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        self.use_threads()
        return TorchSession(artifact.payload, channels_last=artifact.details.get("memory_format") == "channels_last")


#: bf16 keeps 8 mantissa bits: logits agree with fp32 to about 1% of the largest one on seeded weights;
#: trained(-like) weights drift further (MNv4 6-17%), and then the bf16 model must be no further from
#: float64 than the unmodified module computing in bf16 (``check_against_reference``'s precision).
BF16_RTOL = 0.05


class PyTorchCPUBF16Backend(TorchCPUBackend):
    """The BN-folded channels-last module in bfloat16 (weights and activations): oneDNN runs it on AMX
    or AVX-512 BF16 where the CPU has them, and emulates bf16 (slowly) where it has neither."""

    def prepare(self, model: PreparedModel, cache, calibration=None) -> Artifact:
        self.use_threads()
        module, details = optimize_for_inference(model.module)
        module = module.to(torch.bfloat16)
        check = check_against_reference(model, self.load(Artifact(kind="torch-eager-bf16", payload=module), model),
                                        "the bf16 model", rtol=BF16_RTOL, precision=torch.bfloat16)
        details.update({f"bf16_{k}": v for k, v in check.items()})
        return Artifact(kind="torch-eager-bf16", payload=module,
                        details={"threads": _threads(), "dtype": "bfloat16", "isa": bf16_isa(), **details})

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        self.use_threads()
        return TorchSession(artifact.payload, channels_last=True, dtype=torch.bfloat16,
                            accelerator=f"CPU (PyTorch eager bf16, {bf16_isa()}, {_threads()} threads)")


def bf16_isa() -> str:
    """What oneDNN has for bf16 here, from the CPU flags (Linux); 'unknown' elsewhere."""
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        return "bf16 ISA unknown"
    if "amx_bf16" in flags:
        return "AMX-BF16"
    if "avx512_bf16" in flags:
        return "AVX-512 BF16"
    return "no bf16 instructions: emulated"


# --------------------------------------------------------------------------- AOTInductor


def compiler_version() -> str:
    """First line of `CXX --version`, e.g. 'g++ (Debian 12.2.0-14+deb12u1) 12.2.0'."""
    cxx = probes.find_cxx()
    if cxx is None:
        raise UnavailableError(probes.no_compiler_reason())
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise UnavailableError(f"cannot run the C++ compiler {cxx}: {exc}") from exc
    return f"{cxx}: {out.strip().splitlines()[0] if out.strip() else 'unknown'}"


def vector_isa() -> str:
    """The SIMD instruction set inductor generates code for on this CPU (e.g. 'avx512')."""
    try:
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        return str(pick_vec_isa()) or "none"
    except Exception as exc:  # noqa: BLE001 - private API; an unknown ISA still keys the cache safely
        return f"unknown ({type(exc).__name__})"


#: Inductor settings the package is built with (part of the cache key).
AOTI_CONFIGS: dict[str, Any] = {}


class PyTorchCPUCompiledBackend(TorchCPUBackend):
    """torch.export + AOTInductor: the rewritten model compiled to a shared library, cached on disk."""

    def cache_key(self, model: PreparedModel) -> dict[str, Any]:
        return {
            "model": model.spec.id,
            "weights": model.checksum,
            "precision": "fp32",
            "format": "aoti-package",
            "input_shape": model.spec.input_shape(1),
            "memory_format": "channels_last",
            "rewrite": REWRITE_VERSION,
            "torch": torch.__version__,
            "torch_git": torch.version.git_version,
            "compiler": compiler_version(),
            "vec_isa": vector_isa(),
            "machine": platform.machine(),
            "inductor_configs": AOTI_CONFIGS,
        }

    def prepare(self, model: PreparedModel, cache, calibration=None) -> Artifact:
        self.use_threads()
        key = self.cache_key(model)
        build_s: dict[str, float] = {}

        def build(tmp) -> None:
            import torch._inductor  # noqa: F401 - aoti_compile_and_package

            start = time.perf_counter()
            module, _ = optimize_for_inference(model.module)
            example = torch.zeros(model.spec.input_shape(1)).contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecation chatter (LeafSpec)
                try:
                    program = torch.export.export(module, (example,))
                    torch._inductor.aoti_compile_and_package(
                        program, package_path=str(tmp), inductor_configs=dict(AOTI_CONFIGS)
                    )
                except Exception as exc:
                    first = (str(exc).strip().splitlines() or [""])[0][:300]
                    raise RuntimeError(
                        f"torch.export + AOTInductor (torch {torch.__version__}, {key['compiler']}) could not compile "
                        f"{model.spec.id}: {type(exc).__name__}: {first}. The eager backend 'pytorch-cpu' runs any model"
                    ) from exc
            build_s["compile_s"] = round(time.perf_counter() - start, 2)

        path, digest, cached = cache.fetch_or_build(key, ".pt2", build)
        check = check_against_reference(model, CompiledSession(str(path)), "the AOTInductor package")
        details = {"threads": _threads(), "vec_isa": key["vec_isa"], "compiler": key["compiler"],
                   "memory_format": "channels_last", **build_s, **check}
        return Artifact(kind="aoti-package", path=path, sha256=digest, cached=cached, details=details)

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        self.use_threads()
        return CompiledSession(str(artifact.path))


# --------------------------------------------------------------------------- CUDA


def set_ieee_fp32() -> None:
    """No TF32 in convolutions or matmuls: fp32 means fp32."""
    cudnn_conv = getattr(torch.backends.cudnn, "conv", None)
    if cudnn_conv is not None and hasattr(cudnn_conv, "fp32_precision"):  # torch >= 2.9
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def cuda_availability() -> Availability:
    """The full check: a CUDA build of torch that sees a GPU, and which GPU."""
    reasons = []
    if torch.version.cuda is None:
        reasons.append(probes.cpu_build_reason(torch.__version__))
    if not probes.nvidia_device_present():
        reasons.append(probes.NO_NVIDIA_DEVICE)
    elif torch.version.cuda is not None and not torch.cuda.is_available():
        reasons.append(
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable NVIDIA device "
            "(torch.cuda.is_available() is False: the driver may be missing or older than this CUDA build)"
        )
    if reasons:
        return Availability.missing(*reasons)
    index = torch.cuda.current_device()
    name = torch.cuda.get_device_name(index)
    major, minor = torch.cuda.get_device_capability(index)
    return Availability.ok(f"cuda:{index} {name} (compute capability {major}.{minor}, CUDA {torch.version.cuda})")


class CUDAGraphSession(Session):
    """The module captured in one CUDA graph per input shape and replayed per query.

    Eager batch-1 inference on a GPU is bound by kernel launches (hundreds per MNv4 model), so eager
    timing reports the launch overhead of the host, not the GPU. A graph launches the whole model at
    once. Each query still pays the full trip: host array -> pinned buffer -> device input (copy in the
    graph's stream), replay, device output -> pinned buffer, synchronize. The dtype cast and the
    channels-last reorder are captured inside the graph, so fp16/bf16 sessions take fp32 inputs as
    every other session does. Every captured graph is checked against the eager module on the same
    input before it answers a query.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device, dtype: torch.dtype, channels_last: bool,
                 accelerator: str, check_rtol: float = FOLD_RTOL):
        self.module = module.eval()
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        self.accelerator = accelerator
        self.check_rtol = check_rtol
        self.threads = None
        self.stream = torch.cuda.Stream(device=device)
        self.graphs: dict[tuple[int, ...], _CapturedGraph] = {}
        #: max |graph - eager| per captured shape, for the artifact's details
        self.checks: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype != torch.float32:
            x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.module(x).float()

    def capture(self, shape: tuple[int, ...]) -> "_CapturedGraph":
        """Warm up (cuDNN picks its algorithms, lazy inits happen), capture, check against eager."""
        with torch.cuda.device(self.device), torch.no_grad():
            captured = _CapturedGraph(self, shape)
            x = check_input_of_shape(shape)
            eager = self.forward(torch.from_numpy(x).to(self.device)).cpu().numpy()
            got = captured.replay(x)
        diff = float(np.max(np.abs(eager - got)))
        scale = float(np.max(np.abs(eager)))
        if not diff <= self.check_rtol * max(scale, 1.0):
            raise RuntimeError(f"the CUDA graph for input {shape} disagrees with the eager module on the GPU: max "
                               f"|diff| {diff:.3g} for logits up to {scale:.3g}. Refusing to time a graph that "
                               "computes something else; please report this with the model id")
        self.checks[f"graph_vs_eager_max_abs_diff_batch{shape[0]}"] = diff
        self.graphs[shape] = captured
        return captured

    def run(self, inputs: np.ndarray) -> np.ndarray:
        captured = self.graphs.get(inputs.shape) or self.capture(tuple(inputs.shape))
        return captured.replay(inputs)


class _CapturedGraph:
    """Static buffers of one captured shape: pinned host in/out, device in/out, the graph itself."""

    WARMUP_RUNS = 3

    def __init__(self, session: CUDAGraphSession, shape: tuple[int, ...]):
        self.stream = session.stream
        self.host_in = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        self.device_in = torch.zeros(shape, dtype=torch.float32, device=session.device)
        # Warm-up on the capture stream, as torch.cuda.graph requires of code it has not seen run.
        self.stream.wait_stream(torch.cuda.current_stream(session.device))
        with torch.cuda.stream(self.stream):
            for _ in range(self.WARMUP_RUNS):
                session.forward(self.device_in)
        self.stream.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=self.stream):
            self.device_out = session.forward(self.device_in)
        self.host_out = torch.empty(self.device_out.shape, dtype=torch.float32, pin_memory=True)
        self.host_in_np, self.host_out_np = self.host_in.numpy(), self.host_out.numpy()

    def replay(self, inputs: np.ndarray) -> np.ndarray:
        np.copyto(self.host_in_np, inputs, casting="same_kind")
        with torch.cuda.stream(self.stream):
            self.device_in.copy_(self.host_in, non_blocking=True)
            self.graph.replay()
            self.host_out.copy_(self.device_out, non_blocking=True)
        self.stream.synchronize()  # the query is complete when its logits are in host memory
        return self.host_out_np.copy()


class PyTorchCUDABackend(Backend):
    """PyTorch on an NVIDIA GPU, fp32 (IEEE, no TF32), BN folded, channels-last, replayed as CUDA graphs."""

    dtype = torch.float32
    #: logits against the fp32 CPU reference, relative to the largest logit
    rtol = FOLD_RTOL
    label = "fp32, TF32 off"

    def probe(self) -> Availability:
        found = self.spec.requirements()
        return cuda_availability() if found else found

    def versions(self) -> dict[str, str]:
        found = {"torch": torch.__version__}
        if torch.version.cuda:
            found["cuda"] = torch.version.cuda
            if torch.backends.cudnn.is_available():
                found["cudnn"] = str(torch.backends.cudnn.version())
        return found

    def prepare(self, model: PreparedModel, cache, calibration=None) -> Artifact:
        # Device-free: the rewrite is checked on the CPU; the module moves to the GPU in load().
        module, details = optimize_for_inference(model.module)
        check = check_against_reference(model, TorchSession(module, channels_last=True), "the BN-folded model")
        details.update({f"fold_{k}": v for k, v in check.items()})
        return Artifact(kind="torch-cuda-graph", payload=module,
                        details={"dtype": str(self.dtype).removeprefix("torch."), "execution": "CUDA graph replay",
                                 **({"fp32": "IEEE (TF32 off)"} if self.dtype == torch.float32 else {}), **details})

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        found = cuda_availability()
        if not found:
            raise UnavailableError(f"{self.spec.id} cannot run here: {found.explain()}")
        set_ieee_fp32()
        torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest algorithms once
        device = torch.device("cuda", torch.cuda.current_device())
        module = artifact.payload.to(device=device, dtype=self.dtype)
        session = CUDAGraphSession(
            module, device, self.dtype, channels_last=artifact.details.get("memory_format") == "channels_last",
            accelerator=f"GPU ({found.notes[0]}; PyTorch {self.label}, CUDA graph replay)",
        )
        for batch in dict.fromkeys((1, self.batch)):  # capture now, not in the first query
            session.capture(tuple(model.spec.input_shape(batch)))
        # The GPU's logits against the CPU reference: recorded with the artifact, raised on disagreement.
        narrow = None if self.dtype == torch.float32 else self.dtype
        check = check_against_reference(model, session, "the model on the GPU", rtol=self.rtol, precision=narrow)
        artifact.details.update({f"gpu_{k}": v for k, v in check.items()}, **session.checks)
        return session


#: fp16 keeps 10 mantissa bits, bf16 8: logits agree with fp32 to about 1% of the largest (as BF16_RTOL,
#: and judged the same way where they do not).
HALF_RTOL = 0.05


class PyTorchCUDAFP16Backend(PyTorchCUDABackend):
    """The same graph in float16: tensor cores, half the bytes moved."""

    dtype = torch.float16
    rtol = HALF_RTOL
    label = "fp16"


class PyTorchCUDABF16Backend(PyTorchCUDABackend):
    """The same graph in bfloat16: fp32's range, tensor cores (Ampere and later)."""

    dtype = torch.bfloat16
    rtol = HALF_RTOL
    label = "bf16"
