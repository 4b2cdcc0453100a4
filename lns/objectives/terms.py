"""The loss terms shared by every objective.

Both terms are computed in float32 or wider whatever the network's compute precision: under bf16-mixed the
logits, mean and log-variance arrive in bfloat16 (8-bit mantissa), and a sum over 64 x 3 x 64 x 64 squared errors
or a per-pixel goal of 6e-4 would lose its last digits there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 when it is in a narrower float type (bfloat16, float16); unchanged otherwise."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def reconstruction_error(logits: Tensor, target: Tensor) -> Tensor:
    """Sum over pixels and channels of the squared error of sigmoid(logits) vs target, over batch size."""
    images = torch.sigmoid(at_least_float32(logits))
    return F.mse_loss(images, target.to(images.dtype), reduction="sum") / logits.shape[0]


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)): per-sample sum over latent dims, averaged over the batch."""
    mu, logvar = at_least_float32(mu), at_least_float32(logvar)
    per_dim = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    return per_dim.flatten(1).sum(dim=1).mean()


def image_reconstruction_error(images: Tensor, target: Tensor) -> Tensor:
    """Sum over pixels and channels of the squared error of images in [0, 1] vs target, over batch size (for a
    decoder that returns images rather than logits)."""
    images = at_least_float32(images)
    return F.mse_loss(images, target.to(images.dtype), reduction="sum") / images.shape[0]
