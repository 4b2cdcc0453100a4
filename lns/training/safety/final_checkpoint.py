"""The run's ``checkpoints/last.ckpt`` holds its final step, whatever the periodic checkpoint interval."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from lns.runs.run_layout import LAST_CHECKPOINT


class FinalCheckpoint(pl.Callback):
    """When training ends, make sure ``checkpoints/last.ckpt`` holds the final step.

    ModelCheckpoint saves every ``every_n_train_steps`` only (at the end only if it never saved), so a run whose
    ``max_steps`` is not a multiple of it would otherwise end with an older ``last.ckpt``, which segmentation and
    resuming would then use.
    """

    def __init__(self) -> None:
        self.saved_step: int | None = None

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.saved_step = trainer.global_step

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.saved_step = checkpoint["global_step"]

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.saved_step != trainer.global_step:
            trainer.save_checkpoint(Path(trainer.default_root_dir) / LAST_CHECKPOINT)
