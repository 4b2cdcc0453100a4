"""Numerical resolution: how much of a decoder's response to latent noise is the decoder's, and how much rounding.

Segmentation features are differences of decodings ``sigma`` apart. In exact arithmetic a small step along a noise
direction ``e`` changes every pixel linearly: the central difference ``c(s) = (D(m + s e) - D(m - s e)) / 2`` at
``2 sigma`` is twice the one at ``sigma``, up to a third-order term (a relative error of order sigma**2). Rounding
(TF32 convolutions, a half-precision model, a decoder that casts internally, a noise too small for the dtype) adds
an error that does not scale with the step, so it breaks that proportion. The resolution of an image is

    1 - |c(2 sigma) - 2 c(sigma)| / |c(2 sigma)|      (norms over its pixels, channels and perturbations)

clipped to [0, 1]: 1 when the arithmetic resolves the noise, near 0 when the differences are rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from lns.errors import LNSError

ImageDecoder = Callable[[Tensor], Tensor]
"""Maps latents (M, ...) to images in [0, 1] (M, C, H, W)."""


def central_differences(decode: ImageDecoder, means: Tensor, noise: Tensor, step: float) -> Tensor:
    """``(decode(m + step e) - decode(m - step e)) / 2`` for every image and noise direction: (B, T, C, H, W).

    ``means`` is (B, *latent), ``noise`` (B, T, *latent). Every latent goes through the decoder on its own: a
    copy's rounding never depends on what it was batched with.
    """
    if means.ndim < 2 or noise.ndim != means.ndim + 1 or noise.shape[0] != means.shape[0]:
        raise LNSError(
            f"central_differences needs means (B, *latent) and noise (B, T, *latent); got {tuple(means.shape)} "
            f"and {tuple(noise.shape)}."
        )
    with torch.no_grad():
        rows = []
        for mean, directions in zip(means, noise, strict=True):
            plus = torch.cat([decode((mean + step * direction)[None]) for direction in directions])
            minus = torch.cat([decode((mean - step * direction)[None]) for direction in directions])
            rows.append((plus - minus) / 2)
    return torch.stack(rows)


def image_resolutions(decode: ImageDecoder, means: Tensor, noise: Tensor, std: float) -> np.ndarray:
    """The resolution of each image (B,) in [0, 1] (see the module's docstring), computed in float64 from the
    decoder's own outputs; NaN for an image whose decodings do not change at all (nothing to resolve)."""
    single = central_differences(decode, means, noise, std).flatten(1).double()
    double = central_differences(decode, means, noise, 2 * std).flatten(1).double()
    scale = torch.linalg.vector_norm(double, dim=1)
    error = torch.linalg.vector_norm(double - 2 * single, dim=1)
    ratio = error / scale.clamp_min(torch.finfo(torch.float64).tiny)
    values = (1 - ratio).clamp(0, 1)
    return torch.where(scale > 0, values, torch.full_like(values, float("nan"))).cpu().numpy()


def resolution(decode: ImageDecoder, means: Tensor, noise: Tensor, std: float) -> float | None:
    """The median resolution over the images whose decodings change: 1 = the arithmetic resolves noise of ``std``,
    0 = the changes are rounding; None when no decoding changes at all (a dead decoder: the health check's
    ``signal`` says so)."""
    values = image_resolutions(decode, means, noise, std)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def precision_message(
    value: float, minimum: float, *, std: float, dtype: torch.dtype, device: torch.device, subject: str
) -> str:
    """The one paragraph that says the arithmetic did not resolve the noise: what was measured, causes, fixes."""
    return (
        f"Numerical resolution: only {value:.0%} of the decoder's response to noise of std {std:g} is the "
        f"decoder's (health.resolution {value:.3f}, threshold health.min_resolution={minimum:g}); the rest is "
        f"rounding, so the pixel features are mostly arithmetic noise and {subject} says little about the method. "
        f"The model runs in {str(dtype).removeprefix('torch.')} on {device}. Likely causes: a model in half "
        "precision (float16 or bfloat16) or a decoder that casts to it inside, a backend that rounds float32 "
        "(TF32 is switched off around lns's own decoding, so look for another), or a noise std too small for the "
        "dtype. Fixes: keep the model in float32 (or segment with precision=float64), remove casts from decode, "
        "or raise noise.std (noise_std in lns.segment_images)."
    )
