"""The interface every training objective implements."""

from __future__ import annotations

from torch import Tensor, nn


class Objective(nn.Module):
    """Combines the reconstruction error and KL into a loss.

    ``forward(recon, kl, step)`` returns a dict with ``loss`` plus extra scalars worth logging; ``kl`` is None
    for the deterministic AE, in which case the loss is the reconstruction error. ``update(recon)`` is called
    once after each training optimizer step (never after validation steps); it is a no-op except for
    objectives with state.
    """

    def forward(self, recon: Tensor, kl: Tensor | None, step: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def update(self, recon: Tensor) -> None:
        """Advance the objective's state after a training step; stateless objectives do nothing."""
