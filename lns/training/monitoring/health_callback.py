"""The training-health callback: probe the model every n steps, warn when it is not learning, keep health.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from lns.errors import LNSError
from lns.models.adapter import as_adapter
from lns.training.monitoring.health import HealthHistory, HealthThresholds, ProbeRecord, probe_record, write_health

log = logging.getLogger(__name__)


class TrainingHealth(pl.Callback):
    """Every ``every_n_steps`` steps: reconstruct the first ``num_images`` validation images and check health.

    Logs ``health/probe_recon``, ``health/variance_ratio`` and ``health/problems`` (to the CSV and W&B loggers),
    warns once per problem with the likely fix, and writes ``health.json`` in the run directory. The history is
    part of the checkpoint, so a resumed run continues one history (records after the checkpoint are redone).
    """

    def __init__(self, every_n_steps: int = 50, num_images: int = 64, **thresholds: Any) -> None:
        if every_n_steps < 1 or num_images < 2:
            raise LNSError(
                f"callbacks.health.every_n_steps={every_n_steps} must be at least 1 and callbacks.health."
                f"num_images={num_images} at least 2 (the probe compares images with each other)."
            )
        self.every_n_steps = every_n_steps
        self.num_images = num_images
        self.thresholds = HealthThresholds(**thresholds)
        self.history = HealthHistory()

    def _probe(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> ProbeRecord:
        """Measure the probe images, record, warn about new problems, rewrite health.json."""
        images = trainer.datamodule.valid_images[: self.num_images].to(pl_module.device)
        model = pl_module.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            reconstructions = as_adapter(model).reconstruct(images)
        model.train(was_training)
        record = probe_record(trainer.global_step, reconstructions, images)
        for flag in self.history.add(record, self.thresholds, float(pl_module.lr)):
            if trainer.is_global_zero:
                log.warning(flag["message"])
        self._write(trainer)
        return record

    def _write(self, trainer: pl.Trainer) -> None:
        if trainer.is_global_zero:
            write_health(Path(trainer.default_root_dir), self.history, self.thresholds)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Rewrite the file from the (restored) history: records after a resumed checkpoint are dropped."""
        self._write(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            record = self._probe(trainer, pl_module)
            pl_module.log_dict(
                {
                    "health/probe_recon": record.recon,
                    "health/variance_ratio": record.variance_ratio,
                    "health/problems": float(len(self.history.active)),
                }
            )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Probe the final weights too (Lightning allows no logging here: health.json only); say when the run was
        too short to be checked."""
        if not self.history.records or self.history.records[-1].step != trainer.global_step:
            self._probe(trainer, pl_module)
        verdict = self.history.verdict(self.thresholds)
        if not verdict["checked"] and trainer.is_global_zero:
            log.info(f"Training health not checked: {verdict['not_checked']}.")

    def state_dict(self) -> dict[str, Any]:
        return self.history.to_dict(self.thresholds)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = HealthHistory.from_dict(state_dict)
