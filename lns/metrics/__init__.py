"""Segmentation metrics: adjusted Rand index per image and its DDP-safe aggregate."""

from lns.metrics.ari import ARIMetric, adjusted_rand_index

__all__ = ["ARIMetric", "adjusted_rand_index"]
