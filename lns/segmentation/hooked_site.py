"""Noise at a named layer of any model, through forward hooks: the general path of ``noise.site``.

The head runs the model on one image and keeps what the layer outputs. The tail runs the model again with the
layer's output replaced by the given (noisy) activations, so everything after the layer, skip connections included,
sees them. A layer used while encoding gets each copy's image as context (the encoder runs up to the layer again),
one used while decoding gets each copy's latent mean. The layer must run exactly once per image and output one
tensor; anything else is an error naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from lns.errors import LNSError
from lns.models.adapter import ModelAdapter

ENCODE, DECODE = "encode", "decode"


@contextmanager
def _capturing(layer: nn.Module, outputs: list[Any]) -> Iterator[None]:
    handle = layer.register_forward_hook(lambda _module, _inputs, output: outputs.append(output))
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def _replacing(layer: nn.Module, activations: Tensor, site: str) -> Iterator[None]:
    def replace(_module: nn.Module, _inputs: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor) or output.shape != activations.shape:
            raise LNSError(
                f"The layer at site={site} output {getattr(output, 'shape', type(output).__name__)} where the noisy "
                f"activations are shaped {tuple(activations.shape)}: its output must keep the batch in its first "
                "dimension. Pick another layer."
            )
        return activations

    handle = layer.register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()


class HookedSite:
    """Head, context and tail of a model cut at the layer ``site`` (see the module docstring)."""

    def __init__(self, model: ModelAdapter, layer: nn.Module, site: str) -> None:
        self.model = model
        self.layer = layer
        self.site = site
        self.phase: str | None = None

    def head(self, image: Tensor, mean: Tensor) -> Tensor:
        """The layer's output (1, *site shape) while ``image`` (1, C, H, W) is encoded and ``mean`` decoded."""
        encoded: list[Any] = []
        decoded: list[Any] = []
        with _capturing(self.layer, encoded):
            self.model.latent_mean(image)
        with _capturing(self.layer, decoded):
            self.model.images_from_latent(mean)
        runs = len(encoded) + len(decoded)
        if runs != 1:
            how = "never runs" if runs == 0 else f"runs {runs} times"
            raise LNSError(
                f"The layer at site={self.site} ({type(self.layer).__name__}) {how} while {self.model.name} encodes "
                "and decodes one image; noise goes into a layer that runs exactly once. Pick its parent block or "
                "another layer (a module shared by several places, such as one activation object, runs many times)."
            )
        output = (encoded or decoded)[0]
        if not isinstance(output, Tensor):
            raise LNSError(
                f"The layer at site={self.site} ({type(self.layer).__name__}) outputs a {type(output).__name__}, "
                "not one tensor; pick a layer whose output is a tensor."
            )
        self.phase = ENCODE if encoded else DECODE
        return output

    def context(self, images: Tensor, means: Tensor) -> Tensor:
        """What the tail needs of each image besides the site: the image (encoder layers) or its latent mean."""
        return images if self.phase == ENCODE else means

    def tail(self, activations: Tensor, context: Tensor) -> Tensor:
        """Images in [0, 1] with the layer's output replaced by ``activations`` (one row per row of ``context``)."""
        with _replacing(self.layer, activations, self.site):
            if self.phase == ENCODE:
                return self.model.images_from_latent(self.model.latent_mean(context))
            return self.model.images_from_latent(context)
