"""Noise sites (``noise.site``): the model cut where the noise goes, and LNS or Jacobian features at that cut.

A site is ``latent`` (the method), ``output`` (the paper's control: noise on the decoded image in [0, 1]) or the
dotted name of a layer as ``print(model)`` shows it (``encoder.3``, ``decoder.5``). The noise is added to that
layer's output. The head (an image to its site activations) runs once per image; only the tail (site activations to
an image in [0, 1]) runs for every noisy copy. Any model works through the protocol (lns.models.adapter); a layer of
any ``nn.Module`` is reached through forward hooks (lns.segmentation.hooked_site). lns's :class:`Autoencoder` is cut
at its ``nn.Sequential`` blocks instead (``encoder`` and ``decoder`` mean their last layer), so only the layers after
the site run for each copy: at an encoder site the rest of the encoder, the latent mean (the first z_dim outputs for
the VAE) and the decoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lns.errors import LNSError
from lns.models import Autoencoder
from lns.models.adapter import ModelAdapter, as_adapter
from lns.models.layers import layer_by_name
from lns.segmentation.features import (
    Probabilities,
    jacobian_directions,
    site_jacobian_features,
    site_noise_features,
)
from lns.segmentation.hooked_site import HookedSite

LATENT, OUTPUT = "latent", "output"

Head = Callable[[Tensor, Tensor], Tensor]
"""(one image (1, C, H, W), its latent mean (1, ...)) -> its activations at the site (1, *site shape)."""

Context = Callable[[Tensor, Tensor], Tensor]
"""(images (B, C, H, W), latent means (B, ...)) -> what the tail needs of each image besides its site activations."""


@dataclass(frozen=True)
class SplitModel:
    """A model cut at a noise site. ``draw_at_once``: how the noise is drawn (see ``site_noise_features``).

    With a ``context``, the tail is called as ``tail(activations, context rows)`` (the hook-based path)."""

    site: str
    head: Head
    tail: Probabilities
    draw_at_once: bool
    context: Context | None = None


def split_model(model: Autoencoder | ModelAdapter | nn.Module, site: str, *, key: str = "noise.site") -> SplitModel:
    """The model cut at ``site``; an unknown site raises :class:`LNSError` listing the valid ones.

    ``key`` is the name of the setting that gave the site (``noise.site`` in configs, ``site`` in the Python API).
    """
    adapter = as_adapter(model)
    if site == LATENT:
        return SplitModel(site, lambda image, mean: mean, adapter.images_from_latent, True)
    if site == OUTPUT:
        return SplitModel(site, lambda image, mean: adapter.images_from_latent(mean), lambda images: images, True)
    try:
        layer = layer_by_name(adapter.module, site, key=key)
    except LNSError as err:
        raise LNSError(f"{err} Besides layers, {key} can be {LATENT} (the method) or {OUTPUT} (the control).") from None
    if not isinstance(adapter.model, Autoencoder):
        hooked = HookedSite(adapter, layer, site)
        return SplitModel(site, hooked.head, hooked.tail, False, hooked.context)
    model = adapter.model
    part, _, number = site.partition(".")
    layers: nn.Sequential = getattr(model, part)
    index = int(number) if number else len(layers) - 1
    before, after = layers[: index + 1], layers[index + 1 :]
    if part == "encoder":
        return SplitModel(
            site,
            lambda image, mean: before(image),
            lambda codes: torch.sigmoid(model.decode(after(codes)[:, : model.z_dim])),
            False,
        )
    return SplitModel(site, lambda image, mean: before(mean), lambda hidden: torch.sigmoid(after(hidden)), False)


def site_activations(split: SplitModel, images: Tensor, means: Tensor) -> Tensor:
    """Every image's activations at the site, one image per call (so they do not depend on the batch size)."""
    with torch.no_grad():
        return torch.cat([split.head(image[None], mean[None]) for image, mean in zip(images, means, strict=True)])


def _context(split: SplitModel, images: Tensor, means: Tensor) -> Tensor | None:
    return None if split.context is None else split.context(images, means)


def noise_at_site(
    model: Autoencoder | ModelAdapter | nn.Module,
    images: Tensor,
    means: Tensor,
    *,
    site: str,
    std: float,
    perturb_num: int,
    generators: Sequence[torch.Generator],
    relative: bool = False,
    chunk_size: int = 200,
) -> Tensor:
    """LNS pixel features (B, H*W, C*(T-1)) with the noise at ``site``; ``means`` are the images' latent means."""
    split = split_model(model, site)
    return site_noise_features(
        split.tail,
        site_activations(split, images, means),
        std=std,
        perturb_num=perturb_num,
        generators=generators,
        chunk_size=chunk_size,
        relative=relative,
        draw_at_once=split.draw_at_once,
        context=_context(split, images, means),
    )


def jacobian_at_site(
    model: Autoencoder | ModelAdapter | nn.Module,
    images: Tensor,
    means: Tensor,
    *,
    site: str,
    directions: int,
    seed: int,
    chunk_size: int = 16,
) -> Tensor:
    """Jacobian features (B, H*W, C*D) of the map from ``site`` to the output (see ``jacobian_directions``).

    A network that ``torch.func.jvp`` cannot differentiate is an :class:`LNSError` that says so.
    """
    split = split_model(model, site)
    activations = site_activations(split, images, means)
    tangents = jacobian_directions(
        activations.shape[1:], directions, seed=seed, dtype=activations.dtype, device=activations.device
    )
    try:
        return site_jacobian_features(
            split.tail,
            activations,
            directions=tangents,
            chunk_size=chunk_size,
            context=_context(split, images, means),
        )
    except (RuntimeError, NotImplementedError) as error:
        if "out of memory" in str(error):
            raise
        raise LNSError(
            f"The Jacobian cannot be taken through {as_adapter(model).name} after site={site} "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). The Jacobian method "
            "differentiates the network with torch.func.jvp, which needs differentiable operations (no .item(), "
            ".numpy() or in-place changes of inputs, no autograd.Function without forward-mode support). Use the "
            "noise method, which only runs the network."
        ) from None


def site_names(model: Autoencoder) -> list[str]:
    """Every site of the model from the input side to the output: encoder layers, latent, decoder layers, output."""
    encoder = [f"encoder.{i}" for i in range(len(model.encoder))]
    decoder = [f"decoder.{i}" for i in range(len(model.decoder))]
    return [*encoder, LATENT, *decoder, OUTPUT]


def layer_flops(layer: nn.Module, inputs: Tensor, output: Tensor) -> int:
    """FLOPs of one call: 2 per multiply-add of a convolution or linear layer; everything else counts 0."""
    if isinstance(layer, nn.Conv2d):
        return 2 * output.numel() * layer.in_channels // layer.groups * math.prod(layer.kernel_size)
    if isinstance(layer, nn.ConvTranspose2d):
        return 2 * inputs.numel() * layer.out_channels // layer.groups * math.prod(layer.kernel_size)
    if isinstance(layer, nn.Linear):
        return 2 * output.numel() * layer.in_features
    return 0


def tail_flop_shares(model: Autoencoder) -> dict[str, float]:
    """For every site (``site_names`` order): the share of one image's encoder + decoder FLOPs after the site."""
    flops: dict[str, int] = {}

    def counter(name: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def count(layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            flops[name] = layer_flops(layer, inputs[0], output)

        return count

    parameter = next(model.parameters())
    image = torch.zeros(1, model.channels, model.image_size, model.image_size, dtype=parameter.dtype)
    hooks = [
        layer.register_forward_hook(counter(f"{part}.{i}"))
        for part in ("encoder", "decoder")
        for i, layer in enumerate(getattr(model, part))
    ]
    try:
        with torch.no_grad():
            model.decode(model.latent_mean(image.to(parameter.device)))
    finally:
        for hook in hooks:
            hook.remove()
    total = sum(flops.values())
    names = site_names(model)
    layer_order = [name for name in names if name not in (LATENT, OUTPUT)]
    after = {name: sum(flops[later] for later in layer_order[i + 1 :]) for i, name in enumerate(layer_order)}
    after[LATENT] = sum(flops[name] for name in layer_order if name.startswith("decoder."))
    after[OUTPUT] = 0
    return {name: after[name] / total for name in names}
