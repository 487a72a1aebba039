"""A test-only plugin: a small real CNN at 32 px and a small RetinaNet-shaped detector at 64 px,
so end-to-end runs take seconds.

Loaded through $MNV4SUITE_PLUGINS, the same path a vendor uses while writing a plugin.
"""

from mnv4suite.api import Artifact, Availability, Backend, BackendSpec, ModelSpec, hookimpl

RESOLUTION = 32
DETECTOR_RESOLUTION = 64


def build(model_id: str, num_classes: int = 1000, weights=None):
    import torch
    from torch import nn

    module = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )
    if weights is not None:
        module.load_state_dict(torch.load(weights, weights_only=True))
    return module.eval()


def build_detector(model_id: str, num_classes: int = 80, weights=None):
    """Raw outputs in the suite's detector contract (1, A, 4 + classes): P3..P7 grids, 9 anchors each."""
    import torch
    from torch import nn

    class TinyDetector(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(  # stride 8 = P3
                nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                nn.Conv2d(16, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(),
                nn.Conv2d(24, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            )
            self.downs = nn.ModuleList(  # P4..P7
                nn.Sequential(nn.Conv2d(32, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()) for _ in range(4)
            )
            self.head = nn.Conv2d(32, 9 * (4 + num_classes), 3, 1, 1)
            self.outputs = 4 + num_classes

        def forward(self, x):
            x = self.stem(x)
            levels = [x]
            for down in self.downs:
                levels.append(down(levels[-1]))
            flat = [self.head(f).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.outputs) for f in levels]
            return torch.cat(flat, dim=1)

    module = TinyDetector()
    if weights is not None:
        module.load_state_dict(torch.load(weights, weights_only=True))
    return module.eval()


@hookimpl
def register_models():
    return [
        ModelSpec(
            id="tiny-det",
            builder="tinynet:build_detector",
            resolution=DETECTOR_RESOLUTION,
            num_classes=80,
            kind="detection",
            backbone="tiny-cnn",
            family="test",
            summary="test-only detector at 64 px in the RetinaNet output contract",
        ),
        ModelSpec(
            id="tiny-cnn",
            builder="tinynet:build",
            resolution=RESOLUTION,
            family="test",
            params=16 * 27 + 16 * 2 + 16 * 9 + 16 * 2 + 32 * 16 + 32 * 2 + 32 * 1000 + 1000,
            summary="test-only CNN at 32 px",
        )
    ]


class MissingNpuBackend(Backend):
    """Stands for an int8 accelerator that is never present: exercises the stand-in and estimate path."""

    def probe(self):
        return Availability.missing("no accelerator device node /dev/fake_npu0")

    def versions(self):
        import torch

        return {"torch": torch.__version__}

    def prepare(self, model, cache, calibration=None):
        assert calibration is not None and calibration.samples, "int8 backends get a calibration set"
        return Artifact(kind="torch-eager", payload=model.module, details={"calibration": calibration.source})

    def load(self, artifact, model):
        raise AssertionError("load() must not be called when the device is missing")

    def stand_in(self, artifact, model):
        from mnv4suite.plugins.pytorch.backend import TorchSession  # imports torch: only when used

        session = TorchSession(artifact.payload)
        session.accelerator = "CPU (PyTorch eager, standing in for the fake NPU)"
        return session


class LabNpuBackend(Backend):
    """A device that only some lab nodes hold: present where $MNV4SUITE_TEST_NPU is 1, which the lab
    tests set on one node of their Ray cluster (tests/lab). It runs the model in PyTorch eager."""

    def versions(self):
        import torch

        return {"torch": torch.__version__}

    def prepare(self, model, cache, calibration=None):
        return Artifact(kind="torch-eager", payload=model.module)

    def load(self, artifact, model):
        import os

        from mnv4suite.errors import UnavailableError
        from mnv4suite.plugins.pytorch.backend import TorchSession

        if os.environ.get("MNV4SUITE_TEST_NPU_FAULT") == "driver":  # one node's problem, as a user meets it
            raise UnavailableError("the test NPU's driver on this node refuses to load models "
                                   "(MNV4SUITE_TEST_NPU_FAULT=driver): update it, or run without this node")
        session = TorchSession(artifact.payload)
        session.accelerator = "test NPU (PyTorch eager)"
        return session


def probe_test_npu():
    import os

    if os.environ.get("MNV4SUITE_TEST_NPU") == "1":
        return Availability.ok()
    return Availability.missing("no test NPU on this node (MNV4SUITE_TEST_NPU is not 1)")


@hookimpl
def register_backends():
    return [
        BackendSpec(
            id="lab-npu",
            framework="torch",
            delegate="npu",
            precision="fp32",
            hardware="test-npu",
            implementation="tinynet:LabNpuBackend",
            probe_hook=probe_test_npu,
            ships_artifact=False,
            summary="test-only backend whose device only some lab nodes hold",
        ),
        BackendSpec(
            id="fake-npu",
            framework="torch",
            delegate="npu",
            precision="int8",
            hardware="pixel8_edgetpu",
            implementation="tinynet:MissingNpuBackend",
            probe_hook=lambda: Availability.missing("no accelerator device node /dev/fake_npu0"),
            ships_artifact=False,
            summary="test-only backend whose device is never present",
        )
    ]
