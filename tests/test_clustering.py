"""Clustering backends: exact ward equals sklearn, worker-count independence, batched k-means."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.cluster import AgglomerativeClustering

from lns.errors import LNSError
from lns.segmentation.clustering import (
    KMeansClustering,
    LeanWardClustering,
    WardClustering,
    canonical_labels,
)


def blobs(seed: int, batch: int = 1, n_points: int = 160, dim: int = 8, n_blobs: int = 5) -> torch.Tensor:
    """Overlapping Gaussian blobs, so the top of the ward tree is not trivial."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(batch, n_blobs, dim))
    members = rng.integers(0, n_blobs, size=(batch, n_points))
    points = centres[np.arange(batch)[:, None], members] + 0.6 * rng.normal(size=(batch, n_points, dim))
    return torch.tensor(points, dtype=torch.float32)


def sklearn_ward(points: np.ndarray, k: int) -> np.ndarray:
    return canonical_labels(AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(points))


def test_canonical_labels_number_by_first_occurrence():
    assert canonical_labels(np.array([7, 7, 2, 9, 2, 7])).tolist() == [0, 0, 1, 2, 1, 0]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("backend", [WardClustering, LeanWardClustering])
def test_ward_partitions_equal_sklearn(seed, backend):
    features = blobs(seed, batch=3)
    ks = [2, 4, 7]
    labels = backend(workers=1)(features, ks)
    assert labels.dtype == np.int64 and labels.shape == (3, 160)
    for i, k in enumerate(ks):
        assert np.array_equal(labels[i], sklearn_ward(features[i].numpy(), k))


@pytest.mark.parametrize("backend", [WardClustering, LeanWardClustering])
def test_worker_processes_give_identical_labels(backend):
    features = blobs(10, batch=4)
    ks = [3, 5, 2, 6]
    parallel = backend(workers=2)
    try:
        assert np.array_equal(parallel(features, ks), backend(workers=1)(features, ks))
        assert np.array_equal(parallel(features[:2], ks[:2]), backend(workers=1)(features[:2], ks[:2]))
    finally:
        parallel.close()


def test_ward_backend_pickles_without_its_pool():
    backend = WardClustering(workers=2)
    try:
        backend(blobs(0, batch=2), [2, 2])
        restored = pickle.loads(pickle.dumps(backend))
    finally:
        backend.close()
    assert restored.workers == 2 and restored._pool is None


@pytest.mark.parametrize("backend", [WardClustering, LeanWardClustering, KMeansClustering])
def test_extreme_cluster_counts(backend):
    features = blobs(1, n_points=20)
    cluster = backend(workers=1) if backend is not KMeansClustering else backend()
    assert np.array_equal(cluster(features, [1])[0], np.zeros(20))
    if backend is not KMeansClustering:
        assert np.array_equal(cluster(features, [20])[0], np.arange(20))


@pytest.mark.parametrize("backend", [WardClustering, LeanWardClustering, KMeansClustering])
def test_invalid_requests_raise_lns_error(backend):
    cluster = backend()
    features = blobs(0, batch=2, n_points=10)
    with pytest.raises(LNSError, match="between 1 and the number of pixels"):
        cluster(features, [2, 11])
    with pytest.raises(LNSError, match="between 1 and the number of pixels"):
        cluster(features, [0, 2])
    with pytest.raises(LNSError, match="one cluster count per image"):
        cluster(features, [2])
    with pytest.raises(LNSError, match="NaN"):
        cluster(torch.full((1, 10, 3), float("nan")), [2])
    with pytest.raises(LNSError, match=r"\(B, N, D\)"):
        cluster(features[0], [2])


def test_ward_with_a_distance_matrix_refuses_huge_images():
    with pytest.raises(LNSError, match="ward_lean"):
        WardClustering(workers=1)(torch.zeros(1, 24000, 1), [2])


def test_kmeans_recovers_separated_clusters_with_a_k_per_image():
    rng = np.random.default_rng(0)
    ks = [2, 5, 3]
    features, truth = [], []
    for k in ks:
        members = rng.integers(0, k, size=300)
        members[:k] = np.arange(k)
        centres = 20 * rng.normal(size=(k, 6))
        features.append(centres[members] + rng.normal(size=(300, 6)))
        truth.append(canonical_labels(members))
    labels = KMeansClustering(seed=3)(torch.tensor(np.stack(features), dtype=torch.float32), ks)
    for i in range(len(ks)):
        assert np.array_equal(labels[i], truth[i])


def test_kmeans_is_deterministic_and_independent_of_the_batch():
    features = blobs(4, batch=4)
    ks = [3, 6, 2, 4]
    cluster = KMeansClustering(n_init=3, seed=7)
    labels = cluster(features, ks)
    assert np.array_equal(labels, KMeansClustering(n_init=3, seed=7)(features, ks))
    for i, k in enumerate(ks):
        assert np.array_equal(labels[i], cluster(features[i : i + 1], [k])[0])
        assert labels[i].max() == k - 1


def test_kmeans_keeps_the_lowest_inertia_restart():
    features = blobs(5, n_points=200, n_blobs=8)

    def inertia(labels: np.ndarray) -> float:
        points = features[0].double().numpy()
        groups = [points[labels == c] for c in np.unique(labels)]
        return sum(((group - group.mean(0)) ** 2).sum() for group in groups)

    single = [inertia(KMeansClustering(n_init=1, seed=seed)(features, [8])[0]) for seed in range(8)]
    restarted = [inertia(KMeansClustering(n_init=8, seed=seed)(features, [8])[0]) for seed in range(4)]
    assert max(restarted) < np.median(single)
    assert max(restarted) <= 1.01 * min(single)


def test_kmeans_survives_identical_points():
    labels = KMeansClustering()(torch.zeros(2, 30, 4), [3, 1])
    assert np.array_equal(labels, np.zeros((2, 30)))


def test_kmeans_arguments_are_validated():
    with pytest.raises(LNSError, match="n_init"):
        KMeansClustering(n_init=0)
    with pytest.raises(LNSError, match="workers"):
        WardClustering(workers=-1)
