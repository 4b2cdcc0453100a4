"""``model=diffusers_kl``: diffusers' ``AutoencoderKL`` (the autoencoders of Stable Diffusion) behind the protocol.

A small configuration for 64x64 images by default: four blocks of 16, 32, 64 and 64 channels, one ResNet layer
per block, a latent grid of 4 channels at 1/8 of the image size (4x8x8). The middle block's attention is left out:
forward-mode differentiation (the Jacobian) does not go through it, and it costs time on a CPU. Weights are
always initialised here (never downloaded). Needs the optional ``diffusers`` extra (``pip install "lns[diffusers]"``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lns.errors import LNSError


def _autoencoder_kl() -> type[nn.Module]:
    try:
        from diffusers import AutoencoderKL
    except ImportError as error:
        raise LNSError(
            f"model=diffusers_kl needs the diffusers package, which is not installed ({error}): install the "
            'optional extra, pip install -e ".[diffusers]" (make install does).'
        ) from None
    return AutoencoderKL


class DiffusersKL(nn.Module):
    """A variational autoencoder with a spatial latent: ``encode`` returns the (mean, log-variance) of the latent
    grid (B, latent_channels, image_size / 2**(blocks - 1), same), ``decode`` returns logits."""

    decodes_logits = True

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        latent_channels: int = 4,
        block_out_channels: Sequence[int] = (16, 32, 64, 64),
        layers_per_block: int = 1,
        norm_num_groups: int = 8,
    ) -> None:
        super().__init__()
        widths = tuple(int(width) for width in block_out_channels)
        scale = 2 ** (len(widths) - 1)
        if not widths or any(width % norm_num_groups for width in widths) or image_size % scale:
            raise LNSError(
                f"model.block_out_channels={list(widths)} must be non-empty multiples of model.norm_num_groups="
                f"{norm_num_groups}, and the image size ({image_size}) a multiple of 2**(blocks - 1) = {scale}."
            )
        self.image_size = image_size
        self.channels = channels
        self.net = _autoencoder_kl()(
            in_channels=channels,
            out_channels=channels,
            down_block_types=("DownEncoderBlock2D",) * len(widths),
            up_block_types=("UpDecoderBlock2D",) * len(widths),
            block_out_channels=widths,
            layers_per_block=layers_per_block,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            sample_size=image_size,
            mid_block_add_attention=False,
        )

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log-variance) of the latent grid of ``images`` (B, C, H, W) in [0, 1]."""
        expected = (self.channels, self.image_size, self.image_size)
        if tuple(images.shape[1:]) != expected:
            raise LNSError(
                f"model=diffusers_kl expects images shaped (B, {', '.join(map(str, expected))}), got "
                f"{tuple(images.shape)}; set model.image_size and model.channels to the dataset's."
            )
        posterior = self.net.encode(images).latent_dist
        return posterior.mean, posterior.logvar

    def decode(self, latent: Tensor) -> Tensor:
        """Logits (B, C, H, W) of the images decoded from ``latent``."""
        return self.net.decode(latent).sample

    @property
    def output_layer(self) -> nn.Module:
        """The decoder's last convolution (its bias is the output's per-channel offset)."""
        return self.net.decoder.conv_out
