"""The loss terms shared by every objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def reconstruction_error(logits: Tensor, target: Tensor) -> Tensor:
    """Sum over pixels and channels of the squared error of sigmoid(logits) vs target, over batch size."""
    return F.mse_loss(torch.sigmoid(logits), target, reduction="sum") / logits.shape[0]


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)): per-sample sum over latent dims, averaged over the batch."""
    per_dim = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    return per_dim.flatten(1).sum(dim=1).mean()
