"""Training callbacks that draw PNG figures into the run directory (they work with any logger, or none)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from lns.models.adapter import as_adapter
from lns.training.step_intervals import logging_interval
from lns.viz.figures import save_curves, save_image_grid

CURVE_KEYS = ("train/loss", "train/recon", "train/kl", "train/geco_beta", "train/recon_ema", "val/recon")


def _figure_dir(trainer: pl.Trainer) -> Path:
    return Path(trainer.default_root_dir) / "figures"


class ReconstructionFigures(pl.Callback):
    """Every ``every_n_steps`` and at the end: the first validation images (top row) over their reconstructions."""

    def __init__(self, every_n_steps: int = 10000, num_images: int = 8) -> None:
        self.every_n_steps = every_n_steps
        self.num_images = num_images

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        images = trainer.datamodule.valid_images[: self.num_images].to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            recon = as_adapter(pl_module.model).reconstruct(images)
        pl_module.train(was_training)
        grid = np.concatenate([images.float().cpu().numpy(), recon.float().cpu().numpy()])
        step = trainer.global_step
        save_image_grid(
            grid,
            _figure_dir(trainer) / f"reconstructions_step{step:08d}.png",
            ncols=len(images),
            title=f"validation images (top) and reconstructions (bottom), step {step}",
        )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._draw(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw(trainer, pl_module)


class CurveFigures(pl.Callback):
    """Records the logged losses and GECO state at every logging step and draws them to ``figures/curves.png``."""

    def __init__(self, every_n_steps: int = 10000, keys: tuple[str, ...] = CURVE_KEYS) -> None:
        self.every_n_steps = every_n_steps
        self.keys = keys
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    def _record(self, trainer: pl.Trainer) -> None:
        step = trainer.global_step
        for key in self.keys:
            value = trainer.callback_metrics.get(key)
            series = self.history[key]
            if value is not None and (not series or series[-1][0] != step):
                series.append((step, float(value)))

    def _draw(self, trainer: pl.Trainer) -> None:
        curves = {key: values for key, values in self.history.items() if values}
        if trainer.is_global_zero and curves:
            save_curves(curves, _figure_dir(trainer) / "curves.png", log_scale=("train/geco_beta",))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if trainer.global_step % logging_interval(trainer, pl_module) == 0:
            self._record(trainer)
        if trainer.global_step % self.every_n_steps == 0:
            self._draw(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer)
        self._draw(trainer)

    def state_dict(self) -> dict[str, dict[str, list[tuple[int, float]]]]:
        return {"history": dict(self.history)}

    def load_state_dict(self, state_dict: dict[str, dict[str, list[tuple[int, float]]]]) -> None:
        self.history = defaultdict(list, state_dict["history"])
