"""Per-pixel features for segmentation: latent-noise differences (LNS) and decoder Jacobians."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from lns.errors import LNSError

Decoder = Callable[[Tensor], Tensor]
"""Maps latents (M, z) to logits (M, C, H, W)."""

SITES = ("latent", "output")


def image_generators(indices: Sequence[int], seed: int, device: torch.device | str) -> list[torch.Generator]:
    """One generator per image, seeded from (seed, index) so noise is independent of batching."""
    if seed < 0 or any(int(index) < 0 for index in indices):
        raise LNSError(
            f"Noise seeds must be non-negative, got seed={seed} and image indices {list(indices)}; "
            "set seed to a value >= 0."
        )
    generators = []
    for index in indices:
        state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
        generator = torch.Generator(device=device)
        generator.manual_seed(int(state[0]) << 32 | int(state[1]))
        generators.append(generator)
    return generators


def difference_features(decodings: Tensor, eps: float = 1e-12) -> Tensor:
    """Normalised consecutive differences of T decodings per image: (B,T,C,H,W) -> (B, H*W, C*(T-1)).

    d_t = y_{t-1} - y_t; each (channel, pixel) vector over t is divided by its L2 norm (clamped below by eps,
    so an all-zero vector stays zero). Features per pixel are channel-major: c0 t1..T-1, c1 ..., c2 ....
    """
    if decodings.ndim != 5 or decodings.shape[1] < 2:
        raise LNSError(
            f"difference_features needs decodings shaped (B, T, C, H, W) with T >= 2, got {tuple(decodings.shape)}."
        )
    batch, _, _, height, width = decodings.shape
    differences = decodings[:, :-1] - decodings[:, 1:]
    differences = differences / torch.linalg.vector_norm(differences, dim=1, keepdim=True).clamp_min(eps)
    return differences.permute(0, 3, 4, 2, 1).reshape(batch, height * width, -1)


def check_noise_settings(std: float, perturb_num: int, site: str) -> None:
    """Raise :class:`LNSError` for a noise std <= 0, fewer than 2 perturbations or an unknown noise site."""
    if not std > 0:
        raise LNSError(f"noise.std={std} must be positive (the paper uses 0.001).")
    if perturb_num < 2:
        raise LNSError(
            f"noise.perturb_num={perturb_num} must be at least 2 to form differences (the paper uses 10 or more)."
        )
    if site not in SITES:
        raise LNSError(f"Unknown noise site noise.site={site}; valid: {', '.join(SITES)} (the paper's control).")


def _check_means(means: Tensor) -> None:
    if means.ndim != 2:
        raise LNSError(f"Latent means must be shaped (B, z_dim), got {tuple(means.shape)}.")


def _check_chunk_size(chunk_size: int) -> None:
    if chunk_size < 1:
        raise LNSError(f"chunk_size must be at least 1, got {chunk_size}.")


def _decode_probabilities(decode: Decoder, latents: Tensor, chunk_size: int) -> Tensor:
    """sigmoid(decode(latents)) for latents (M, z), in decoder calls of exactly chunk_size latents.

    The last chunk is padded with zero latents, so every call has the same shape: convolution kernels pick
    their algorithm (and rounding) by batch shape, and with a fixed shape a latent's decoding never depends on
    what it was batched with. At sigma=1e-3 that rounding alone would move ward's near-ties.
    """
    count = latents.shape[0]
    padded = latents.new_zeros((-(-count // chunk_size) * chunk_size, latents.shape[1]))
    padded[:count] = latents
    return torch.cat([torch.sigmoid(decode(chunk)) for chunk in padded.split(chunk_size)])[:count]


def noise_features(
    decode: Decoder,
    means: Tensor,
    *,
    std: float,
    perturb_num: int,
    site: str = "latent",
    generators: Sequence[torch.Generator],
    chunk_size: int = 200,
) -> Tensor:
    """LNS pixel features (B, H*W, C*(T-1)) from T = perturb_num noisy decodings of each latent mean.

    site "latent": decode z_t = m + std * eps_t (the method). site "output": decode m once and add
    std * eps_t to the sigmoid output (the paper's control, which should not segment). Image b's noise comes
    from generators[b]; the T decodings of all images are decoded together, chunk_size
    latents per call (the last call padded).
    """
    _check_means(means)
    _check_chunk_size(chunk_size)
    check_noise_settings(std, perturb_num, site)
    batch, z_dim = means.shape
    if len(generators) != batch:
        raise LNSError(f"Need one noise generator per image: got {len(generators)} for {batch} images.")

    with torch.no_grad():
        if site == "latent":
            noise = torch.stack(
                [
                    torch.randn(perturb_num, z_dim, generator=g, device=means.device, dtype=means.dtype)
                    for g in generators
                ]
            )
            latents = (means[:, None, :] + std * noise).reshape(batch * perturb_num, z_dim)
            decodings = _decode_probabilities(decode, latents, chunk_size)
            decodings = decodings.reshape(batch, perturb_num, *decodings.shape[1:])
        else:
            clean = torch.cat([torch.sigmoid(decode(mean[None])) for mean in means])
            noise = torch.stack(
                [
                    torch.randn((perturb_num, *clean.shape[1:]), generator=g, device=clean.device, dtype=clean.dtype)
                    for g in generators
                ]
            )
            decodings = clean[:, None] + std * noise
        return difference_features(decodings)


def jacobian_features(decode: Decoder, means: Tensor, *, chunk_size: int = 64) -> Tensor:
    """Unit-normalised Jacobian rows of sigmoid(decode) w.r.t. z at the means: (B, H*W, C*z).

    Forward mode (torch.func.jvp, vmapped over the z basis directions) on chunks of at most chunk_size
    images, so memory per chunk is about chunk_size * z * C * H * W values plus the decoder's activations
    times z. Assumes the decoder treats each latent row independently (true for the models in eval mode).
    Features per pixel are channel-major (c0 z1..z, c1 ..., c2 ...); zero rows stay zero.
    """
    _check_means(means)
    _check_chunk_size(chunk_size)
    z_dim = means.shape[1]
    basis = torch.eye(z_dim, dtype=means.dtype, device=means.device)

    def probabilities(latents: Tensor) -> Tensor:
        return torch.sigmoid(decode(latents))

    parts = []
    with torch.no_grad():
        for chunk in means.split(chunk_size):
            tangents = basis[:, None, :].expand(z_dim, len(chunk), z_dim)

            def directional(tangent: Tensor, chunk: Tensor = chunk) -> Tensor:
                return torch.func.jvp(probabilities, (chunk,), (tangent,))[1]

            jacobian = torch.func.vmap(directional)(tangents)  # (z, b, C, H, W)
            rows = jacobian.permute(1, 3, 4, 2, 0)  # (b, H, W, C, z)
            tiny = torch.finfo(rows.dtype).tiny
            rows = rows / torch.linalg.vector_norm(rows, dim=-1, keepdim=True).clamp_min(tiny)
            parts.append(rows.reshape(len(chunk), rows.shape[1] * rows.shape[2], -1))
    return torch.cat(parts)
