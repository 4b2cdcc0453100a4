"""Diffusers' autoencoders as they come (``AutoencoderKL``, ``AsymmetricAutoencoderKL``, ``AutoencoderTiny``,
``VQModel``, ...) behind the protocol.

Diffusers' autoencoders take and give images in [-1, 1] and wrap their results in output objects: ``encode`` returns
an object with ``latent_dist`` (a diagonal Gaussian: its mean and log-variance) or ``latents``, ``decode`` one with
``sample``. :class:`DiffusersAutoencoder` turns them into the protocol's form: images in [0, 1] in and out, the latent
(or its mean and log-variance) as tensors. :func:`lns.models.as_adapter` wraps a raw diffusers autoencoder in it by
itself, so ``lns.segment_images(AutoencoderKL(...), images, ...)`` works as it is.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from lns.errors import LNSError


def is_diffusers_autoencoder(model: Any) -> bool:
    """True for a diffusers model (a class from the ``diffusers`` package) with ``encode`` and ``decode``."""
    module = type(model).__module__ or ""
    has_methods = callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))
    return module.split(".")[0] == "diffusers" and has_methods


def _latent(encoded: Any, name: str) -> Tensor | tuple[Tensor, Tensor]:
    distribution = getattr(encoded, "latent_dist", None)
    if distribution is not None:
        return distribution.mean, distribution.logvar
    latents = getattr(encoded, "latents", None)
    if isinstance(latents, Tensor):
        return latents
    if isinstance(encoded, tuple | list) and encoded and isinstance(encoded[0], Tensor):
        return encoded[0]
    raise LNSError(
        f"{name}.encode returned {type(encoded).__name__}, which has neither latent_dist (mean and log-variance) nor "
        "latents: lns.models.DiffusersAutoencoder reads those two forms of diffusers' encoder outputs."
    )


def _sample(decoded: Any, name: str) -> Tensor:
    sample = getattr(decoded, "sample", None)
    if isinstance(sample, Tensor):
        return sample
    if isinstance(decoded, Tensor):
        return decoded
    if isinstance(decoded, tuple | list) and decoded and isinstance(decoded[0], Tensor):
        return decoded[0]
    raise LNSError(
        f"{name}.decode returned {type(decoded).__name__}, which has no sample: lns.models.DiffusersAutoencoder reads "
        "diffusers' DecoderOutput (its sample) or a tensor."
    )


class DiffusersAutoencoder(nn.Module):
    """A diffusers autoencoder ``net`` with lns's protocol: ``encode`` takes images in [0, 1] and returns the latent
    (``AutoencoderKL``: its mean and log-variance), ``decode`` returns images in [0, 1] (diffusers' [-1, 1] output
    shifted and scaled, values outside clipped). Named layers are ``net.<the diffusers name>``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.train(net.training)

    def encode(self, images: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """The latent of ``images`` (B, C, H, W) in [0, 1]: a tensor, or (mean, log-variance)."""
        return _latent(self.net.encode(images * 2 - 1), type(self.net).__name__)

    def decode(self, latent: Tensor) -> Tensor:
        """Images (B, C, H, W) in [0, 1] decoded from ``latent``."""
        return ((_sample(self.net.decode(latent), type(self.net).__name__) + 1) / 2).clamp(0, 1)
