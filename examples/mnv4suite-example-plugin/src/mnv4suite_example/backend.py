"""A backend in a few lines: export once (cached by the suite), load, run."""

from __future__ import annotations

import numpy as np
import torch

from mnv4suite.api import Artifact, Backend, PreparedModel, Session


class TorchExportSession(Session):
    def __init__(self, path):
        self.module = torch.export.load(str(path)).module()
        self.accelerator = f"CPU (torch.export program, {torch.get_num_threads()} threads)"

    def run(self, inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(inputs)).numpy()


class TorchExportBackend(Backend):
    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def prepare(self, model: PreparedModel, cache, calibration=None) -> Artifact:
        shape = model.spec.input_shape(1)
        # Everything the artifact depends on goes into the key; the suite hashes it.
        key = {"model": model.spec.id, "weights": model.checksum, "format": "torch.export", "torch": torch.__version__,
               "input_shape": shape}

        def build(path):
            program = torch.export.export(model.module, (torch.zeros(shape),))
            torch.export.save(program, str(path))

        path, digest, cached = cache.fetch_or_build(key, ".pt2", build)
        return Artifact(kind="torch.export", path=path, sha256=digest, cached=cached)

    def load(self, artifact: Artifact, model: PreparedModel) -> Session:
        return TorchExportSession(artifact.path)
