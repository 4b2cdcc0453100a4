"""LightningModule wiring a model (any model with ``encode`` and ``decode``), a training objective and Adam together."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from lns.errors import LNSError
from lns.models.adapter import as_adapter
from lns.objectives import image_reconstruction_error, kl_divergence, reconstruction_error
from lns.runs.run_layout import CHECKPOINT_RUN_CONFIG, LAST_CHECKPOINT

log = logging.getLogger(__name__)


class TrainingModule(pl.LightningModule):
    """Trains ``model`` on ``objective``; the math lives in ``lns.models`` and ``lns.objectives``.

    The objective's state (e.g. GECO's beta and error average) is a submodule, so it is saved in checkpoints and
    restored on resume together with the optimizer and the step counter. The model is reached through the protocol
    (lns.models.adapter): the reconstruction is ``decode(encode(x))`` (the sigmoid of logits, when the model
    declares them), and the KL term is added where ``encode`` returns a mean and a log-variance. ``run_config`` (the
    run's settings) goes into every checkpoint, so that a checkpoint alone rebuilds its model.
    """

    def __init__(
        self,
        model: nn.Module,
        objective: nn.Module,
        lr: float = 5e-5,
        betas: Sequence[float] = (0.9, 0.999),
        check_finite_every_n_steps: int = 1,
        channels_last: bool = False,
        run_config: dict[str, Any] | None = None,
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
        self.adapter = as_adapter(model)
        self.run_config = run_config
        self.objective = objective
        self.lr = lr
        self.betas = betas
        self.check_finite_every_n_steps = check_finite_every_n_steps
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self._last_recon: Tensor | None = None
        self._beta_limit_reported = False
        self._variational = False
        self._outputs_checked = False

    def _terms(self, images: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Reconstruction error, KL and the posterior log-variance (both None for a deterministic model).

        The first call checks the decoded images once (shape, finite, in [0, 1]): a model that breaks the protocol
        stops at the first step with a clear message.
        """
        decoded, mu, logvar = self.adapter.training_outputs(images.contiguous(memory_format=self.memory_format))
        if not self._outputs_checked:
            self.adapter.check_images(self.adapter.to_images(decoded.detach()), images)
            self._outputs_checked = True
        if self.adapter.logits:
            recon = reconstruction_error(decoded, images)
        else:
            recon = image_reconstruction_error(decoded, images)
        self._variational = logvar is not None
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
            if posterior_std.ndim > 1:  # a spatial latent: one value per channel, averaged over positions
                posterior_std = posterior_std.flatten(1).mean(dim=1)
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

        Only for variational models: a deterministic model's loss is the reconstruction alone, whatever beta does.
        """
        at_limit = getattr(self.objective, "beta_at_limit", None)
        if at_limit is None or not self._variational or self._beta_limit_reported:
            return
        if self.global_step % self.trainer.log_every_n_steps:
            return
        if bool(at_limit()):
            self._beta_limit_reported = True
            if self.trainer.is_global_zero:
                log.warning(geco_limit_message(self.objective, self.global_step))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the random state (VAE sampling) so a resumed run continues exactly, and the run's settings."""
        if self.run_config is not None:
            checkpoint[CHECKPOINT_RUN_CONFIG] = self.run_config
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
