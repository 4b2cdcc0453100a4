"""Baselines that need neither noise nor the network: pixel colour (``rgb``), colour and position (``rgbxy``) and
scikit-image's superpixel / graph segmentations (``slic``, ``felzenszwalb``) merged to the asked-for region count."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import skimage.segmentation
import torch
from torch import Tensor

from lns.errors import LNSError
from lns.models.adapter import ModelAdapter
from lns.segmentation.clustering import _available_cpus, _limit_blas_threads, canonical_labels
from lns.segmentation.methods import MethodInput, MethodOutput


def colour_features(images: Tensor) -> Tensor:
    """Each pixel's colour: (B, C, H, W) -> (B, H*W, C)."""
    return images.flatten(2).transpose(1, 2)


def position_features(images: Tensor, weight: float) -> Tensor:
    """Each pixel's (row, column) scaled to [0, weight] over the image: (B, C, H, W) -> (B, H*W, 2)."""
    batch, _, height, width = images.shape
    rows = torch.linspace(0, 1, height, dtype=images.dtype, device=images.device)
    columns = torch.linspace(0, 1, width, dtype=images.dtype, device=images.device)
    grid = torch.stack(torch.meshgrid(rows, columns, indexing="ij"), dim=-1).reshape(height * width, 2)
    return (weight * grid).expand(batch, -1, -1)


@dataclass(frozen=True)
class ColourMethod:
    """``method=rgb``: the clean image's pixel colours, clustered by the ``clustering`` group."""

    def check(self, model: ModelAdapter) -> None:
        """Colours need no model: nothing to check."""

    def record(self) -> dict[str, Any]:
        return {"name": "rgb", "uses_model": False}

    def __call__(self, batch: MethodInput) -> MethodOutput:
        return MethodOutput(colour_features(batch.images))


@dataclass(frozen=True)
class ColourPositionMethod:
    """``method=rgbxy``: colour plus (row, column) in [0, position_weight], clustered by ``clustering``."""

    position_weight: float = 1.0

    def check(self, model: ModelAdapter) -> None:
        if not self.position_weight >= 0:
            raise LNSError(
                f"method.position_weight={self.position_weight} must be >= 0: it scales the pixel coordinates "
                "(0..1 across the image) against colours (0..1 per channel); 0 clusters on colour alone."
            )

    def record(self) -> dict[str, Any]:
        return {"name": "rgbxy", "uses_model": False, "position_weight": float(self.position_weight)}

    def __call__(self, batch: MethodInput) -> MethodOutput:
        images = batch.images
        return MethodOutput(torch.cat([colour_features(images), position_features(images, self.position_weight)], -1))


def ward_merge(points: np.ndarray, sizes: np.ndarray, n_clusters: int) -> np.ndarray:
    """Size-weighted ward on region mean colours: the cluster (0..n_clusters-1) of each of the R points.

    Merging A and B costs |A||B| / (|A| + |B|) * |mean(A) - mean(B)|^2, the rise in the pixels' within-cluster sum
    of squares, so the result is ward on the pixels with each region kept whole. Ties go to the lowest indices.
    """
    centres = np.asarray(points, dtype=np.float64).copy()
    weights = np.asarray(sizes, dtype=np.float64).copy()
    count = len(centres)
    owner = np.arange(count)
    alive = np.ones(count, dtype=bool)

    def costs(row: int) -> np.ndarray:
        distance = ((centres - centres[row]) ** 2).sum(1)
        cost = weights * weights[row] / (weights + weights[row]) * distance
        cost[~alive] = np.inf
        cost[row] = np.inf
        return cost

    table = np.stack([costs(row) for row in range(count)]) if count else np.zeros((0, 0))
    for _ in range(count - n_clusters):
        keep, gone = sorted(np.unravel_index(int(np.argmin(table)), table.shape))
        total = weights[keep] + weights[gone]
        centres[keep] = (weights[keep] * centres[keep] + weights[gone] * centres[gone]) / total
        weights[keep] = total
        alive[gone] = False
        owner[owner == gone] = keep
        table[gone, :] = table[:, gone] = np.inf
        table[keep, :] = table[:, keep] = costs(keep)
    return canonical_labels(owner)


def merge_regions(image: np.ndarray, regions: np.ndarray, n_clusters: int) -> np.ndarray:
    """Merge the regions (H, W) of an image (C, H, W) into ``n_clusters`` labels (H*W,) by :func:`ward_merge`.

    Raises ``ValueError`` when there are fewer regions than ``n_clusters`` (the caller names the method and image).
    """
    _, inverse, sizes = np.unique(regions.reshape(-1), return_inverse=True, return_counts=True)
    if len(sizes) < n_clusters:
        raise ValueError(f"{len(sizes)} regions for {n_clusters} clusters")
    colours = image.reshape(image.shape[0], -1).T.astype(np.float64)
    means = np.zeros((len(sizes), colours.shape[1]))
    np.add.at(means, inverse, colours)
    means /= sizes[:, None]
    return canonical_labels(ward_merge(means, sizes, n_clusters)[inverse])


def region_means(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each pixel's mean colour over its label: image (C, H, W), labels (H*W,) -> (H*W, C)."""
    colours = image.reshape(image.shape[0], -1).T.astype(np.float64)
    sums = np.zeros((int(labels.max()) + 1, colours.shape[1]))
    np.add.at(sums, labels, colours)
    return (sums / np.bincount(labels)[:, None])[labels]


def _superpixel_task(task: tuple[str, dict[str, Any], np.ndarray, int]) -> tuple[np.ndarray, int]:
    """One image: (scikit-image function name, its keyword arguments, image (C, H, W), k) -> (labels, regions)."""
    function_name, parameters, image, n_clusters = task
    regions = getattr(skimage.segmentation, function_name)(image.transpose(1, 2, 0), channel_axis=-1, **parameters)
    produced = len(np.unique(regions))
    if produced < n_clusters:
        return np.empty(0, dtype=np.int64), produced
    return merge_regions(image, regions, n_clusters), produced


@dataclass
class ImagePool:
    """Runs a per-image function over a list of tasks, in a lazily started, reused pool of ``workers`` processes
    (0 = one per CPU; 1 = in this process)."""

    workers: int = 0
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)

    def map(self, function: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
        workers = self.workers or _available_cpus()
        if workers == 1 or len(tasks) == 1:
            return [function(task) for task in tasks]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_limit_blas_threads)
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return list(self._pool.map(function, tasks))

    def __getstate__(self) -> dict[str, Any]:
        return {"workers": self.workers, "_pool": None}


class SuperpixelMethod:
    """A scikit-image segmentation (``function``: ``slic`` or ``felzenszwalb``) of each clean image, its regions
    merged to each image's cluster count by size-weighted ward on their mean colours (:func:`merge_regions`).

    Neither function can be told an exact region count, so the merge always runs; images go to ``workers``
    processes. ``limits`` maps each parameter to (lowest allowed value, whether that value itself is allowed).
    """

    function: ClassVar[str]
    limits: ClassVar[dict[str, tuple[float, bool]]]
    hint: ClassVar[str]

    def __init__(self, workers: int, **parameters: float) -> None:
        self.workers = workers
        self.parameters = parameters
        self._pool = ImagePool(workers)

    def check(self, model: ModelAdapter) -> None:
        if self.workers < 0:
            raise LNSError(f"method.workers={self.workers} must be >= 0 (0 = one process per CPU).")
        for name, value in self.parameters.items():
            low, inclusive = self.limits[name]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or value < low or (value == low and not inclusive):
                bound = f">= {low:g}" if inclusive else f"> {low:g}"
                raise LNSError(
                    f"method.{name}={value} is out of range for scikit-image's {self.function}: it must be a "
                    f"number {bound}. Current settings: {self.parameters}."
                )

    def record(self) -> dict[str, Any]:
        return {
            "name": self.function,
            "uses_model": False,
            **self.parameters,
            "region_count": f"{self.function} cannot be told the cluster count; its regions are merged to "
            "n_clusters by size-weighted ward on their mean colours",
        }

    def __call__(self, batch: MethodInput) -> MethodOutput:
        images = batch.images.detach().cpu().double().numpy()
        tasks = [(self.function, self.parameters, image, k) for image, k in zip(images, batch.counts, strict=True)]
        labels = []
        for (result, produced), k, index in zip(
            self._pool.map(_superpixel_task, tasks), batch.counts, batch.index.tolist(), strict=True
        ):
            if produced < k:
                raise LNSError(
                    f"{self.function} produced {produced} regions in test image {index}, fewer than the {k} "
                    f"clusters asked for, so its regions cannot be merged to that count. {self.hint} "
                    "(or lower n_clusters)."
                )
            labels.append(result)
        stacked = np.stack(labels)
        features = np.stack([region_means(image, row) for image, row in zip(images, stacked, strict=True)])
        return MethodOutput(torch.from_numpy(features).to(batch.images.dtype), stacked)


class SlicMethod(SuperpixelMethod):
    """``method=slic``: k-means superpixels in colour and position (scikit-image ``slic``)."""

    function = "slic"
    limits: ClassVar[dict[str, tuple[float, bool]]] = {
        "n_segments": (1, True),
        "compactness": (0, False),
        "max_num_iter": (1, True),
        "sigma": (0, True),
    }
    hint = "Raise method.n_segments or lower method.compactness"

    def __init__(
        self,
        n_segments: int = 100,
        compactness: float = 10.0,
        max_num_iter: int = 10,
        sigma: float = 0.0,
        workers: int = 0,
    ) -> None:
        super().__init__(
            workers, n_segments=n_segments, compactness=compactness, max_num_iter=max_num_iter, sigma=sigma
        )


class FelzenszwalbMethod(SuperpixelMethod):
    """``method=felzenszwalb``: graph-based segmentation (scikit-image ``felzenszwalb``)."""

    function = "felzenszwalb"
    limits: ClassVar[dict[str, tuple[float, bool]]] = {"scale": (0, False), "sigma": (0, True), "min_size": (0, True)}
    hint = "Lower method.scale or method.min_size"

    def __init__(self, scale: float = 1.0, sigma: float = 0.8, min_size: int = 20, workers: int = 0) -> None:
        super().__init__(workers, scale=scale, sigma=sigma, min_size=min_size)
