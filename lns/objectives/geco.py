"""GECO (Rezende & Viola 2018, as used in GENESIS): a KL weight beta driven by a reconstruction goal.

loss = recon + beta * KL (recon alone for the AE). After every training step ``update(recon)`` moves beta:
G = goal * C * H * W, s = step_size * (64 * 64) / (H * W), err_ema = recon at the first update and
(1 - alpha) * recon + alpha * err_ema afterwards, c = G - err_ema; beta *= exp(speedup * s * c) when a speedup
is set and c > 0, else beta *= exp(s * c); beta is clamped to [beta_min, beta_max]. When recon stays above the
goal beta shrinks (less KL pressure), below it beta grows.

The caller calls ``update`` only after training steps, so validation never changes beta. ``beta``, ``err_ema``
and ``initialised`` are buffers: they are saved in and restored from state dicts. Under an initialised
``torch.distributed`` process group ``update`` is a collective: it averages the recon over ranks first, so
every rank must call it and beta stays identical everywhere.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from lns.errors import LNSError
from lns.objectives.base import Objective


def _mean_over_ranks(value: Tensor) -> Tensor:
    if not (dist.is_available() and dist.is_initialized()):
        return value
    total = value.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()


class GecoObjective(Objective):
    """recon + beta * KL, beta adapted after each training step towards a per-pixel reconstruction goal."""

    def __init__(
        self,
        goal: float = 0.0006,
        step_size: float = 1e-5,
        alpha: float = 0.99,
        speedup: float | None = 10.0,
        beta_init: float = 1.0,
        beta_min: float = 1e-10,
        beta_max: float = 1e10,
        image_shape: tuple[int, int, int] = (3, 64, 64),
    ):
        super().__init__()
        channels, height, width = image_shape
        if not 0 < beta_min <= beta_init <= beta_max:
            raise LNSError(
                f"GECO needs 0 < beta_min <= beta_init <= beta_max, got beta_min={beta_min}, "
                f"beta_init={beta_init}, beta_max={beta_max}."
            )
        if not 0 <= alpha < 1 or step_size < 0 or (speedup is not None and speedup <= 0):
            raise LNSError(
                f"GECO needs 0 <= alpha < 1, step_size >= 0 and speedup > 0 or null, got alpha={alpha}, "
                f"step_size={step_size}, speedup={speedup}."
            )
        if min(channels, height, width) < 1:
            raise LNSError(f"GECO image_shape must be positive (C, H, W), got {tuple(image_shape)}.")
        self.goal = goal * channels * height * width
        self.step_size = step_size * (64 * 64) / (height * width)
        self.alpha = alpha
        self.speedup = speedup
        self.beta_min = beta_min
        self.beta_max = beta_max
        self.register_buffer("beta", torch.tensor(float(beta_init)))
        self.register_buffer("err_ema", torch.tensor(0.0))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, recon: Tensor, kl: Tensor | None, step: int) -> dict[str, Tensor]:
        beta = self.beta.detach().clone()
        loss = recon if kl is None else recon + beta * kl
        return {"loss": loss, "geco_beta": beta, "recon_ema": self.err_ema.detach().clone()}

    @torch.no_grad()
    def update(self, recon: Tensor) -> None:
        """One GECO step from this training step's reconstruction error (no host sync)."""
        recon = _mean_over_ranks(recon.detach().to(self.err_ema.dtype))
        err_ema = torch.where(self.initialised, (1 - self.alpha) * recon + self.alpha * self.err_ema, recon)
        constraint = self.goal - err_ema
        rate = self.step_size
        if self.speedup is not None:
            rate = torch.where(constraint > 0, self.speedup * self.step_size, self.step_size)
        beta = (self.beta * torch.exp(rate * constraint)).clamp(self.beta_min, self.beta_max)
        self.err_ema.copy_(err_ema)
        self.beta.copy_(beta)
        self.initialised.fill_(True)

    def set_state(self, beta: float, err_ema: float | None) -> None:
        """Restore beta and err_ema (e.g. from an authors' checkpoint); err_ema None means no update yet."""
        self.beta.fill_(beta)
        self.err_ema.fill_(0.0 if err_ema is None else err_ema)
        self.initialised.fill_(err_ema is not None)

    def beta_at_limit(self) -> Tensor:
        """Bool tensor: beta sits at beta_min or beta_max."""
        return (self.beta <= self.beta_min) | (self.beta >= self.beta_max)
