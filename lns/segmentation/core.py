"""The segmentation core that the Python API and ``run_segment.py`` share: images -> features -> clustering -> labels.

Every image is encoded on its own (convolution kernels round differently for other batch sizes, and at sigma=1e-3
that alone moves ward's near-ties), its noise comes from a generator seeded by (seed, its index), and the decoder
runs in calls of a fixed size: labels depend only on the model, the images, the settings and the seed, never on the
batch size or on which entry point ran them. Encoding and features run in IEEE float32 (no TF32, no autocast,
lns.models.float32), whatever the caller's settings: at sigma=1e-3 a TF32 rounding is larger than the noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lns.models.adapter import ModelAdapter
from lns.models.float32 import ieee_float32
from lns.segmentation.methods import MethodInput, PixelMethod

Clusterer = Callable[[Tensor, list[int]], np.ndarray]
"""(pixel features (B, N, D), cluster count per image) -> labels (B, N)."""


@dataclass(frozen=True)
class BatchSegmentation:
    """One batch's label maps (B, H*W) int64, pixel features (B, H*W, D) and reconstructions (B, C, H, W)."""

    labels: np.ndarray
    features: Tensor
    reconstructions: Tensor


def encode_images(model: ModelAdapter, images: Tensor, index: list[int]) -> tuple[Tensor, Tensor]:
    """Latent means (one image per encoder call) and noise-free reconstructions in [0, 1], both checked."""
    with torch.no_grad():
        means = torch.cat([model.latent_mean(image[None]) for image in images])
        model.check_latent(means, index)
        reconstructions = model.images_from_latent(means)
    model.check_images(reconstructions, images)
    return means, reconstructions


def segment_batch(
    model: ModelAdapter,
    images: Tensor,
    index: Tensor,
    counts: Sequence[int],
    method: PixelMethod,
    clusterer: Clusterer,
) -> BatchSegmentation:
    """Segment one batch of images (B, C, H, W) in the model's dtype; ``index``: their numbers (noise seeds)."""
    counts = [int(k) for k in counts]
    with ieee_float32():
        means, reconstructions = encode_images(model, images, index.tolist())
        output = method(MethodInput(model, images, means, index, counts))
    labels = output.labels if output.labels is not None else clusterer(output.features, counts)
    return BatchSegmentation(labels, output.features, reconstructions)


def segment_all(
    model: ModelAdapter,
    images: Tensor,
    counts: Sequence[int],
    method: PixelMethod,
    clusterer: Clusterer,
    batch_size: int,
) -> tuple[Tensor, Tensor]:
    """Label maps (N, H, W) int64 and reconstructions (N, C, H, W) of images numbered 0..N-1, ``batch_size`` at a
    time (the images are already in the model's dtype and on its device)."""
    labels, reconstructions = [], []
    for start in range(0, len(images), batch_size):
        index = torch.arange(start, min(start + batch_size, len(images)))
        batch = segment_batch(model, images[index], index, counts[start : start + batch_size], method, clusterer)
        labels.append(torch.from_numpy(batch.labels))
        reconstructions.append(batch.reconstructions.detach())
    height, width = images.shape[-2:]
    return torch.cat(labels).reshape(len(images), height, width), torch.cat(reconstructions)
