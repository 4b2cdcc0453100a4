"""Segmentation health: does the decoder respond to latent noise at all? Plain functions on a decoder.

A collapsed or untrained decoder (one picture for every latent, or saturated outputs) turns latent noise into
(numerically) zero pixel differences; the features then carry no signal and any ARI computed from them says
nothing about the method. Two numbers catch this on a few test images: the median per-pixel change of the
decoded image per unit of latent noise (``noise_response``), and the share of pixels that do not change at all
under any of the perturbations (``zero_pixel_fraction``). A third says whether the arithmetic resolves the noise at
all (``resolution``, :mod:`lns.segmentation.resolution`): a trained decoder whose response is rounding is just as
uninformative, for another reason and with another fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lns.errors import LNSError
from lns.models.adapter import as_adapter
from lns.models.float32 import ieee_float32
from lns.segmentation.resolution import precision_message, resolution

Decoder = Callable[[Tensor], Tensor]
"""Maps latents (M, ...) to the decoder's output (M, C, H, W): logits, unless told otherwise."""


@dataclass(frozen=True)
class SignalThresholds:
    """Config keys ``health.*`` of segmentation: below ``min_noise_response`` or above ``max_zero_fraction`` the
    features count as carrying no signal; a pixel whose change is at most ``zero_atol`` counts as unchanged; below
    ``min_resolution`` the arithmetic does not resolve the noise."""

    min_noise_response: float = 1e-4
    max_zero_fraction: float = 0.9
    zero_atol: float = 0.0
    min_resolution: float = 0.5

    def __post_init__(self) -> None:
        if not (
            self.min_noise_response >= 0
            and 0 <= self.max_zero_fraction <= 1
            and self.zero_atol >= 0
            and 0 <= self.min_resolution <= 1
        ):
            raise LNSError(
                f"health.min_noise_response={self.min_noise_response} and health.zero_atol={self.zero_atol} must "
                f"be >= 0, health.max_zero_fraction={self.max_zero_fraction} and health.min_resolution="
                f"{self.min_resolution} in [0, 1]."
            )


def pixel_changes(
    decode: Decoder,
    means: Tensor,
    noise: Tensor,
    std: float,
    *,
    to_images: Callable[[Tensor], Tensor] = torch.sigmoid,
) -> Tensor:
    """Per-pixel L2 change over channels of to_images(decode) from each mean to each noisy latent: (B, T, H*W).

    ``means`` is (B, *latent), ``noise`` (B, T, *latent); latent t of image b is ``means[b] + std * noise[b, t]``.
    Clean and noisy latents are decoded in one call, so the rows differ only by the noise, not by batch-dependent
    rounding. ``to_images`` turns the decoder's output into images in [0, 1] (sigmoid of logits by default).
    """
    if (
        means.ndim < 2
        or noise.ndim != means.ndim + 1
        or noise.shape[0] != means.shape[0]
        or noise.shape[2:] != means.shape[1:]
    ):
        raise LNSError(
            f"pixel_changes needs means (B, *latent) and noise (B, T, *latent); got {tuple(means.shape)} and "
            f"{tuple(noise.shape)}."
        )
    batch, count = noise.shape[:2]
    latents = torch.cat([means[:, None], means[:, None] + std * noise], dim=1).reshape(-1, *means.shape[1:])
    with torch.no_grad():
        decoded = to_images(decode(latents))
    decoded = decoded.reshape(batch, count + 1, *decoded.shape[1:])
    change = decoded[:, 1:] - decoded[:, :1]
    return torch.linalg.vector_norm(change, dim=2).flatten(2)


def signal_stats(changes: Tensor, noise: Tensor, std: float, zero_atol: float) -> dict[str, float]:
    """``noise_response``: median over images, perturbations and pixels of change / (std * |noise|);
    ``zero_pixel_fraction``: share of (image, pixel) whose change is <= ``zero_atol`` under every perturbation."""
    per_unit = changes / (std * torch.linalg.vector_norm(noise.flatten(2), dim=-1))[..., None]
    unchanged = (changes <= zero_atol).all(dim=1)
    return {
        "noise_response": float(np.median(per_unit.double().cpu().numpy())),
        "zero_pixel_fraction": float(unchanged.double().mean()),
    }


def has_signal(stats: dict[str, float], thresholds: SignalThresholds) -> bool:
    """False when the decoder's response to noise is below the thresholds (collapsed or untrained model)."""
    return (
        stats["noise_response"] >= thresholds.min_noise_response
        and stats["zero_pixel_fraction"] <= thresholds.max_zero_fraction
    )


def is_resolved(stats: dict[str, Any], thresholds: SignalThresholds) -> bool | None:
    """False when rounding, not the decoder, makes most of the response to noise (see :func:`measure_signal`);
    None when there is no response to judge."""
    if stats["resolution"] is None:
        return None
    return stats["resolution"] >= thresholds.min_resolution


def no_signal_message(stats: dict[str, Any], thresholds: SignalThresholds, *, random_weights: bool = False) -> str:
    """The warning printed when :func:`has_signal` is False; ``random_weights``: the untrained-network control
    (``weights=random``), which is untrained on purpose."""
    measured = (
        f"Segmentation health: the decoder hardly responds to latent noise (median change per pixel per unit of "
        f"noise {stats['noise_response']:.2g}, threshold health.min_noise_response="
        f"{thresholds.min_noise_response:g}; {stats['zero_pixel_fraction']:.0%} of the pixels do not change at "
        f"all, threshold health.max_zero_fraction={thresholds.max_zero_fraction:g})."
    )
    if random_weights:
        return (
            f"{measured} This run is the untrained-network control (weights=random): a network with freshly "
            "initialised weights, segmented to show what training adds. Its features carrying no signal is a "
            "result of the control, not a fault to fix; compare its ARI with the trained model's."
        )
    unmeasured = (
        " If the model is trained, the noise may also be too small for its arithmetic to register at all: try a "
        "larger noise.std."
        if stats.get("resolution", 0.0) is None
        else ""
    )
    return (
        f"{measured} The pixel features carry no signal, so this ARI says nothing about the method: the model is "
        "collapsed or untrained. See the training run's health.json; retrain with a lower optimizer.lr or more "
        f"steps (trainer.max_steps).{unmeasured}"
    )


def unresolved_message(
    stats: dict[str, Any], thresholds: SignalThresholds, model: Any, *, std: float, subject: str = "this ARI"
) -> str:
    """The warning given when :func:`is_resolved` is False: the arithmetic, not the model, is at fault; ``subject``
    names what it undermines (the ARI of a run, the labels of an API call)."""
    adapter = as_adapter(model)
    return precision_message(
        stats["resolution"],
        thresholds.min_resolution,
        std=std,
        dtype=adapter.dtype,
        device=adapter.device,
        subject=subject,
    )


def measure_signal(
    model: torch.nn.Module, images: Tensor, *, std: float, perturb_num: int, seed: int, zero_atol: float
) -> dict[str, Any]:
    """:func:`signal_stats` of ``model`` (any model with ``encode`` and ``decode``) on ``images``, and their
    ``resolution`` (:func:`lns.segmentation.resolution.resolution`), in IEEE float32 (or the model's dtype)."""
    if len(images) < 1 or perturb_num < 1:
        raise LNSError(
            f"Segmentation health needs at least one image and one perturbation; got {len(images)} images and "
            f"health.perturb_num={perturb_num}."
        )
    adapter = as_adapter(model)
    images = images.to(device=adapter.device, dtype=adapter.dtype)
    generator = torch.Generator(device=adapter.device).manual_seed(seed)
    with ieee_float32(), torch.no_grad():
        means = torch.cat([adapter.latent_mean(image[None]) for image in images])
        noise = torch.randn(
            (len(images), perturb_num, *means.shape[1:]), generator=generator, device=means.device, dtype=means.dtype
        )
        changes = pixel_changes(adapter.decode, means, noise, std, to_images=adapter.to_images)
        stats = signal_stats(changes, noise, std, zero_atol)
        stats["resolution"] = resolution(adapter.images_from_latent, means, noise, std)
    return stats
