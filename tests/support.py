"""Helpers shared by tests: generated datasets in the real on-disk formats."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_image_folder(root: Path, classes: list[str], per_class: int, size: int = 40) -> Path:
    """An ImageFolder-style dataset of small JPEGs with class-dependent colours."""
    from PIL import Image

    for ci, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            colour = ((37 * ci + 11 * i) % 256, (91 * ci) % 256, (53 * i) % 256)
            Image.new("RGB", (size + i, size), colour).save(folder / f"img_{ci}_{i}.JPEG", quality=90)
    return root
