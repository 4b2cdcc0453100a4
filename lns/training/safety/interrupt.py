"""Ctrl-C and SIGTERM during training: finish the step, write ``checkpoints/last.ckpt`` and stop cleanly."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytorch_lightning as pl


class GracefulInterrupt(pl.Callback):
    """Ctrl-C or SIGTERM: finish the current step, write ``checkpoints/last.ckpt`` and stop cleanly.

    A second Ctrl-C aborts at once. Under data parallelism the request is shared across ranks so all of them
    stop at the same step and the checkpoint is consistent: :class:`~lns.training.safety.shared_requests.SharedRequests`
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
