"""Log the last training step too, so a run shorter than ``trainer.log_every_n_steps`` (or ending between two
logged steps) still has its final losses in ``logs/metrics.csv`` and W&B."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


class LogLastStep(pl.Callback):
    """Before the training step (a chunk of optimizer steps) that reaches ``trainer.max_steps``, log every step
    (Lightning logs a step only when its number is a multiple of ``log_every_n_steps``); the interval is restored
    when training ends."""

    def __init__(self) -> None:
        self._interval: int | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, chunk: Any, *args: Any) -> None:
        last = trainer.max_steps > 0 and trainer.global_step + len(chunk) >= trainer.max_steps
        if last and trainer.log_every_n_steps > 1 and self._interval is None:
            self._interval = trainer.log_every_n_steps
            trainer.log_every_n_steps = 1

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._interval is not None:
            trainer.log_every_n_steps = self._interval
            self._interval = None
