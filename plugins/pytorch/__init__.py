"""Built-in plugin: PyTorch backends. Declares specs only; `backend` holds the implementation.

The probe hooks live in `probes` and never import torch (`mnv4suite list` stays fast).
"""

from mnv4suite.api import BackendSpec, Requirement, hookimpl, install_command

from .probes import probe_compiler, probe_cuda

TORCH = Requirement("torch", install_command("torch"))
IMPL = "mnv4suite.plugins.pytorch.backend"


@hookimpl
def register_backends():
    cpu = BackendSpec(
        id="pytorch-cpu",
        framework="torch",
        delegate="cpu",
        precision="fp32",
        hardware="host-cpu",
        implementation=f"{IMPL}:PyTorchCPUBackend",
        requires=(TORCH,),
        ships_artifact=False,  # the module itself, built in the worker
        offline_batch=8,
        summary="PyTorch eager on the host CPU: BN folded into convs, channels-last, inference mode",
    )
    cuda = BackendSpec(
        id="pytorch-cuda",
        framework="torch",
        delegate="cuda",
        precision="fp32",
        hardware="cuda-gpu",
        implementation=f"{IMPL}:PyTorchCUDABackend",
        requires=(TORCH,),
        probe_hook=probe_cuda,
        ships_artifact=False,
        offline_batch=256,
        summary="PyTorch on an NVIDIA GPU, one CUDA graph replayed per query, fp32 without TF32, BN folded, "
                "channels-last",
    )
    return [
        cpu,
        cpu.variant("bf16", implementation=f"{IMPL}:PyTorchCPUBF16Backend",
                    summary="PyTorch eager on the host CPU in bfloat16 (AMX / AVX-512 BF16 through oneDNN), BN folded, "
                            "channels-last"),
        BackendSpec(
            id="pytorch-cpu-compiled",
            framework="torch",
            delegate="cpu",
            precision="fp32",
            hardware="host-cpu",
            implementation=f"{IMPL}:PyTorchCPUCompiledBackend",
            requires=(TORCH,),
            probe_hook=probe_compiler,
            ships_artifact=False,  # C++ compiled for the building host's vector ISA and compiler
            summary="PyTorch AOTInductor on the host CPU: torch.export + C++ compile, package cached on disk",
        ),
        cuda,
        *(cuda.variant(precision, implementation=f"{IMPL}:PyTorchCUDA{precision.upper()}Backend",
                       summary=f"PyTorch on an NVIDIA GPU in {name}, one CUDA graph replayed per query, BN folded, "
                               "channels-last")
          for precision, name in (("fp16", "float16"), ("bf16", "bfloat16"))),
    ]
