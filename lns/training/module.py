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
from lns.training.step_intervals import logging_interval

log = logging.getLogger(__name__)


class TrainingModule(pl.LightningModule):
    """Trains ``model`` on ``objective``; the math lives in ``lns.models`` and ``lns.objectives``.

    The objective's state (e.g. GECO's beta and error average) is a submodule, so it is saved in checkpoints and
    restored on resume together with the optimizer and the step counter. The model is reached through the protocol
    (lns.models.adapter): the reconstruction is ``decode(encode(x))`` (the sigmoid of logits, when the model
    declares them), and the KL term is added where ``encode`` returns a mean and a log-variance. ``run_config`` (the
    run's settings) goes into every checkpoint, so that a checkpoint alone rebuilds its model.

    One Lightning training step runs the optimizer steps of one chunk of batches (``StepIndexedBatches``: as many
    as ``speed.steps_per_call``), each one forward, backward, Adam and the objective's update, so Lightning's
    per-step work is paid once per chunk. Nothing in a step waits for the device: the finite-loss check is kept on
    the device (the first bad step and its loss) and read every ``check_finite_every_n_steps`` steps and before any
    checkpoint is written, and the logged values (those of the chunk's last step) are read only when Lightning logs.
    """

    def __init__(
        self,
        model: nn.Module,
        objective: nn.Module,
        lr: float = 5e-5,
        betas: Sequence[float] = (0.9, 0.999),
        check_finite_every_n_steps: int = 1,
        channels_last: bool = False,
        steps_per_call: int = 1,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        betas = tuple(betas)
        if not (lr > 0 and len(betas) == 2 and all(0 <= b < 1 for b in betas)):
            raise LNSError(
                f"optimizer.lr={lr} must be > 0 and optimizer.betas={list(betas)} two values in [0, 1) "
                "(the paper uses lr 5e-5, betas [0.9, 0.999])."
            )
        if check_finite_every_n_steps < 1 or steps_per_call < 1:
            raise LNSError(
                f"check_finite_every_n_steps={check_finite_every_n_steps} and speed.steps_per_call={steps_per_call} "
                "must be at least 1."
            )
        self.model = model
        self.adapter = as_adapter(model)
        self.run_config = run_config
        self.objective = objective
        self.lr = lr
        self.betas = betas
        self.check_finite_every_n_steps = check_finite_every_n_steps
        self.steps_per_call = steps_per_call
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.automatic_optimization = False
        # the first step whose loss was NaN or infinite (-1: none yet) and that loss, kept on the model's device
        self.register_buffer("_first_bad_step", torch.tensor(-1), persistent=False)
        self.register_buffer("_first_bad_loss", torch.tensor(0.0), persistent=False)
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

    def training_step(self, chunk: Tensor, batch_idx: int) -> None:
        """The optimizer steps of one chunk of batches (steps, batch, C, H, W); none past ``trainer.max_steps``."""
        steps = len(chunk)
        if self.trainer.max_steps > 0:
            steps = min(steps, self.trainer.max_steps - self.global_step)
        optimizer = self.optimizers()
        for images in chunk[:steps]:
            step = self.global_step
            recon, kl, logvar = self._terms(images)
            terms = self.objective(recon, kl, step)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(terms["loss"])
            optimizer.step()
            self.objective.update(recon.detach())
            self._watch_finite(terms["loss"].detach(), step)
        self._log_step(terms, recon, kl, logvar)
        if self.global_step % self.check_finite_every_n_steps == 0:
            self.check_finite()

    def _watch_finite(self, loss: Tensor, step: int) -> None:
        """Remember the first step whose loss is NaN or infinite, and that loss, on the device (no host sync)."""
        new = (self._first_bad_step < 0) & ~torch.isfinite(loss)
        self._first_bad_step.copy_(torch.where(new, torch.full_like(self._first_bad_step, step), self._first_bad_step))
        self._first_bad_loss.copy_(torch.where(new, loss.float(), self._first_bad_loss))

    def check_finite(self) -> None:
        """Stop with one paragraph when a loss since the start was NaN or infinite (one host sync)."""
        step = int(self._first_bad_step)
        if step < 0:
            return
        raise LNSError(
            f"The training loss became {float(self._first_bad_loss)} at step {step}. Nothing was saved over the "
            "last good checkpoint. Lower optimizer.lr, check the data for NaN/inf values, or continue from "
            f"the last good checkpoint with other settings in a new run directory: ckpt_path="
            f"{Path(self.trainer.default_root_dir) / LAST_CHECKPOINT}."
        )

    def _log_step(self, terms: dict[str, Tensor], recon: Tensor, kl: Tensor | None, logvar: Tensor | None) -> None:
        """Log the chunk's last step under the optimizer step count (Lightning reads the values when it logs)."""
        loss = terms["loss"]
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
        # The logger's step: optimizer steps done, as in checkpoint names (Lightning would count chunks).
        self.log("step", float(self.global_step))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Warn once when GECO's beta sits at a clamp limit (checked at logging steps: one host sync each).

        Only for variational models: a deterministic model's loss is the reconstruction alone, whatever beta does.
        """
        at_limit = getattr(self.objective, "beta_at_limit", None)
        if at_limit is None or not self._variational or self._beta_limit_reported:
            return
        if self.global_step % logging_interval(self.trainer, self):
            return
        if bool(at_limit()):
            self._beta_limit_reported = True
            if self.trainer.is_global_zero:
                log.warning(geco_limit_message(self.objective, self.global_step))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the random state (VAE sampling) so a resumed run continues exactly, and the run's settings; a loss
        that went bad since the last check stops the run before anything is written."""
        self.check_finite()
        if self.run_config is not None:
            checkpoint[CHECKPOINT_RUN_CONFIG] = self.run_config
        checkpoint["rng_state"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        adopt_automatic_step_count(checkpoint)
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
        self.log("step", float(self.global_step), batch_size=len(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam; on a GPU its fused kernel (one launch for all parameters instead of several per step)."""
        fused = True if self.device.type == "cuda" else None
        return torch.optim.Adam(self.parameters(), lr=self.lr, betas=self.betas, fused=fused)


def adopt_automatic_step_count(checkpoint: dict[str, Any]) -> None:
    """Let a checkpoint written under Lightning's automatic optimization (lns before chunked steps) resume at its
    step: Lightning counts manual optimizer steps apart, so its count is copied there when that one is empty."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    manual = loop.get("epoch_loop.manual_optimization.optim_step_progress")
    automatic = loop.get("epoch_loop.automatic_optimization.optim_progress")
    if manual is None or automatic is None or manual["total"]["completed"] > 0:
        return
    counts = automatic["optimizer"]["step"]
    manual["total"], manual["current"] = dict(counts["total"]), dict(counts["current"])


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
