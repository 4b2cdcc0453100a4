"""A tiny dataset in the documented npz layout: two coloured squares on a grey background per image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def two_square_images(n: int, rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Images with two coloured squares on a grey background, and their masks (0 bg, 1 and 2 the squares)."""
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        images[i] = rng.uniform(0.3, 0.7, size=(3, 1, 1))
        for label in (1, 2):
            r, c = rng.integers(0, size - 20, size=2)
            images[i, :, r : r + 20, c : c + 20] = rng.uniform(0, 1, size=(3, 1, 1))
            masks[i, r : r + 20, c : c + 20] = label
    return images, masks


def write_tiny_dataset(data_dir: Path, name: str = "dKanizsa", counts: Sequence[int] = (32, 8, 6, 6)) -> Path:
    """Write train/valid/test_1/test npz files in the documented layout; return the dataset folder."""
    rng = np.random.default_rng(0)
    folder = data_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in zip(("train", "valid", "test_1", "test"), counts, strict=True):
        images, masks = two_square_images(n, rng)
        arrays = {"images": images}
        if split.startswith("test"):
            arrays["masks"] = masks
        np.savez(folder / f"{split}.npz", **arrays)
    return folder
