"""The entry point mnv4suite loads at discovery: specs only, so `mnv4suite list` stays fast.

Implementations are named by "module:Class" and imported only when a run uses them.
"""

from mnv4suite import BackendSpec, Requirement, TaskSpec, hookimpl

TORCH = Requirement("torch", "pip install 'mnv4suite[torch]' -c constraints.txt")


@hookimpl
def register_backends():
    return [
        BackendSpec(
            id="acme-torchexport-cpu",
            framework="torch",
            delegate="cpu",
            precision="fp32",
            hardware="host-cpu",
            implementation="mnv4suite_example.backend:TorchExportBackend",
            requires=(TORCH,),
            summary="Example plugin: a torch.export program (.pt2), cached on disk, run on the CPU",
        )
    ]


@hookimpl
def register_tasks():
    return [
        TaskSpec(
            id="imagenette",
            implementation="mnv4suite_example.imagenette:ImagenetteTask",
            model_kind="classification",
            metrics=("top1",),
            summary="Example plugin: Imagenette (10 ImageNet classes), top-1 of an ImageNet-1k model",
        )
    ]
