"""Stateless objectives: reconstruction only, beta-VAE (Higgins) and capacity annealing (Burgess)."""

from __future__ import annotations

import torch
from torch import Tensor

from lns.errors import LNSError
from lns.objectives.base import Objective


class ReconstructionObjective(Objective):
    """loss = recon (the AE objective)."""

    def forward(self, recon: Tensor, kl: Tensor | None, step: int) -> dict[str, Tensor]:
        return {"loss": recon}


class BetaObjective(Objective):
    """loss = recon + beta * KL."""

    def __init__(self, beta: float = 4.0):
        super().__init__()
        if beta < 0:
            raise LNSError(f"objective.beta must be >= 0, got {beta}.")
        self.beta = beta

    def forward(self, recon: Tensor, kl: Tensor | None, step: int) -> dict[str, Tensor]:
        if kl is None:
            return {"loss": recon}
        return {"loss": recon + self.beta * kl}


class CapacityObjective(Objective):
    """loss = recon + gamma * |KL - C(step)|, C growing linearly from 0 to c_max over c_stop_iter steps."""

    def __init__(self, gamma: float = 1000.0, c_max: float = 25.0, c_stop_iter: int = 100000):
        super().__init__()
        if gamma < 0 or c_max < 0 or c_stop_iter <= 0:
            raise LNSError(
                f"objective gamma and c_max must be >= 0 and c_stop_iter > 0, got gamma={gamma}, "
                f"c_max={c_max}, c_stop_iter={c_stop_iter}."
            )
        self.gamma = gamma
        self.c_max = c_max
        self.c_stop_iter = c_stop_iter

    def capacity(self, step: int) -> float:
        """C(step) = min(c_max, c_max * step / c_stop_iter)."""
        return min(self.c_max, self.c_max * step / self.c_stop_iter)

    def forward(self, recon: Tensor, kl: Tensor | None, step: int) -> dict[str, Tensor]:
        capacity = self.capacity(step)
        loss = recon if kl is None else recon + self.gamma * (kl - capacity).abs()
        return {"loss": loss, "capacity": torch.full_like(recon.detach(), capacity)}
