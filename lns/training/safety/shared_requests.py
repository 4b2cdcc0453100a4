"""Stop and save requests (Ctrl-C, SIGTERM, submitit's preemption signal) agreed on by all ranks in one step.

A signal reaches one rank, or the ranks at different steps; all of them must stop, or save, at the same step,
so the requests are reduced across ranks after every training step: all flags together, in one collective.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import Strategy


class Request(Protocol):
    """A callback with a local request flag and the decision all ranks agreed on."""

    requested: bool
    agreed: bool


def any_rank(strategy: Strategy, world_size: int, flags: Sequence[bool]) -> list[bool]:
    """For each flag, whether it is raised on any rank: one sum-reduction of all flags (none on one process)."""
    if world_size <= 1:
        return [bool(flag) for flag in flags]
    local = torch.tensor([int(flag) for flag in flags], dtype=torch.int32, device=strategy.root_device)
    total = strategy.reduce(local, reduce_op="sum")
    return [bool(count) for count in total.tolist()]


class SharedRequests(pl.Callback):
    """After every training step, sets each source's ``agreed`` to whether any rank raised its ``requested``.

    Must come before its sources in the trainer's callbacks; they act on ``agreed`` in the same step.
    """

    def __init__(self, *sources: Request) -> None:
        self.sources = sources

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        agreed = any_rank(trainer.strategy, trainer.world_size, [source.requested for source in self.sources])
        for source, decision in zip(self.sources, agreed, strict=True):
            source.agreed = decision
