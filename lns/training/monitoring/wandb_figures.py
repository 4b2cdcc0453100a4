"""Sends the training figures (reconstructions, loss curves) to W&B when the trainer logs there."""

from __future__ import annotations

import re
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

_STEP = re.compile(r"^(?P<name>.+)_step(?P<step>\d+)$")


class WandbFigures(pl.Callback):
    """After every validation and at the end of training, logs each PNG under ``<run_dir>/figures`` that was
    drawn or redrawn since the last look to every W&B logger: ``reconstructions_step00010000.png`` becomes
    ``figures/reconstructions`` at step 10000, ``curves.png`` becomes ``figures/curves`` at the current step.
    Figures already on disk when fitting starts (a resumed run) are not sent again."""

    def __init__(self) -> None:
        self._sent: dict[Path, int] = {}

    def _changed(self, trainer: pl.Trainer) -> list[Path]:
        changed = []
        for path in sorted((Path(trainer.default_root_dir) / "figures").glob("*.png")):
            stamp = path.stat().st_mtime_ns
            if self._sent.get(path) != stamp:
                self._sent[path] = stamp
                changed.append(path)
        return changed

    def _send(self, trainer: pl.Trainer) -> None:
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers or not trainer.is_global_zero:
            return
        for path in self._changed(trainer):
            match = _STEP.match(path.stem)
            key, step = (match["name"], int(match["step"])) if match else (path.stem, trainer.global_step)
            for logger in loggers:
                logger.log_image(key=f"figures/{key}", images=[str(path)], step=step)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._changed(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._send(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._send(trainer)
