"""The model protocol: what lns needs of a generative model to train it and to segment with it."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from lns.errors import LNSError

PROTOCOL_HELP = (
    "lns needs encode(images) -> latent (or (mean, log_variance)) and decode(latent) -> images; see the "
    "'Bring your own model' page of the manual (docs/models.md)."
)


@runtime_checkable
class SegmentableModel(Protocol):
    """A model that lns can segment with: an encoder to a latent and a decoder back to images.

    ``encode(images)`` takes a batch ``(B, C, H, W)`` of images in [0, 1] and returns the latent, a tensor of any
    shape ``(B, ...)``: a vector ``(B, z)`` or a spatial grid ``(B, C', h, w)``. A variational model may return
    ``(mean, log_variance)`` instead (two tensors of one shape); segmentation uses the mean, training adds the KL
    term. ``decode(latent)`` returns images ``(B, C, H, W)`` of the input's size, in [0, 1].

    Optional attributes:

    - ``decodes_logits`` (bool, default False): ``decode`` returns logits and images are ``sigmoid(decode(z))``
      (lns's own autoencoders do this).
    - ``output_layer`` (a module with a bias of C channels): the decoder's last layer, which
      ``callbacks.output_bias`` starts at the training images' mean colour.

    Any ``torch.nn.Module`` with these two methods works; noise at a named layer (``site="decoder.conv_in"``)
    needs a module, and the Jacobian needs a decoder that ``torch.func`` can differentiate.
    """

    def encode(self, images: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Images (B, C, H, W) in [0, 1] -> latent (B, ...), or (mean, log_variance) of one shape."""
        ...

    def decode(self, latent: Tensor) -> Tensor:
        """Latent (B, ...) -> images (B, C, H, W) in [0, 1], or logits when ``decodes_logits`` is True."""
        ...


def model_name(model: Any) -> str:
    """The model's class name, for messages."""
    return type(model).__name__


def check_protocol(model: Any) -> None:
    """Raise :class:`LNSError` unless ``model`` has callable ``encode`` and ``decode`` methods."""
    missing = [name for name in ("encode", "decode") if not callable(getattr(model, name, None))]
    if missing:
        raise LNSError(f"The model ({model_name(model)}) has no callable {' or '.join(missing)}: {PROTOCOL_HELP}")
    logits = getattr(model, "decodes_logits", False)
    if not isinstance(logits, bool):
        raise LNSError(
            f"{model_name(model)}.decodes_logits is {logits!r}; it must be True (decode returns logits) or False "
            "(decode returns images in [0, 1])."
        )
