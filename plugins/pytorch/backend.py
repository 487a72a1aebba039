"""PyTorch eager on the CPU: the reference every other backend is compared with."""

from __future__ import annotations

import numpy as np
import torch

from mnv4suite.api import Artifact, Backend, PreparedModel, Session


class TorchSession(Session):
    def __init__(self, module: torch.nn.Module):
        self.module = module.eval()
        self.accelerator = f"CPU (PyTorch eager, {torch.get_num_threads()} threads)"

    def run(self, inputs: np.ndarray) -> np.ndarray:
        # inference_mode is thread-local and LoadGen calls from its own thread: enter it per call.
        with torch.inference_mode():
            return self.module(torch.from_numpy(inputs)).numpy()


class PyTorchCPUBackend(Backend):
    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def prepare(self, model: PreparedModel, cache, calibration=None) -> Artifact:
        return Artifact(kind="torch-eager", payload=model.module, details={"threads": torch.get_num_threads()})

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        return TorchSession(artifact.payload)
