"""LightningModule whose ``test_step`` segments a batch of test images; per-batch results go straight to disk."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from lns.data.batches import LabelledBatches
from lns.metrics.ari import ARIMetric, adjusted_rand_index
from lns.models.adapter import as_adapter
from lns.segmentation.core import Clusterer, segment_batch
from lns.segmentation.methods import FeatureSettings, PixelMethod
from lns.segmentation.parts import PartStore

__all__ = ["FeatureSettings", "SegmentationModule", "cluster_counts"]


def cluster_counts(masks: Tensor, n_clusters: int) -> list[int]:
    """``n_clusters`` for every image, or (``n_clusters <= 0``) the number of labels in each image's mask."""
    if n_clusters > 0:
        return [n_clusters] * len(masks)
    return [int(torch.unique(mask).numel()) for mask in masks]


class SegmentationModule(pl.LightningModule):
    """Segments test batches ``{"images", "masks", "index"}`` of ``model`` (any model with ``encode`` and ``decode``)
    with ``method`` (a ``features`` choice) through the core that the Python API uses too (``segment_batch``).

    The method's pixel features are clustered by ``clusterer`` unless it labels the pixels itself. Each batch's
    label maps, reconstructions and scores are written to ``store`` at once, so an interrupted run loses at most
    one batch and a rerun skips what is done. ``umap_num``: pixel features of the images with index
    below it are kept for the UMAP plot.
    """

    def __init__(
        self,
        model: nn.Module,
        clusterer: Clusterer,
        method: PixelMethod,
        store: PartStore,
        batches: LabelledBatches,
        n_clusters: int = 0,
        umap_num: int = 0,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.adapter = as_adapter(model)
        self.clusterer = clusterer
        self.method = method
        self.store = store
        self.batches = batches
        self.n_clusters = n_clusters
        self.umap_num = umap_num
        self.metric = ARIMetric()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        masks, index = batch["masks"], batch["index"]
        images = batch["images"].to(self.adapter.dtype)
        counts = cluster_counts(masks, self.n_clusters)
        result = segment_batch(self.adapter, images, index, counts, self.method, self.clusterer)
        features, reconstructions = result.features, result.reconstructions
        labels = torch.from_numpy(result.labels).to(masks.device)
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
