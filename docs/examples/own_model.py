"""Segment pictures with your own model: any torch module with encode(images) and decode(latent)."""

import torch
from torch import nn

import lns


class PatchAutoencoder(nn.Module):
    """A stand-in for your trained model: 3x32x32 images <-> a 4x8x8 latent grid; decode gives images in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 4, kernel_size=4, stride=4)
        self.decoder = nn.ConvTranspose2d(4, 3, kernel_size=4, stride=4)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)  # a variational model may return (mean, log_variance)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(latent))  # or return logits and set `decodes_logits = True`


torch.manual_seed(0)
model = PatchAutoencoder()  # yours, trained; or lns.load_model("<a run directory of run_train.py>")
images = torch.full((2, 3, 32, 32), 0.2)
masks = torch.zeros(2, 32, 32, dtype=torch.long)
images[:, :, 8:24, 8:24], masks[:, 8:24, 8:24] = 0.9, 1  # a bright square on a dark background

result = lns.segment_images(model, images, n_clusters=2, perturbations=10)
print(result.labels.shape)  # torch.Size([2, 32, 32]): one label per pixel
print(lns.adjusted_rand_index(result.labels, masks))  # one score per image (near 0 for this untrained stand-in)
jacobian = lns.segment_images(model, images, n_clusters=2, method="jacobian")  # the noise-free limit
