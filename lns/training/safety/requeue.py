"""Preemption and time-outs under submitit: write ``last.ckpt`` before submitit requeues the job."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl

from lns.runs.run_layout import LAST_CHECKPOINT

SignalHandler = Callable[[int, object], object]

log = logging.getLogger(__name__)


def submitit_signal() -> signal.Signals:
    """The signal submitit sends before a time-out or on preemption (SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL)."""
    return signal.Signals[f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"]


class CheckpointBeforeRequeue(pl.Callback):
    """Delays submitit's preemption / time-out handler until the current training step has been saved.

    submitit's handler requeues the job with the same overrides (so the same run directory) and exits at once;
    without this callback the steps since the last periodic checkpoint would be lost. Here the signal only
    marks a request; after the current step (the request ``agreed`` across ranks by
    :class:`~lns.training.safety.shared_requests.SharedRequests`, which comes before this callback) every rank writes
    ``checkpoints/last.ckpt`` and stops; when the fit has ended (the step's metrics logged) submitit's handler runs
    (requeue and exit on rank 0). Does nothing in a process not started by submitit.
    """

    def __init__(self) -> None:
        self.signum = submitit_signal()
        self.requested = False
        self.agreed = False
        self.saved_at: int | None = None
        self._submitit_handler: SignalHandler | None = None

    def _request(self, signum: int, frame: object) -> None:
        self.requested = True

    def _give_back(self) -> SignalHandler | None:
        """Put submitit's handler back in place; return it (None when this callback never took it)."""
        if self._submitit_handler is not None:
            signal.signal(self.signum, self._submitit_handler)
        return self._submitit_handler

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        handler = signal.getsignal(self.signum)
        under_submitit = "SUBMITIT_EXECUTOR" in os.environ and callable(handler)
        if under_submitit and threading.current_thread() is threading.main_thread():
            self._submitit_handler = handler
            signal.signal(self.signum, self._request)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if not self.agreed:
            return
        self.requested = self.agreed = False
        trainer.save_checkpoint(Path(trainer.default_root_dir) / LAST_CHECKPOINT)
        trainer.should_stop = True
        self.saved_at = trainer.global_step
        log.info("Wrote %s at step %d for submitit to requeue this job.", LAST_CHECKPOINT, trainer.global_step)
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:
            wandb.run.mark_preempting()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Hand over to submitit once the fit has ended: the loggers have written the saved step's metrics."""
        handler = self._give_back()
        if handler is not None and self.saved_at is not None:
            handler(self.signum, None)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._give_back()
