"""Adjusted Rand index (ARI, ARI-FG) per image, and a torchmetrics aggregate exact across processes."""

from __future__ import annotations

import torch
import torchmetrics
from torch import Tensor

from lns.errors import LNSError


def _compact(labels: Tensor) -> tuple[Tensor, int]:
    """Labels renumbered 0..K-1 over the whole batch, and K."""
    if labels.numel() == 0:
        return labels, 1
    ids = torch.unique(labels, return_inverse=True)[1]
    return ids, int(ids.max()) + 1


def adjusted_rand_index(pred: Tensor, target: Tensor, *, foreground_only: bool = False) -> Tensor:
    """ARI between predicted and true label maps per image: (B, N) or (B, H, W) -> (B,) float64.

    Equal to sklearn.metrics.adjusted_rand_score per image, including its special cases (identical
    partitions, e.g. both a single cluster, score 1.0). With foreground_only, pixels whose target is 0 are
    dropped; an image without foreground pixels scores NaN.
    """
    target = torch.as_tensor(target)
    pred = torch.as_tensor(pred).to(target.device)
    if pred.shape != target.shape or pred.ndim < 2:
        raise LNSError(
            f"ARI needs prediction and target label maps of one shape (B, N) or (B, H, W), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}."
        )
    batch = pred.shape[0]
    pred = pred.reshape(batch, -1).long()
    target = target.reshape(batch, -1).long()
    pred_ids, n_pred = _compact(pred)
    true_ids, n_true = _compact(target)
    images = torch.arange(batch, device=target.device)[:, None]
    cells = (images * n_pred + pred_ids) * n_true + true_ids
    n_cells = batch * n_pred * n_true
    if foreground_only:
        cells = cells.masked_fill(target == 0, n_cells)
    counts = torch.bincount(cells.reshape(-1), minlength=n_cells + 1)[:n_cells].reshape(batch, n_pred, n_true)

    n = counts.sum((1, 2))
    same_both = (counts * counts).sum((1, 2))
    same_pred = counts.sum(2).square().sum(1)
    same_true = counts.sum(1).square().sum(1)
    # Ordered pair counts as in sklearn's pair_confusion_matrix (exact in int64 up to ~3e9 pixels per image).
    tp = (same_both - n).double()
    fp = (same_pred - same_both).double()
    fn = (same_true - same_both).double()
    tn = n.double() ** 2 - fp - fn - same_both.double()
    agreement = (fn == 0) & (fp == 0)
    denominator = torch.where(agreement, 1.0, (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
    ari = torch.where(agreement, 1.0, 2.0 * (tp * tn - fn * fp) / denominator)
    if foreground_only:
        ari = ari.masked_fill(n == 0, float("nan"))
    return ari


class ARIMetric(torchmetrics.Metric):
    """Mean and population std of ARI and ARI-FG over images, from sums, sums of squares and counts.

    The states reduce by summation, so the statistics are exact across DDP processes. Images without
    foreground pixels (NaN ARI-FG) are left out of the ARI-FG statistics.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    ari_sum: Tensor
    ari_sum_sq: Tensor
    ari_count: Tensor
    ari_fg_sum: Tensor
    ari_fg_sum_sq: Tensor
    ari_fg_count: Tensor

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("ari", "ari_fg"):
            for statistic in ("sum", "sum_sq", "count"):
                zero = torch.tensor(0.0, dtype=torch.float64)
                self.add_state(f"{name}_{statistic}", default=zero, dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of label maps (B, N) or (B, H, W)."""
        self._add("ari", adjusted_rand_index(pred, target))
        fg = adjusted_rand_index(pred, target, foreground_only=True)
        self._add("ari_fg", fg[~fg.isnan()])

    def _add(self, name: str, values: Tensor) -> None:
        values = values.to(device=self.ari_sum.device, dtype=torch.float64)
        setattr(self, f"{name}_sum", getattr(self, f"{name}_sum") + values.sum())
        setattr(self, f"{name}_sum_sq", getattr(self, f"{name}_sum_sq") + values.square().sum())
        setattr(self, f"{name}_count", getattr(self, f"{name}_count") + values.numel())

    def compute(self) -> dict[str, Tensor]:
        """ari_mean, ari_std, ari_fg_mean, ari_fg_std (NaN when no image counted) and n_images."""
        out: dict[str, Tensor] = {}
        for name in ("ari", "ari_fg"):
            count = getattr(self, f"{name}_count")
            mean = getattr(self, f"{name}_sum") / count
            variance = getattr(self, f"{name}_sum_sq") / count - mean.square()
            out[f"{name}_mean"] = mean
            out[f"{name}_std"] = variance.clamp_min(0).sqrt()
        out["n_images"] = self.ari_count.long()
        return out
