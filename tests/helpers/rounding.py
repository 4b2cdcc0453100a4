"""A model whose arithmetic rounds like TF32 on any device: what an Ampere GPU does to float32 by default."""

from __future__ import annotations

from torch import Tensor

from lns.models import Autoencoder
from lns.models.float32 import tf32_rounding


class TF32Autoencoder(Autoencoder):
    """lns's autoencoder whose convolutions and linear layers read inputs and weights rounded to TF32."""

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        with tf32_rounding(self):
            return super().encode(images)

    def decode(self, latent: Tensor) -> Tensor:
        with tf32_rounding(self):
            return super().decode(latent)
