"""LightningModule wiring an autoencoder, a training objective and Adam together."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from lns.errors import LNSError
from lns.models import Autoencoder
from lns.objectives import kl_divergence, reconstruction_error
from lns.run_layout import LAST_CHECKPOINT

log = logging.getLogger(__name__)


class TrainingModule(pl.LightningModule):
    """Trains ``model`` on ``objective``; the math lives in ``lns.models`` and ``lns.objectives``.

    The objective's state (e.g. GECO's beta and error average) is a submodule, so it is saved in checkpoints and
    restored on resume together with the optimizer and the step counter.
    """

    def __init__(
        self,
        model: Autoencoder,
        objective: nn.Module,
        lr: float = 5e-5,
        betas: Sequence[float] = (0.9, 0.999),
        check_finite_every_n_steps: int = 1,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        betas = tuple(betas)
        if not (lr > 0 and len(betas) == 2 and all(0 <= b < 1 for b in betas)):
            raise LNSError(
                f"optimizer.lr={lr} must be > 0 and optimizer.betas={list(betas)} two values in [0, 1) "
                "(the paper uses lr 5e-5, betas [0.9, 0.999])."
            )
        if check_finite_every_n_steps < 1:
            raise LNSError(f"check_finite_every_n_steps={check_finite_every_n_steps} must be at least 1.")
        self.model = model
        self.objective = objective
        self.lr = lr
        self.betas = betas
        self.check_finite_every_n_steps = check_finite_every_n_steps
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self._last_recon: Tensor | None = None
        self._beta_limit_reported = False

    def _terms(self, images: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Reconstruction error, KL (None for the AE) and the posterior log-variance (None for the AE)."""
        logits, mu, logvar = self.model(images.contiguous(memory_format=self.memory_format))
        recon = reconstruction_error(logits, images)
        kl = kl_divergence(mu, logvar) if logvar is not None else None
        return recon, kl, logvar

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        recon, kl, logvar = self._terms(batch)
        terms = self.objective(recon, kl, self.global_step)
        loss = terms["loss"]
        if self.global_step % self.check_finite_every_n_steps == 0 and not torch.isfinite(loss):
            raise LNSError(
                f"The training loss became {loss.item()} at step {self.global_step}. Nothing was saved over the "
                "last good checkpoint. Lower optimizer.lr, check the data for NaN/inf values, or continue from "
                f"the last good checkpoint with other settings in a new run directory: ckpt_path="
                f"{Path(self.trainer.default_root_dir) / LAST_CHECKPOINT}."
            )
        logged = {f"train/{k}": v.detach() for k, v in terms.items() if k != "loss"}
        logged["train/recon"] = recon.detach()
        if kl is not None:
            logged["train/kl"] = kl.detach()
        self.log_dict(logged, prog_bar=False)
        self.log("train/loss", loss.detach(), prog_bar=True)
        if logvar is not None:
            posterior_std = torch.exp(0.5 * logvar.detach()).mean(dim=0)
            self.log_dict({f"train/latent_std/{i:02d}": s for i, s in enumerate(posterior_std)})
        self._last_recon = recon.detach()
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then the objective's update (GECO), before callbacks such as checkpointing run."""
        super().optimizer_step(*args, **kwargs)
        if self._last_recon is not None:
            self.objective.update(self._last_recon)
            self._last_recon = None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Warn once when GECO's beta sits at a clamp limit (checked at logging steps: one host sync each).

        Only for the VAE: the AE's loss is the reconstruction alone, whatever beta does.
        """
        at_limit = getattr(self.objective, "beta_at_limit", None)
        if at_limit is None or not self.model.variational or self._beta_limit_reported:
            return
        if self.global_step % self.trainer.log_every_n_steps:
            return
        if bool(at_limit()):
            self._beta_limit_reported = True
            if self.trainer.is_global_zero:
                log.warning(geco_limit_message(self.objective, self.global_step))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the random state (VAE sampling) so a resumed run continues exactly."""
        checkpoint["rng_state"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("rng_state")
        if state is not None:
            torch.set_rng_state(state["torch"])
            if "cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        recon, kl, _ = self._terms(batch)
        terms = self.objective(recon, kl, self.global_step)
        self.log("val/loss", terms["loss"], sync_dist=True, batch_size=len(batch))
        self.log("val/recon", recon, sync_dist=True, batch_size=len(batch), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, betas=self.betas)


def geco_limit_message(geco: nn.Module, step: int) -> str:
    """Why GECO's beta is stuck at ``beta_min`` or ``beta_max`` and what to change."""
    beta = float(geco.beta)
    if beta <= geco.beta_min:
        return (
            f"GECO beta reached its lower limit objective.beta_min={geco.beta_min:g} at step {step}: the "
            "reconstruction error stays above the goal, so the KL term no longer counts. Raise objective.goal "
            "(a reachable reconstruction error per pixel) or lower objective.beta_min."
        )
    return (
        f"GECO beta reached its upper limit objective.beta_max={geco.beta_max:g} at step {step}: the "
        "reconstruction error stays below the goal, so the KL weight keeps growing. Lower objective.goal or "
        "raise objective.beta_max."
    )
