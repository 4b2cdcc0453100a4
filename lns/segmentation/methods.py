"""Segmentation methods: what turns a batch of test images into pixel features (and, for some, label maps).

A method is one choice of the ``method`` config group. ``SegmentationModule`` calls it once per batch with a
:class:`MethodInput`; it returns a :class:`MethodOutput`. Methods whose output carries no labels have their pixel
features clustered by the ``clustering`` group; region methods (superpixels) label the pixels themselves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from torch import Tensor, nn

from lns.models.adapter import ModelAdapter
from lns.segmentation.features import image_generators
from lns.segmentation.sites import jacobian_at_site, noise_at_site, split_model


@dataclass(frozen=True)
class MethodInput:
    """One batch: the model (a :class:`ModelAdapter`, or any model with ``encode`` and ``decode``), clean images
    (B, C, H, W) in the model's dtype, their latent means (B, ...), their indices in the split and the number of
    clusters asked for each image."""

    model: ModelAdapter | nn.Module
    images: Tensor
    means: Tensor
    index: Tensor
    counts: list[int]


@dataclass(frozen=True)
class MethodOutput:
    """Pixel features (B, H*W, D), kept for UMAP and clustered when ``labels`` is None; or label maps (B, H*W)."""

    features: Tensor
    labels: np.ndarray | None = None


class PixelMethod(Protocol):
    """What a ``method`` choice provides to the segmentation pipeline."""

    def check(self, model: ModelAdapter) -> None:
        """Raise :class:`lns.errors.LNSError` before any image is segmented if the method cannot use ``model``."""

    def record(self) -> dict[str, Any]:
        """The method's name and parameters as stored in ``summary.json`` (``uses_model``: needs the network)."""

    def __call__(self, batch: MethodInput) -> MethodOutput:
        """Features (and possibly labels) for one batch."""


@dataclass(frozen=True)
class FeatureSettings:
    """How pixel features are made: ``kind`` is ``noise`` (the paper's LNS) or ``jacobian`` (its noise-free limit)."""

    kind: str = "noise"
    std: float = 1e-3
    perturb_num: int = 40
    site: str = "latent"
    seed: int = 0
    chunk_size: int = 200
    relative: bool = False
    directions: int = 64


@dataclass(frozen=True)
class LatentNoiseMethod:
    """``method=noise`` and ``method=jacobian`` at ``noise.site``: the paper's method and its limit."""

    settings: FeatureSettings

    def check(self, model: ModelAdapter) -> None:
        """``noise.site`` must be latent, output or a layer of ``model``."""
        split_model(model, self.settings.site)

    def record(self) -> dict[str, Any]:
        return {"name": self.settings.kind, "uses_model": True, **asdict(self.settings)}

    def __call__(self, batch: MethodInput) -> MethodOutput:
        s = self.settings
        model, images, means = batch.model, batch.images, batch.means
        if s.kind == "jacobian":
            features = jacobian_at_site(
                model, images, means, site=s.site, directions=s.directions, seed=s.seed, chunk_size=s.chunk_size
            )
            return MethodOutput(features)
        generators = image_generators(batch.index.tolist(), s.seed, means.device)
        features = noise_at_site(
            model,
            images,
            means,
            site=s.site,
            std=s.std,
            perturb_num=s.perturb_num,
            generators=generators,
            relative=s.relative,
            chunk_size=s.chunk_size,
        )
        return MethodOutput(features)
