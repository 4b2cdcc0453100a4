"""Step intervals under chunked training: a Lightning training step runs ``steps_per_call`` optimizer steps, so
Lightning's own intervals (logging, validation) count chunks, while lns's settings and callbacks count optimizer
steps. Every interval must then be a multiple of ``steps_per_call``, or it would fall inside a chunk."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from lns.errors import LNSError

if TYPE_CHECKING:
    import pytorch_lightning as pl


def check_steps_per_call(steps_per_call: int, intervals: Mapping[str, object]) -> None:
    """Refuse ``steps_per_call`` when it does not divide each whole-number interval of ``intervals`` (setting name ->
    value; other values, such as a fraction of an epoch or null, are not counted in steps)."""
    if steps_per_call == 1:
        return
    wrong = {
        name: value
        for name, value in intervals.items()
        if isinstance(value, int) and not isinstance(value, bool) and value > 0 and value % steps_per_call
    }
    if wrong:
        listed = ", ".join(f"{name}={value}" for name, value in wrong.items())
        raise LNSError(
            f"speed.steps_per_call={steps_per_call} runs that many optimizer steps per call, so every step interval "
            f"must be a multiple of it, and {listed} is not. Choose steps_per_call to divide them (their greatest "
            "common divisor works), or change the intervals."
        )


def in_chunks(steps: int, steps_per_call: int) -> int:
    """A Lightning interval (in training steps, that is chunks) for an interval of ``steps`` optimizer steps."""
    return max(1, steps // steps_per_call)


def logging_interval(trainer: pl.Trainer, module: pl.LightningModule) -> int:
    """Optimizer steps between two logged steps: Lightning's ``log_every_n_steps`` counts chunks."""
    return trainer.log_every_n_steps * getattr(module, "steps_per_call", 1)
