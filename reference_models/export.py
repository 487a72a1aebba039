"""Exporting the PyTorch reference models for other runtimes."""

from __future__ import annotations

from pathlib import Path

#: The lowest opset torch.onnx's exporter implements natively; asking for 17 triggers a lossy down-conversion.
ONNX_OPSET = 18


def exporter_version() -> dict[str, str]:
    import torch

    return {"torch": torch.__version__}


def export_onnx(module, input_shape: tuple[int, ...], path: Path, opset: int = ONNX_OPSET, dynamic_batch: bool = False) -> Path:
    """Export `module` to a single self-contained ONNX file (weights inside, no external data)."""
    import logging
    import warnings

    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # its per-op chatter drowns the run's progress
    example = torch.zeros(input_shape, dtype=torch.float32)
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            module.eval(),
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=dynamic_shapes,
            external_data=False,
            verbose=False,
        )
    program.save(str(path), external_data=False)
    return Path(path)
