"""Pixel features: LNS noise differences and decoder Jacobians, on hand-built decoders with known answers."""

import numpy as np
import pytest
import torch

from lns.errors import LNSError
from lns.metrics import adjusted_rand_index
from lns.segmentation.clustering import KMeansClustering, LeanWardClustering, WardClustering
from lns.segmentation.features import (
    difference_features,
    image_generators,
    jacobian_features,
    noise_features,
)

MASK = torch.zeros(8, 8, dtype=torch.long)
MASK[1:4, 1:7] = 1
MASK[5:7, 2:8] = 2
_WEIGHTS = 0.5 + torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))


def object_decoder(z: torch.Tensor) -> torch.Tensor:
    """Logits (M, 3, 8, 8): object 1 moves only with z[:, 0], object 2 only with z[:, 1]; background fixed."""
    first = (MASK == 1).float() * z[:, 0, None, None, None]
    second = (MASK == 2).float() * z[:, 1, None, None, None]
    return -1.0 + _WEIGHTS * (first + second)


def object_means(batch: int) -> torch.Tensor:
    return 0.5 * torch.randn(batch, 2, generator=torch.Generator().manual_seed(2))


def lns(means: torch.Tensor, indices=None, **kwargs) -> torch.Tensor:
    indices = range(len(means)) if indices is None else indices
    options = {"std": 1e-3, "perturb_num": 10, "generators": image_generators(indices, 0, "cpu")} | kwargs
    return noise_features(object_decoder, means, **options)


BACKENDS = {
    "ward": lambda: WardClustering(workers=1),
    "ward_lean": lambda: LeanWardClustering(workers=1),
    "kmeans": lambda: KMeansClustering(seed=0),
}


def segment_ari(features: torch.Tensor, backend: str) -> torch.Tensor:
    batch = features.shape[0]
    n_labels = len(MASK.unique())
    labels = BACKENDS[backend]()(features, [n_labels] * batch)
    return adjusted_rand_index(torch.from_numpy(labels), MASK.reshape(1, -1).expand(batch, -1))


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_latent_noise_segments_the_objects(backend):
    ari = segment_ari(lns(object_means(3)), backend)
    assert torch.allclose(ari, torch.ones(3, dtype=torch.float64))


def test_jacobian_features_segment_the_objects():
    ari = segment_ari(jacobian_features(object_decoder, object_means(3)), "ward")
    assert torch.allclose(ari, torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("backend", ["ward", "kmeans"])
def test_output_noise_does_not_segment(backend):
    ari = segment_ari(lns(object_means(4), site="output"), backend)
    assert ari.mean() < 0.3


def test_feature_shapes_and_unit_norms():
    features = lns(object_means(2), perturb_num=7)
    assert features.shape == (2, 64, 3 * 6)
    norms = features.reshape(2, 64, 3, 6).norm(dim=-1)  # one norm per (pixel, channel)
    foreground = (MASK.reshape(-1) > 0)[None, :, None].expand_as(norms)
    assert torch.allclose(norms[foreground], torch.ones(()), atol=1e-5)
    assert torch.equal(norms[~foreground], torch.zeros_like(norms[~foreground]))

    jacobian = jacobian_features(object_decoder, object_means(2))
    assert jacobian.shape == (2, 64, 3 * 2)
    rows = jacobian.reshape(2, 64, 3, 2)
    assert torch.allclose(rows.norm(dim=-1)[foreground], torch.ones(()), atol=1e-6)
    # Object 1 pixels move only with z[0], object 2 pixels only with z[1].
    assert torch.allclose(rows[:, MASK.reshape(-1) == 1], torch.tensor([1.0, 0.0]))
    assert torch.allclose(rows[:, MASK.reshape(-1) == 2], torch.tensor([0.0, 1.0]))


def test_difference_features_layout_and_values():
    decodings = torch.zeros(1, 3, 2, 1, 2)  # B=1, T=3, C=2, H=1, W=2
    decodings[0, :, 0, 0, 0] = torch.tensor([0.0, 3.0, 7.0])  # d = (-3, -4) -> (-0.6, -0.8)
    decodings[0, :, 1, 0, 0] = torch.tensor([1.0, 1.0, 0.0])  # d = (0, 1)
    decodings[0, :, 0, 0, 1] = 0.5  # constant -> zero feature
    decodings[0, :, 1, 0, 1] = torch.tensor([2.0, 0.0, 2.0])  # d = (2, -2)
    features = difference_features(decodings)
    expected = torch.tensor([[[-0.6, -0.8, 0.0, 1.0], [0.0, 0.0, 2**-0.5, -(2**-0.5)]]])
    assert torch.allclose(features, expected)


def test_zero_differences_and_zero_jacobian_rows_give_zero_not_nan():
    features = difference_features(torch.full((2, 5, 3, 4, 4), 0.25))
    assert torch.equal(features, torch.zeros(2, 16, 12))
    jacobian = jacobian_features(lambda z: torch.zeros(len(z), 3, 4, 4) + 0 * z.sum(), torch.zeros(2, 3))
    assert torch.equal(jacobian, torch.zeros(2, 16, 9))


@pytest.mark.parametrize("site", ["latent", "output"])
def test_batched_features_equal_one_image_at_a_time(site):
    means = object_means(4)
    indices = [3, 7, 11, 20]
    batched = lns(means, indices, site=site, chunk_size=7)
    for i, index in enumerate(indices):
        single = lns(means[i : i + 1], [index], site=site)
        assert torch.equal(batched[i : i + 1], single)
    jacobian = jacobian_features(object_decoder, means, chunk_size=3)
    for i in range(len(means)):
        assert torch.equal(jacobian[i : i + 1], jacobian_features(object_decoder, means[i : i + 1]))


def test_batched_labels_equal_one_image_at_a_time():
    means = object_means(3)
    features = lns(means, [5, 6, 9])
    for backend in BACKENDS.values():
        cluster = backend()
        batched = cluster(features, [3, 2, 3])
        for i, k in enumerate([3, 2, 3]):
            assert np.array_equal(batched[i], cluster(features[i : i + 1], [k])[0])


def test_generators_depend_on_seed_and_index_only():
    def draw(indices, seed):
        return [torch.randn(4, generator=g) for g in image_generators(indices, seed, "cpu")]

    first = draw([0, 1, 2], 0)
    assert torch.equal(first[1], draw([1], 0)[0])
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(first[0], draw([0], 1)[0])
    with pytest.raises(LNSError, match="non-negative"):
        image_generators([0], -1, "cpu")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"std": 0.0}, "noise.std=0.0 must be positive"),
        ({"std": -1e-3}, "noise.std=-0.001 must be positive"),
        ({"perturb_num": 1}, "at least 2"),
        ({"site": "pixels"}, "Unknown noise site"),
        ({"generators": []}, "one noise generator per image"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_noise_feature_arguments_are_validated(kwargs, message):
    with pytest.raises(LNSError, match=message):
        lns(object_means(2), **kwargs)


def test_lns_distances_converge_to_jacobian_distances_on_a_linear_decoder():
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(5, 3 * 8 * 8, generator=generator)
    bias = 0.5 * torch.randn(3 * 8 * 8, generator=generator)

    def linear_decoder(z: torch.Tensor) -> torch.Tensor:
        return (z @ weights + bias).reshape(-1, 3, 8, 8)

    means = torch.randn(1, 5, generator=generator)
    upper = torch.triu_indices(64, 64, 1)

    def pixel_distances(features: torch.Tensor) -> np.ndarray:
        distances = torch.cdist(features[0].double(), features[0].double())
        return distances[upper[0], upper[1]].numpy()

    reference = pixel_distances(jacobian_features(linear_decoder, means))
    correlations = []
    for perturb_num in (10, 100, 1000):
        features = noise_features(
            linear_decoder,
            means,
            std=1e-3,
            perturb_num=perturb_num,
            generators=image_generators([0], 0, "cpu"),
        )
        correlations.append(np.corrcoef(pixel_distances(features), reference)[0, 1])
    assert correlations[0] < correlations[1] < correlations[2]
    assert correlations[2] > 0.99
