"""Built-in plugin: PyTorch backends. Declares specs only; `backend` holds the implementation."""

from mnv4suite.api import BackendSpec, Requirement, hookimpl

TORCH = Requirement("torch", "pip install 'mnv4suite[torch]' -c constraints.txt")


@hookimpl
def register_backends():
    return [
        BackendSpec(
            id="pytorch-cpu",
            framework="torch",
            delegate="cpu",
            precision="fp32",
            hardware="host-cpu",
            implementation="mnv4suite.plugins.pytorch.backend:PyTorchCPUBackend",
            requires=(TORCH,),
            summary="PyTorch eager in inference mode on the host CPU",
        )
    ]
