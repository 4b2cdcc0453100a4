"""Shared fixtures: a tiny dataset on disk and composed configs pointing at it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

if TYPE_CHECKING:
    from tests.fault_harness import Zygote
    from tests.fault_scenarios import Reference

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


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


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("data")
    write_tiny_dataset(data_dir)
    return data_dir


def compose_config(name: str, overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """Compose ``conf/<name>.yaml`` like the entry point does, with the Hydra-only paths filled in."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO)
        cfg.paths.output_dir = str(output_dir)
    return cfg


TINY_TRAIN = [
    "data=kanizsa",
    "data.batch_size=8",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.checkpoint.every_n_train_steps=2",
    "callbacks.reconstructions.every_n_steps=2",
    "callbacks.curves.every_n_steps=2",
    "model.z_dim=4",
]

TINY_SEGMENT = [
    "test_num=4",
    "noise.perturb_num=6",
    "clustering.backend.workers=1",
    "batch_size=3",
    "figures_num=3",
]


@pytest.fixture(scope="session")
def trained_run(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training run directory (4 steps on the tiny dataset) to segment."""
    from lns.train import train

    run_dir = tmp_path_factory.mktemp("trained")
    train(compose_config("train", [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", "logger=none"], run_dir))
    return run_dir


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """A pre-imported process that forks the fault-injection tests' entry-point processes (one per test module)."""
    from tests.fault_harness import Zygote

    server = Zygote()
    yield server
    server.close()


@pytest.fixture(scope="module")
def reference(zygote: Zygote, tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """An uninterrupted training that the fault-injected ones are compared with."""
    from tests.fault_scenarios import reference_training

    return reference_training(zygote, tiny_data_dir, tmp_path_factory.mktemp("reference"))
