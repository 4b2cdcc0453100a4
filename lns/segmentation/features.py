"""Per-pixel features for segmentation: latent-noise differences (LNS) and decoder Jacobians."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from lns.errors import LNSError
from lns.segmentation.noise_checks import check_directions, check_noise

Decoder = Callable[[Tensor], Tensor]
"""Maps latents (M, z) to logits (M, C, H, W)."""

Probabilities = Callable[[Tensor], Tensor]
"""Maps activations at a noise site (M, *site shape) to images in [0, 1] (M, C, H, W). Where the features get a
``context``, it is called as ``probabilities(activations, context)``, with each copy's row of the context."""

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


def _check_means(means: Tensor) -> None:
    if means.ndim != 2:
        raise LNSError(f"Latent means must be shaped (B, z_dim), got {tuple(means.shape)}.")


def _check_chunk_size(chunk_size: int) -> None:
    if chunk_size < 1:
        raise LNSError(f"chunk_size must be at least 1, got {chunk_size}.")


def _in_layout_of(block: Tensor, activations: Tensor) -> Tensor:
    """``block`` in the activations' memory layout: channels_last activations give a channels_last block."""
    channels_last = activations.ndim == 4 and activations.is_contiguous(memory_format=torch.channels_last)
    if channels_last and not activations.is_contiguous():
        return block.contiguous(memory_format=torch.channels_last)
    return block


def _noise_draws(generator: torch.Generator, like: Tensor, perturb_num: int, *, at_once: bool) -> Iterator[Tensor]:
    """The T noise tensors of one image (each shaped like one image's activations ``like[0]``), in order.

    at_once: one randn(T, *shape) draw (the latent and output sites, exactly as before inner sites existed);
    otherwise one randn(*shape) draw per perturbation, so a large activation never has all T copies in memory.
    Both depend only on the generator, i.e. on (seed, image index).
    """
    shape = like.shape[1:]
    if at_once:
        yield from torch.randn((perturb_num, *shape), generator=generator, device=like.device, dtype=like.dtype)
    else:
        for _ in range(perturb_num):
            yield torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


def noise_scales(activations: Tensor, std: float, relative: bool) -> list[float]:
    """Noise std per image: ``std``, or with ``relative`` std times the RMS of the image's activations."""
    if not relative:
        return [std] * activations.shape[0]
    rms = activations.detach().flatten(1).double().pow(2).mean(dim=1).sqrt()
    return [std * float(value) for value in rms]


def site_noise_features(
    probabilities: Probabilities,
    activations: Tensor,
    *,
    std: float,
    perturb_num: int,
    generators: Sequence[torch.Generator],
    chunk_size: int = 200,
    relative: bool = False,
    draw_at_once: bool = False,
    context: Tensor | None = None,
) -> Tensor:
    """LNS pixel features (B, H*W, C*(T-1)) from T = perturb_num noisy copies of each image's site activations.

    Copy t of image b is activations[b] + s_b * eps_bt, eps from generators[b] (see :func:`_noise_draws` for
    ``draw_at_once``) and s_b from :func:`noise_scales`. The copies of all images, image-major, go through
    ``probabilities`` in calls of exactly chunk_size copies, the last one padded with zeros: convolution kernels
    pick their algorithm (and rounding) by batch shape, and with a fixed shape a copy's result never depends on
    what it was batched with (at sigma=1e-3 that rounding alone would move ward's near-ties). Only one chunk of
    noisy copies exists at a time. ``context`` (B, ...): what else the network after the site needs of each image
    (its input or latent mean); every copy gets its image's row, padding gets zeros.
    """
    _check_chunk_size(chunk_size)
    check_noise(std, perturb_num)
    batch = activations.shape[0]
    if len(generators) != batch:
        raise LNSError(f"Need one noise generator per image: got {len(generators)} for {batch} images.")
    scales = noise_scales(activations, std, relative)
    draws = [_noise_draws(g, activations, perturb_num, at_once=draw_at_once) for g in generators]
    plain = activations.contiguous()  # arithmetic in the default layout; each block is converted once
    total = batch * perturb_num
    decoded = []
    with torch.no_grad():
        for start in range(0, total, chunk_size):
            end = min(start + chunk_size, total)
            block = plain.new_zeros((chunk_size, *plain.shape[1:]))
            rows = None if context is None else context.new_zeros((chunk_size, *context.shape[1:]))
            for image in range(start // perturb_num, (end - 1) // perturb_num + 1):
                low, high = max(start, image * perturb_num), min(end, (image + 1) * perturb_num)
                noise = torch.stack([next(draws[image]) for _ in range(high - low)])
                block[low - start : high - start] = plain[image] + scales[image] * noise
                if rows is not None:
                    rows[low - start : high - start] = context[image]
            block = _in_layout_of(block, activations)
            output = probabilities(block) if rows is None else probabilities(block, rows)
            decoded.append(output[: end - start])
        decodings = torch.cat(decoded)
    return difference_features(decodings.reshape(batch, perturb_num, *decodings.shape[1:]))


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
    from generators[b]; the T decodings of all images are decoded together, chunk_size latents per call (the
    last call padded). Noise inside the network: :func:`lns.segmentation.sites.noise_at_site`.
    """
    _check_means(means)
    if site not in SITES:
        raise LNSError(f"Unknown noise site noise.site={site}; valid: {', '.join(SITES)} (the paper's control).")
    options = {"std": std, "perturb_num": perturb_num, "generators": generators, "chunk_size": chunk_size}
    if site == "latent":
        return site_noise_features(lambda latents: torch.sigmoid(decode(latents)), means, draw_at_once=True, **options)
    with torch.no_grad():
        clean = torch.cat([torch.sigmoid(decode(mean[None])) for mean in means])
    return site_noise_features(lambda images: images, clean, draw_at_once=True, **options)


def jacobian_directions(
    shape: Sequence[int], directions: int, *, seed: int, dtype: torch.dtype, device: torch.device | str
) -> Tensor:
    """Tangent directions (D, *shape) for the Jacobian at a site whose activations have ``shape`` (one image).

    Exact where the site is small: with at most ``directions`` units, the unit basis (D = units), so the features
    are the Jacobian rows themselves. Otherwise a random projection: D = ``directions`` vectors with independent
    standard normal entries (drawn from ``seed``, the same for every image). A pixel's row J_p becomes J_p V, and
    (J_p V).(J_q V) / D estimates J_p.J_q with a relative error of about 1/sqrt(D) (Johnson-Lindenstrauss), so the
    normalised rows and ward's distances between them approach the exact ones as D grows. Noise features are the
    same kind of estimate, with T - 1 random (noise-difference) directions.
    """
    check_directions(directions)
    units = math.prod(shape)
    if units <= directions:
        return torch.eye(units, dtype=dtype, device=device).reshape(units, *shape)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((directions, *shape), generator=generator, dtype=torch.float64).to(device, dtype)


def _with_context(probabilities: Probabilities, context: Tensor) -> Probabilities:
    """``probabilities`` with its context rows bound: activations -> images."""
    return lambda activations: probabilities(activations, context)


def site_jacobian_features(
    probabilities: Probabilities,
    activations: Tensor,
    *,
    directions: Tensor,
    chunk_size: int = 64,
    context: Tensor | None = None,
) -> Tensor:
    """Unit-normalised rows of J V at each image's activations: (B, H*W, C*D).

    J is the Jacobian of ``probabilities`` at the activations, V the (D, *site shape) ``directions``. Forward mode
    (torch.func.jvp, vmapped over the D directions) on chunks of at most chunk_size images, so memory per chunk is
    about chunk_size * D times the activations of the layers after the site. Assumes every image is mapped
    independently (true for the models in eval mode). Features per pixel are channel-major (c0 d1..D, c1 ...);
    zero rows stay zero. ``context`` (B, ...): passed along, chunk by chunk, as in :func:`site_noise_features`.
    """
    _check_chunk_size(chunk_size)
    if directions.shape[1:] != activations.shape[1:]:
        raise LNSError(
            f"Jacobian directions shaped {tuple(directions.shape)} do not fit site activations shaped "
            f"{tuple(activations.shape)}: each direction must have the shape of one image's activations."
        )
    count = directions.shape[0]
    parts = []
    with torch.no_grad():
        for start in range(0, len(activations), chunk_size):
            chunk = activations[start : start + chunk_size]
            tangents = directions[:, None].expand(count, *chunk.shape)
            function = probabilities
            if context is not None:
                function = _with_context(probabilities, context[start : start + chunk_size])

            def directional(tangent: Tensor, chunk: Tensor = chunk, function: Probabilities = function) -> Tensor:
                return torch.func.jvp(function, (chunk,), (tangent,))[1]

            jacobian = torch.func.vmap(directional)(tangents)  # (D, b, C, H, W)
            rows = jacobian.permute(1, 3, 4, 2, 0)  # (b, H, W, C, D)
            tiny = torch.finfo(rows.dtype).tiny
            rows = rows / torch.linalg.vector_norm(rows, dim=-1, keepdim=True).clamp_min(tiny)
            parts.append(rows.reshape(len(chunk), rows.shape[1] * rows.shape[2], -1))
    return torch.cat(parts)


def jacobian_features(decode: Decoder, means: Tensor, *, chunk_size: int = 64) -> Tensor:
    """Unit-normalised Jacobian rows of sigmoid(decode) w.r.t. z at the means: (B, H*W, C*z).

    :func:`site_jacobian_features` at the latent with the unit basis as directions (exact); features per pixel
    are channel-major (c0 z1..z, c1 ..., c2 ...). Memory per chunk: about chunk_size * z * C * H * W values plus
    the decoder's activations times z.
    """
    _check_means(means)
    basis = torch.eye(means.shape[1], dtype=means.dtype, device=means.device)
    return site_jacobian_features(
        lambda latents: torch.sigmoid(decode(latents)), means, directions=basis, chunk_size=chunk_size
    )
