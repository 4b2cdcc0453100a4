"""Start the decoder at the mean colour: its output bias set to the logit of the training images' mean per channel.

With a zero bias every pixel starts at 0.5, and on mostly white datasets (dGradOcclusion: mean pixel 0.84) the
first steps push every output towards white so hard that the decoder ends up drawing one white picture for any
input. Started at the mean colour, the only error left to learn from is the images' structure.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from lns.errors import LNSError


def mean_colour_logits(images: Tensor, eps: float = 1e-3) -> Tensor:
    """Per-channel logit of the mean of ``images`` (N, C, H, W) in [0, 1], the mean clamped to [eps, 1 - eps]."""
    if images.ndim != 4 or len(images) == 0:
        raise LNSError(f"The mean colour needs images shaped (N, C, H, W), got {tuple(images.shape)}.")
    mean = images.double().mean(dim=(0, 2, 3)).clamp(eps, 1 - eps)
    return torch.logit(mean).to(images.dtype)


def output_layer(model: Any) -> nn.Module:
    """The decoder's last layer: the model's ``output_layer``, or the last module of an ``nn.Sequential`` decoder.

    Its bias must be in logit space, so the model must declare ``decodes_logits``.
    """
    name = type(model).__name__
    if not getattr(model, "decodes_logits", False):
        raise LNSError(
            f"callbacks.output_bias starts the decoder's output at the mean colour in logit space, but {name} does "
            "not declare decodes_logits = True; remove it: ~callbacks.output_bias."
        )
    layer = getattr(model, "output_layer", None)
    decoder = getattr(model, "decoder", None)
    if layer is None and isinstance(decoder, nn.Sequential):
        layer = decoder[-1]
    if not isinstance(layer, nn.Module):
        raise LNSError(
            f"callbacks.output_bias cannot find the decoder's last layer of {name}: give the model an output_layer "
            "attribute (the module whose bias offsets the output), or remove it: ~callbacks.output_bias."
        )
    return layer


def start_at_mean_colour(model: Any, images: Tensor) -> None:
    """Set the decoder's last bias (see :func:`output_layer`) to the mean-colour logits of ``images``."""
    output = output_layer(model)
    logits = mean_colour_logits(images)
    if getattr(output, "bias", None) is None or output.bias.shape != logits.shape:
        raise LNSError(
            f"The decoder's last layer has no bias of {len(logits)} channels to start at the mean colour; "
            "remove callbacks.output_bias."
        )
    with torch.no_grad():
        output.bias.copy_(logits.to(output.bias))


class MeanColourOutputBias(pl.Callback):
    """At the start of a new run (step 0, not on resume) set the decoder's last bias to the mean-colour logits."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == 0:
            start_at_mean_colour(pl_module.model, trainer.datamodule.train_images)
