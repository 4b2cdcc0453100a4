"""The convolutional autoencoder (AE) and variational autoencoder (VAE) of the paper.

Layout for 64x64 images, index by index as in the authors' code, so their state dicts load with the same keys:

encoder: 0 conv C->32 k3 s1 p1, 1 ReLU, 2 conv 32->64 k4 s2 p1, 3 ReLU, 4 conv 64->64 k4 s2 p1, 5 ReLU,
6 conv 64->128 k4 s2 p1, 7 ReLU, 8 conv 128->128 k4 s2 p1, 9 ReLU, 10 conv 128->256 k4 s1 p0 (4x4 -> 1x1),
11 ReLU, 12 flatten, 13 linear 256->128, 14 ReLU, 15 linear 128->out (z_dim, or 2*z_dim for the VAE).

decoder: 0 linear z->128, 1 ReLU, 2 linear 128->256, 3 view as 256x1x1, 4 ReLU, 5 convT 256->128 k4 s1 p0,
6 ReLU, 7 convT 128->128 k4 s2 p1, 8 ReLU, 9 convT 128->64 k4 s2 p1, 10 ReLU, 11 convT 64->64 k4 s2 p1,
12 ReLU, 13 convT 64->32 k4 s2 p1, 14 ReLU, 15 convT 32->C k3 s1 p1 (logits).

For 256x256 images (no authors' model exists) two extra stride-2 stages with 32 channels work at the highest
resolutions: the encoder gets conv 32->32 k4 s2 p1 + ReLU twice right after its first conv (256 -> 64), the
decoder gets convT 32->32 k4 s2 p1 + ReLU twice right before its last convT (64 -> 256). Every later encoder
index and the decoder's last convT index therefore shift by 4 (encoder linears at 17, 19; last convT at 19).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lns.errors import LNSError

SUPPORTED_IMAGE_SIZES = (64, 256)

# (in, out) channels of the stride-2 stages below the first conv / above the last convT.
_ENCODER_STAGES = {
    64: ((32, 64), (64, 64), (64, 128), (128, 128)),
    256: ((32, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128)),
}
_DECODER_STAGES = {
    64: ((128, 128), (128, 64), (64, 64), (64, 32)),
    256: ((128, 128), (128, 64), (64, 64), (64, 32), (32, 32), (32, 32)),
}


def _build_encoder(channels: int, out_dim: int, image_size: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(channels, 32, 3, 1, 1), nn.ReLU()]
    for c_in, c_out in _ENCODER_STAGES[image_size]:
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
    layers += [
        nn.Conv2d(128, 256, 4, 1, 0),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, out_dim),
    ]
    return nn.Sequential(*layers)


def _build_decoder(z_dim: int, channels: int, image_size: int) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Linear(z_dim, 128),
        nn.ReLU(),
        nn.Linear(128, 256),
        nn.Unflatten(1, (256, 1, 1)),
        nn.ReLU(),
        nn.ConvTranspose2d(256, 128, 4, 1, 0),
        nn.ReLU(),
    ]
    for c_in, c_out in _DECODER_STAGES[image_size]:
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
    layers.append(nn.ConvTranspose2d(32, channels, 3, 1, 1))
    return nn.Sequential(*layers)


def _init_weights(module: nn.Module) -> None:
    """Kaiming-normal weights, zero biases for Linear and Conv2d; ConvTranspose2d keeps PyTorch's default."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class Autoencoder(nn.Module):
    """Deterministic (AE) or variational (VAE) convolutional autoencoder whose decoder outputs logits."""

    decodes_logits = True

    def __init__(self, z_dim: int = 15, variational: bool = False, channels: int = 3, image_size: int = 64):
        super().__init__()
        if image_size not in SUPPORTED_IMAGE_SIZES:
            raise LNSError(
                f"The autoencoder supports image sizes {' and '.join(map(str, SUPPORTED_IMAGE_SIZES))}, "
                f"not {image_size}; set the model's image_size (and the dataset) to one of them."
            )
        if z_dim < 1 or channels < 1:
            raise LNSError(f"z_dim and channels must be positive integers, got z_dim={z_dim}, channels={channels}.")
        self.z_dim = z_dim
        self.variational = variational
        self.channels = channels
        self.image_size = image_size
        out_dim = 2 * z_dim if variational else z_dim
        self.encoder = _build_encoder(channels, out_dim, image_size)
        self.decoder = _build_decoder(z_dim, channels, image_size)
        _init_weights(self)

    def _check_input(self, x: Tensor) -> None:
        expected = (self.channels, self.image_size, self.image_size)
        if tuple(x.shape[-3:]) != expected:
            raise LNSError(
                f"The autoencoder expects images of shape (B, {', '.join(map(str, expected))}), got "
                f"{tuple(x.shape)}; make the model's channels/image_size match the dataset."
            )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Return (mu, logvar) for the VAE, (code, None) for the AE."""
        self._check_input(x)
        h = self.encoder(x)
        if self.variational:
            return h[:, : self.z_dim], h[:, self.z_dim :]
        return h, None

    def latent_mean(self, x: Tensor) -> Tensor:
        """The AE code or the VAE mean, shape (B, z_dim)."""
        return self.encode(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """Decode latents (B, z_dim) to logits (B, C, H, W); images are sigmoid(logits)."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Return (logits, mu, logvar); the VAE samples z only in training mode, otherwise decodes mu."""
        mu, logvar = self.encode(x)
        z = mu
        if logvar is not None and self.training:
            z = mu + torch.exp(logvar / 2) * torch.randn_like(mu)
        return self.decode(z), mu, logvar
