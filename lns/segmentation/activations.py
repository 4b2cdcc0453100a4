"""``method=activations``: the clean image's activations at one named layer of the model, no noise at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lns.errors import LNSError
from lns.models.adapter import ModelAdapter, as_adapter
from lns.models.layers import layer_by_name
from lns.segmentation.methods import MethodInput, MethodOutput

UPSAMPLING = ("nearest", "bilinear")


def layer_output(model: ModelAdapter, layer: nn.Module, image: Tensor) -> Tensor:
    """What ``layer`` outputs (first) while ``model`` encodes one image (1, C, H, W) and decodes its latent mean."""
    captured: list[Tensor] = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    try:
        with torch.no_grad():
            model.decode(model.latent_mean(image))
    finally:
        handle.remove()
    if not captured or not isinstance(captured[0], Tensor):
        raise LNSError(
            f"The chosen layer ({type(layer).__name__}) "
            f"{'never runs' if not captured else 'does not output one tensor'} while {model.name} encodes and "
            "decodes an image; pick a layer of the network that does."
        )
    return captured[0]


def activation_map(activation: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Per-pixel features (B, H*W, D) from an activation (B, D, h, w), or (B, D) for a layer without a grid.

    A coarser grid is upsampled to ``size`` (``nearest`` or ``bilinear``); a vector is the same at every pixel.
    """
    if activation.ndim == 2:
        activation = activation[:, :, None, None]
    if activation.ndim != 4:
        raise LNSError(
            f"The chosen layer outputs a tensor shaped {tuple(activation.shape)}; method=activations needs a "
            "(B, channels, height, width) or (B, features) output. Pick a convolution, ReLU or linear layer."
        )
    if tuple(activation.shape[-2:]) != tuple(size):
        options = {"align_corners": False} if mode == "bilinear" else {}
        activation = F.interpolate(activation, size=size, mode=mode, **options)
    return activation.flatten(2).transpose(1, 2).contiguous()


@dataclass(frozen=True)
class ActivationMethod:
    """Pixel features = the activations of ``layer`` (a name that ``print(model)`` shows, e.g. ``decoder.14``)
    for the clean image, upsampled (``upsample``) where the layer's grid is coarser than the image's."""

    layer: str = "decoder.14"
    upsample: str = "bilinear"

    def check(self, model: ModelAdapter) -> None:
        layer_by_name(as_adapter(model).module, self.layer, key="method.layer")
        if self.upsample not in UPSAMPLING:
            raise LNSError(f"method.upsample={self.upsample} is unknown; valid: {', '.join(UPSAMPLING)}.")

    def record(self) -> dict[str, Any]:
        return {"name": "activations", "uses_model": True, "layer": self.layer, "upsample": self.upsample}

    def __call__(self, batch: MethodInput) -> MethodOutput:
        model = as_adapter(batch.model)
        layer = layer_by_name(model.module, self.layer, key="method.layer")
        size = tuple(batch.images.shape[-2:])
        # One image per forward pass, as for the latent means: labels then do not depend on the batch size.
        maps = [activation_map(layer_output(model, layer, image[None]), size, self.upsample) for image in batch.images]
        return MethodOutput(torch.cat(maps))
