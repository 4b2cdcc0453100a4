"""Training callbacks that draw PNG figures into the run directory (they work with any logger, or none)."""

from __future__ import annotations

import json
import signal
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from lns.models.adapter import as_adapter
from lns.runs.run_layout import LAST_CHECKPOINT
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

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step % trainer.log_every_n_steps == 0:
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


class GracefulInterrupt(pl.Callback):
    """Ctrl-C or SIGTERM: finish the current step, write ``checkpoints/last.ckpt`` and stop cleanly.

    A second Ctrl-C aborts at once. Under data parallelism the request is shared across ranks so all of them
    stop at the same step and the checkpoint is consistent: :class:`~lns.training.shared_requests.SharedRequests`
    (before this callback) sets ``agreed``.
    """

    def __init__(self) -> None:
        self.requested = False
        self.agreed = False
        self.stopped_at: int | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Remember the handlers from before the run (they are put back when it ends)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Take the signals over here, after Lightning installed its SIGTERM handler: that one stops the run at
        its next check (also during validation) without writing a checkpoint.

        A SIGTERM that Lightning's handler caught before this hook (while the loop was being set up) becomes a
        request here; left to Lightning it would end the process after the first step with status 0 and no
        checkpoint, as if the run had finished.
        """
        if trainer.received_sigterm:
            self.requested = True
            trainer._signal_connector.received_sigterm = False  # Lightning offers no public way to take it over
        for signum in self._previous:
            signal.signal(signum, self._handler)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._previous.clear()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """A failed run gives the signals back too (on_fit_end is not called then)."""
        self.on_fit_end(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if self.agreed:
            trainer.save_checkpoint(Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt")
            trainer.should_stop = True
            self.stopped_at = trainer.global_step


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


class RankConsistency(pl.Callback):
    """At the end of training, check that every rank holds the same weights and objective state.

    Writes ``rank_consistency.json`` (one entry per rank: GECO beta, error average, a weight checksum) and
    raises if the ranks disagree, which would mean the GECO update or the gradient reduction is broken.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = [float(p.detach().double().sum()) for p in pl_module.model.parameters()]
        buffers = {name: float(b.double().sum()) for name, b in pl_module.objective.named_buffers()}
        local = torch.tensor([sum(state), *buffers.values()], dtype=torch.float64, device=pl_module.device)
        gathered = trainer.strategy.all_gather(local).reshape(trainer.world_size, -1).cpu()
        entries = [
            {
                "rank": rank,
                "weight_sum": float(row[0]),
                **dict(zip(buffers, map(float, row[1:]), strict=True)),
            }
            for rank, row in enumerate(gathered)
        ]
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / "rank_consistency.json"
            path.write_text(json.dumps(entries, indent=2) + "\n")
        if not torch.equal(gathered, gathered[:1].expand_as(gathered)):
            raise RuntimeError(f"Training state differs across ranks: {entries}")
