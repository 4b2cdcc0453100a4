"""One view of any model that follows the protocol (lns.models.protocol): latent means, posteriors, images in [0, 1].

Training and segmentation call a model only through :class:`ModelAdapter`, which turns the protocol's variants
into one form (a tuple ``(mean, log_variance)`` or a plain latent; logits or images) and says in one paragraph
what is wrong when a model does not keep to it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lns.errors import LNSError
from lns.models.autoencoder import Autoencoder
from lns.models.diffusers_autoencoder import DiffusersAutoencoder, is_diffusers_autoencoder
from lns.models.protocol import PROTOCOL_HELP, check_protocol, model_name


def _first_tensor(model: Any) -> Tensor | None:
    if not isinstance(model, nn.Module):
        return None
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor
    return None


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


class ModelAdapter:
    """Wraps a model with ``encode``/``decode`` (``decodes_logits`` declares a decoder that returns logits).

    It holds no parameters of its own: the wrapped model stays the module that optimisers, checkpoints and devices
    see.
    """

    def __init__(self, model: Any) -> None:
        check_protocol(model)
        self.model = model
        self.logits: bool = getattr(model, "decodes_logits", False)
        self.name = model_name(model)

    @property
    def module(self) -> nn.Module:
        """The model as a ``torch.nn.Module`` (needed for named layers); anything else is an :class:`LNSError`."""
        if not isinstance(self.model, nn.Module):
            raise LNSError(
                f"The model ({self.name}) is not a torch.nn.Module, so it has no named layers: use site='latent' "
                "or 'output', or make the model a torch.nn.Module."
            )
        return self.model

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's first parameter or buffer (float32 for a model without any)."""
        tensor = _first_tensor(self.model)
        return torch.float32 if tensor is None else tensor.dtype

    @property
    def device(self) -> torch.device:
        """The device of the model's first parameter or buffer (the CPU for a model without any)."""
        tensor = _first_tensor(self.model)
        return torch.device("cpu") if tensor is None else tensor.device

    def posterior(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(mean, log_variance)`` of the latent for ``images``; the log-variance is None for a deterministic model."""
        encoded = self.model.encode(images)
        if isinstance(encoded, tuple | list):
            if len(encoded) != 2:
                raise LNSError(
                    f"{self.name}.encode returned {len(encoded)} values; it must return the latent, or "
                    f"(mean, log_variance). {PROTOCOL_HELP}"
                )
            mean, log_variance = encoded
        else:
            mean, log_variance = encoded, None
        if hasattr(mean, "latent_dist") or hasattr(mean, "latents"):
            raise LNSError(
                f"{self.name}.encode returned a diffusers output object ({type(mean).__name__}), not a tensor: wrap "
                "the diffusers autoencoder in lns.models.DiffusersAutoencoder, which reads it (raw diffusers models "
                "are wrapped by themselves)."
            )
        if not isinstance(mean, Tensor) or mean.ndim < 2 or mean.shape[0] != images.shape[0]:
            raise LNSError(
                f"{self.name}.encode returned a latent shaped {_shape(mean)} for {images.shape[0]} image(s) "
                f"shaped {tuple(images.shape)}: the latent must be a tensor (B, ...) with one entry per image "
                f"(a batch size of {images.shape[0]}). {PROTOCOL_HELP}"
            )
        if log_variance is not None and (not isinstance(log_variance, Tensor) or log_variance.shape != mean.shape):
            raise LNSError(
                f"{self.name}.encode returned a mean shaped {tuple(mean.shape)} and a log-variance shaped "
                f"{_shape(log_variance)}; a variational encode returns two tensors of one shape."
            )
        return mean, log_variance

    def latent_mean(self, images: Tensor) -> Tensor:
        """The latent (or its mean, for a variational model) of ``images``: (B, ...)."""
        return self.posterior(images)[0]

    def decode(self, latent: Tensor) -> Tensor:
        """The model's own decoder output for ``latent`` (logits when ``decodes_logits``)."""
        decoded = self.model.decode(latent)
        if not isinstance(decoded, Tensor) or decoded.ndim != 4 or decoded.shape[0] != latent.shape[0]:
            raise LNSError(
                f"{self.name}.decode returned {_shape(decoded)} for a latent shaped {tuple(latent.shape)}: it must "
                f"return images (B, C, H, W) with one image per latent (a batch size of {latent.shape[0]})."
            )
        return decoded

    def to_images(self, decoded: Tensor) -> Tensor:
        """Decoder output as images in [0, 1]: ``sigmoid`` of logits, or the output itself."""
        return torch.sigmoid(decoded) if self.logits else decoded

    def images_from_latent(self, latent: Tensor) -> Tensor:
        """Images in [0, 1] decoded from ``latent``."""
        return self.to_images(self.decode(latent))

    def reconstruct(self, images: Tensor) -> Tensor:
        """The noise-free reconstruction of ``images``: decoded from their latent means, in [0, 1]."""
        return self.images_from_latent(self.latent_mean(images))

    def training_outputs(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(decoder output, mean, log-variance) of one training step.

        A variational model decodes ``mean + exp(log_variance / 2) * eps`` in training mode and the mean otherwise.
        lns's :class:`Autoencoder` runs its own ``forward`` (the same computation), so ``model.compile()`` applies.
        """
        if isinstance(self.model, Autoencoder):
            return self.model(images)
        mean, log_variance = self.posterior(images)
        latent = mean
        if log_variance is not None and getattr(self.model, "training", False):
            latent = mean + torch.exp(log_variance / 2) * torch.randn_like(mean)
        return self.decode(latent), mean, log_variance

    def check_latent(self, latent: Tensor, index: list[int]) -> None:
        """Raise :class:`LNSError` when the latent of any image (numbered by ``index``) holds NaN or inf."""
        bad = ~torch.isfinite(latent.flatten(1)).all(dim=1)
        if bool(bad.any()):
            shown = [index[i] for i in bad.nonzero().flatten().tolist()[:10]]
            raise LNSError(
                f"{self.name}.encode returned NaN or inf for image(s) {shown}: check the model's weights and that "
                "the images are finite values in [0, 1]."
            )

    def check_images(self, decoded: Tensor, images: Tensor) -> None:
        """Raise :class:`LNSError` unless decoded images match the inputs' shape, are finite and lie in [0, 1]."""
        if decoded.shape != images.shape:
            raise LNSError(
                f"{self.name}.decode returned images shaped {tuple(decoded.shape)} for inputs shaped "
                f"{tuple(images.shape)}: segmentation labels the pixels of the decoded image, so it must have the "
                "input's channels and size."
            )
        if not bool(torch.isfinite(decoded).all()):
            raise LNSError(
                f"{self.name}.decode returned NaN or inf: check the model's weights (a diverged training run?)."
            )
        if not self.logits:
            low, high = float(decoded.min()), float(decoded.max())
            if low < 0 or high > 1:
                raise LNSError(
                    f"{self.name}.decode returned values from {low:.4g} to {high:.4g}, outside [0, 1]. If the "
                    "decoder returns logits, declare it with `decodes_logits = True` on the model (images are then "
                    "sigmoid(decode(z))); otherwise make decode return images in [0, 1]."
                )


def as_adapter(model: Any) -> ModelAdapter:
    """``model`` itself when it is already a :class:`ModelAdapter`, else a new one around it (around a
    :class:`DiffusersAutoencoder` of it for a raw diffusers autoencoder)."""
    if isinstance(model, ModelAdapter):
        return model
    return ModelAdapter(DiffusersAutoencoder(model) if is_diffusers_autoencoder(model) else model)
