"""LightningDataModule over the npz datasets: training and validation images held in memory."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from lns.data.batches import SequentialBatches, StepIndexedBatches
from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.errors import LNSError


class NpzDataModule(pl.LightningDataModule):
    """Serves ``train.npz`` (shuffled, step-indexed batches) and ``valid.npz`` (in order) of one dataset.

    ``on_device``: ``auto`` keeps the images on the accelerator when training on a GPU (the whole 64x64 dataset
    is 1.5 GB), ``true``/``false`` force it. Training batches come in chunks of ``steps_per_call`` steps.
    """

    def __init__(
        self,
        name: str,
        data_dir: str | Path,
        image_size: int = 64,
        batch_size: int = 64,
        seed: int = 0,
        on_device: bool | str = "auto",
        steps_per_call: int = 1,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise LNSError(f"data.batch_size={batch_size} must be at least 1 (the paper uses 64).")
        self.name = name
        self.root = dataset_dir(data_dir, name, image_size)
        self.data_dir = Path(data_dir)
        self.image_size = image_size
        self.batch_size = batch_size
        self.seed = seed
        self.on_device = on_device
        self.steps_per_call = steps_per_call
        self.train_images: torch.Tensor | None = None
        self.valid_images: torch.Tensor | None = None

    def _load(self, split: str) -> torch.Tensor:
        arrays = load_split(self.root, split, name=self.name, data_dir=self.data_dir)
        size = arrays.images.shape[-1]
        if size != self.image_size:
            raise LNSError(
                f"{self.root / (split + '.npz')} holds {size}x{size} images but the config asks for "
                f"data.image_size={self.image_size}. Set data.image_size={size} or generate the "
                f"{self.image_size}x{self.image_size} variant."
            )
        return torch.from_numpy(arrays.images)

    def _target_device(self) -> torch.device:
        root_device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        keep = root_device.type != "cpu" if self.on_device == "auto" else bool(self.on_device)
        return root_device if keep else torch.device("cpu")

    def setup(self, stage: str | None = None) -> None:
        if self.train_images is not None:
            return
        device = self._target_device()
        self.train_images = self._load("train").to(device)
        self.valid_images = self._load("valid").to(device)
        if self.batch_size * self._world_size() > len(self.train_images):
            raise LNSError(
                f"data.batch_size={self.batch_size} (x {self._world_size()} processes) is larger than the "
                f"{len(self.train_images)} training images of {self.root}. Lower data.batch_size or generate a "
                "larger dataset (n_train=...)."
            )

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def _global_step(self) -> int:
        return self.trainer.global_step if self.trainer is not None else 0

    def train_dataloader(self) -> StepIndexedBatches:
        assert self.train_images is not None, "setup() must run first"
        return StepIndexedBatches(
            self.train_images,
            self.batch_size,
            seed=self.seed,
            start_step=self._global_step,
            rank=self._rank(),
            world_size=self._world_size(),
            steps_per_call=self.steps_per_call,
        )

    def val_dataloader(self) -> SequentialBatches:
        assert self.valid_images is not None, "setup() must run first"
        return SequentialBatches(self.valid_images, self.batch_size, rank=self._rank(), world_size=self._world_size())
