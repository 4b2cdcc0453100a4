"""LightningModule whose ``test_step`` segments a batch of test images; per-batch results go straight to disk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from lns.data.batches import LabelledBatches
from lns.metrics.ari import ARIMetric, adjusted_rand_index
from lns.models import Autoencoder
from lns.segmentation.features import image_generators, jacobian_features, noise_features
from lns.segmentation.parts import PartStore


@dataclass(frozen=True)
class FeatureSettings:
    """How pixel features are made: ``kind`` is ``noise`` (the paper's LNS) or ``jacobian`` (its noise-free limit)."""

    kind: str = "noise"
    std: float = 1e-3
    perturb_num: int = 40
    site: str = "latent"
    seed: int = 0
    chunk_size: int = 200


def cluster_counts(masks: Tensor, n_clusters: int) -> list[int]:
    """``n_clusters`` for every image, or (``n_clusters <= 0``) the number of labels in each image's mask."""
    if n_clusters > 0:
        return [n_clusters] * len(masks)
    return [int(torch.unique(mask).numel()) for mask in masks]


class SegmentationModule(pl.LightningModule):
    """Runs latent noise segmentation on test batches ``{"images", "masks", "index"}``.

    Each batch's label maps, reconstructions and scores are written to ``store`` at once, so an interrupted run
    loses at most one batch and a rerun skips what is done. ``umap_num``: pixel features of the images with index
    below it are kept for the UMAP plot.
    """

    def __init__(
        self,
        model: Autoencoder,
        clusterer: Callable[[Tensor, list[int]], np.ndarray],
        settings: FeatureSettings,
        store: PartStore,
        batches: LabelledBatches,
        n_clusters: int = 0,
        umap_num: int = 0,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.clusterer = clusterer
        self.settings = settings
        self.store = store
        self.batches = batches
        self.n_clusters = n_clusters
        self.umap_num = umap_num
        self.metric = ARIMetric()

    def pixel_features(self, means: Tensor, index: Tensor) -> Tensor:
        s = self.settings
        if s.kind == "jacobian":
            return jacobian_features(self.model.decode, means, chunk_size=s.chunk_size)
        generators = image_generators(index.tolist(), s.seed, means.device)
        return noise_features(
            self.model.decode,
            means,
            std=s.std,
            perturb_num=s.perturb_num,
            site=s.site,
            generators=generators,
            chunk_size=s.chunk_size,
        )

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        masks, index = batch["masks"], batch["index"]
        images = batch["images"].to(next(self.model.parameters()).dtype)
        with torch.no_grad():
            # One image per encoder call: convolution kernels round differently for other batch sizes, and at
            # sigma=1e-3 that alone moves ward's near-ties; this way labels do not depend on batch_size.
            means = torch.cat([self.model.latent_mean(image[None]) for image in images])
            reconstructions = torch.sigmoid(self.model.decode(means))
        features = self.pixel_features(means, index)
        counts = cluster_counts(masks, self.n_clusters)
        labels = torch.from_numpy(self.clusterer(features, counts)).to(masks.device)
        target = masks.flatten(1)
        self.metric.update(labels, target)
        umap_rows = (index < self.umap_num).nonzero().flatten()
        self.store.write_batch(
            index=index.cpu().numpy(),
            ari=adjusted_rand_index(labels, target).cpu().numpy(),
            ari_fg=adjusted_rand_index(labels, target, foreground_only=True).cpu().numpy(),
            n_clusters=np.asarray(counts),
            labels=labels.view_as(masks).cpu().numpy(),
            reconstructions=reconstructions.float().cpu().numpy(),
            features={int(index[i]): features[i].float().cpu().numpy() for i in umap_rows},
        )

    def on_test_epoch_end(self) -> None:
        self.log_dict({f"test/{key}": value.float() for key, value in self.metric.compute().items()})

    def test_dataloader(self) -> LabelledBatches:
        return self.batches.shard(self.global_rank, self.trainer.world_size)
