"""Pixel clustering backends: exact ward (distance matrix or lean) and batched torch k-means.

Every backend is called as ``backend(features (B, N, D), n_clusters) -> labels (B, N) int64`` with labels
0..k-1 numbered in order of first occurrence, so outputs are deterministic.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import fastcluster
import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from lns.errors import LNSError

MAX_CONDENSED_BYTES = 2 * 2**30
"""Largest condensed distance matrix WardClustering builds per image (about 23,000 pixels)."""

_DISTANCE_BLOCK_ROWS = 1024


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber a 1-D label array 0..k-1 in order of first occurrence."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def _check_request(features: Tensor, n_clusters: Sequence[int]) -> list[int]:
    if features.ndim != 3:
        raise LNSError(f"Clustering needs features shaped (B, N, D), got {tuple(features.shape)}.")
    batch, n_points, _ = features.shape
    ks = [int(k) for k in n_clusters]
    if len(ks) != batch:
        raise LNSError(f"Need one cluster count per image: got {len(ks)} for {batch} images.")
    bad = [k for k in ks if not 1 <= k <= n_points]
    if bad:
        raise LNSError(
            f"Cluster counts must lie between 1 and the number of pixels ({n_points}), got {bad}; "
            "set n_clusters to a value in that range, or <= 0 to use each mask's label count."
        )
    if not torch.isfinite(features).all():
        raise LNSError("Pixel features contain NaN or inf; check the model checkpoint and the noise settings.")
    return ks


def _condensed_euclidean(x: np.ndarray) -> np.ndarray:
    """Condensed pairwise Euclidean distances (float64) via |a|^2 + |b|^2 - 2ab, in blocks of rows."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = len(x)
    squared = np.einsum("nd,nd->n", x, x)
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    written = 0
    for start in range(0, n - 1, _DISTANCE_BLOCK_ROWS):
        stop = min(start + _DISTANCE_BLOCK_ROWS, n - 1)
        block = x[start:stop] @ x[start:].T
        block *= -2.0
        block += squared[start:stop, None]
        block += squared[None, start:]
        np.sqrt(np.maximum(block, 0.0, out=block), out=block)
        for row in range(stop - start):
            length = n - start - row - 1
            out[written : written + length] = block[row, row + 1 :]
            written += length
    return out


def _cut(merges: np.ndarray, n_points: int, n_clusters: int) -> np.ndarray:
    """Cluster id of every leaf after applying the first n_points - n_clusters merges of a linkage."""
    n_merges = n_points - n_clusters
    parent = np.arange(2 * n_points - 1)
    children = merges[:n_merges, :2].astype(np.int64)
    new_ids = n_points + np.arange(n_merges)
    parent[children[:, 0]] = new_ids
    parent[children[:, 1]] = new_ids
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent[:n_points]
        parent = grand


def _ward_labels(task: tuple[np.ndarray, int, bool]) -> np.ndarray:
    """Exact ward labels for one image: (features (N, D), k, lean) -> (N,) int64."""
    x, n_clusters, lean = task
    n_points = len(x)
    if n_clusters == n_points:
        return np.arange(n_points, dtype=np.int64)
    if lean:
        merges = fastcluster.linkage_vector(np.ascontiguousarray(x, dtype=np.float64), method="ward")
    else:
        merges = fastcluster.linkage(_condensed_euclidean(x), method="ward", preserve_input=False)
    return canonical_labels(_cut(merges, n_points, n_clusters))


def _limit_blas_threads() -> None:
    threadpool_limits(limits=1)


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _WardBase:
    """Exact ward per image, images spread over a lazily started, reused pool of processes."""

    _lean = False

    def __init__(self, workers: int = 0):
        if workers < 0:
            raise LNSError(f"workers must be >= 0 (0 = one per CPU), got {workers}.")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None

    def __call__(self, features: Tensor, n_clusters: Sequence[int]) -> np.ndarray:
        ks = _check_request(features, n_clusters)
        n_points = features.shape[1]
        if not self._lean and n_points * (n_points - 1) // 2 * 8 > MAX_CONDENSED_BYTES:
            raise LNSError(
                f"Exact ward with a distance matrix needs {n_points * (n_points - 1) * 4 / 2**30:.1f} GiB "
                f"per image for {n_points} pixels; use the lean ward backend (clustering=ward_lean) instead."
            )
        # NumPy has no bfloat16: features of a half-precision model are clustered as float32 (their values as they are).
        x = features.detach().cpu()
        x = (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).numpy()
        tasks = [(x[b], k, self._lean) for b, k in enumerate(ks)]
        workers = self.workers or _available_cpus()
        if workers == 1 or len(tasks) == 1:
            results: Iterable[np.ndarray] = map(_ward_labels, tasks)
        else:
            results = self._run_in_pool(tasks, workers)
        return np.stack(list(results)).astype(np.int64, copy=False)

    def _run_in_pool(self, tasks: list[tuple[np.ndarray, int, bool]], workers: int) -> list[np.ndarray]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_limit_blas_threads)
            self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        try:
            return list(self._pool.map(_ward_labels, tasks))
        except BrokenProcessPool as error:
            self.close()
            raise LNSError(
                "A clustering worker process died: most often it ran out of memory (lower clustering.workers "
                "or use clustering=ward_lean), or, where processes are spawned rather than forked, the "
                "calling script lacks an `if __name__ == '__main__':` guard."
            ) from error

    def close(self) -> None:
        """Stop the worker processes (a later call starts new ones)."""
        if self._finalizer is not None:
            self._finalizer()
        self._pool = None
        self._finalizer = None

    def __getstate__(self) -> dict:
        return {"workers": self.workers, "_pool": None, "_finalizer": None}


class WardClustering(_WardBase):
    """Exact ward linkage (fastcluster, about 2x faster than scipy here) on float64 Euclidean distances.

    Same partitions as sklearn's ward except where merge costs tie exactly, which real pixel features do not do.
    Builds an N^2/2 distance matrix per image (67 MB at 64x64); workers = processes (0 = one per CPU,
    1 = in this process), each limited to one BLAS thread, started with the platform's default method.
    """


class LeanWardClustering(_WardBase):
    """Exact ward linkage without a distance matrix (fastcluster.linkage_vector), for large images."""

    _lean = True


class KMeansClustering:
    """Batched k-means (k-means++ init, Lloyd iterations) on the features' device.

    All images in a batch run together, each with its own k; n_init restarts per image and the restart with
    the lowest inertia is kept. Random numbers come from a generator seeded by `seed` and are shared by all
    images, so an image's labels do not depend on the rest of its batch.
    """

    def __init__(self, n_init: int = 4, max_iter: int = 100, seed: int = 0):
        if n_init < 1 or max_iter < 1:
            raise LNSError(f"k-means needs n_init >= 1 and max_iter >= 1, got {n_init} and {max_iter}.")
        self.n_init = n_init
        self.max_iter = max_iter
        self.seed = seed

    def __call__(self, features: Tensor, n_clusters: Sequence[int]) -> np.ndarray:
        ks = _check_request(features, n_clusters)
        x = features.detach()
        if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        with torch.no_grad():
            labels = self._fit(x, torch.tensor(ks, device=x.device))
        return np.stack([canonical_labels(row) for row in labels.cpu().numpy()])

    def _fit(self, x: Tensor, ks: Tensor) -> Tensor:
        batch = x.shape[0]
        valid = torch.arange(int(ks.max()), device=x.device)[None, :] < ks[:, None]  # (B, kmax)
        squared = (x * x).sum(-1)  # (B, N)
        generator = torch.Generator(device=x.device)
        generator.manual_seed(self.seed)
        centers = self._init_centers(x, squared, valid.shape[1], generator)  # (B, R, kmax, D)
        distances = _center_distances(x, squared, centers, valid)
        assign = distances.argmin(-1)
        for _ in range(self.max_iter):
            centers = _update_centers(x, assign, centers)
            distances = _center_distances(x, squared, centers, valid)
            new_assign = distances.argmin(-1)
            if torch.equal(new_assign, assign):
                break
            assign = new_assign
        inertia = distances.gather(-1, assign[..., None]).squeeze(-1).sum(-1)  # (B, R)
        best = inertia.argmin(dim=1)
        return assign[torch.arange(batch, device=x.device), best]

    def _init_centers(self, x: Tensor, squared: Tensor, n_centers: int, generator: torch.Generator) -> Tensor:
        """k-means++ seeding for every (image, restart): (B, R, n_centers, D)."""
        batch, n_points, _ = x.shape
        restarts = self.n_init
        device = x.device
        images = torch.arange(batch, device=device)[:, None]

        def draw() -> Tensor:
            return torch.rand(restarts, generator=generator, device=device, dtype=torch.float64)

        def point_distances(centre: Tensor) -> Tensor:  # centre (B, R, D) -> (B, R, N)
            cross = torch.einsum("bnd,brd->brn", x, centre)
            return (squared[:, None, :] - 2 * cross + (centre * centre).sum(-1)[..., None]).clamp_min(0)

        first = (draw() * n_points).long().clamp_max(n_points - 1)
        chosen = [x[:, first]]  # each (B, R, D)
        closest = point_distances(chosen[0])
        for _ in range(1, n_centers):
            u = draw()
            cumulative = closest.double().cumsum(-1)
            total = cumulative[..., -1:]
            weighted = torch.searchsorted(cumulative, u[None, :, None] * total, right=True).squeeze(-1)
            uniform = (u * n_points).long()[None, :].expand(batch, restarts)
            index = torch.where(total.squeeze(-1) > 0, weighted, uniform).clamp_max(n_points - 1)
            chosen.append(x[images, index])
            closest = torch.minimum(closest, point_distances(chosen[-1]))
        return torch.stack(chosen, dim=2)


def _center_distances(x: Tensor, squared: Tensor, centers: Tensor, valid: Tensor) -> Tensor:
    """Squared distances (B, R, N, k) of points to centers; centers beyond an image's k are at +inf."""
    cross = torch.einsum("bnd,brkd->brnk", x, centers)
    distances = squared[:, None, :, None] - 2 * cross + (centers * centers).sum(-1)[:, :, None, :]
    return distances.clamp_min(0).masked_fill(~valid[:, None, None, :], float("inf"))


def _update_centers(x: Tensor, assign: Tensor, centers: Tensor) -> Tensor:
    """Mean of each cluster's points; an empty cluster keeps its previous center."""
    one_hot = torch.nn.functional.one_hot(assign, centers.shape[2]).to(x.dtype)  # (B, R, N, k)
    sums = torch.einsum("brnk,bnd->brkd", one_hot, x)
    counts = one_hot.sum(2)[..., None]
    return torch.where(counts > 0, sums / counts.clamp_min(1), centers)
