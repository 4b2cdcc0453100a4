"""ARI and ARI-FG against sklearn, and the DDP-safe aggregate metric."""

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from lns.errors import LNSError
from lns.metrics import ARIMetric, adjusted_rand_index


def sklearn_ari(pred: np.ndarray, target: np.ndarray, foreground_only: bool = False) -> np.ndarray:
    scores = []
    for p, t in zip(pred.reshape(len(pred), -1), target.reshape(len(target), -1), strict=True):
        keep = t != 0 if foreground_only else np.ones_like(t, dtype=bool)
        scores.append(adjusted_rand_score(t[keep], p[keep]) if keep.any() else np.nan)
    return np.array(scores)


def ari(pred, target, **kwargs) -> np.ndarray:
    return adjusted_rand_index(torch.as_tensor(pred), torch.as_tensor(target), **kwargs).numpy()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("foreground_only", [False, True])
def test_random_label_maps_equal_sklearn(seed, foreground_only):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 4, size=(6, 12, 12))
    pred = rng.integers(0, 3 + seed, size=(6, 12, 12))
    pred[:3] = np.where(rng.random((3, 12, 12)) < 0.8, target[:3], pred[:3])  # some high-scoring images
    pred_t, target_t = torch.from_numpy(pred), torch.from_numpy(target)
    result = adjusted_rand_index(pred_t, target_t, foreground_only=foreground_only)
    assert result.dtype == torch.float64 and result.shape == (6,)
    np.testing.assert_allclose(result.numpy(), sklearn_ari(pred, target, foreground_only), rtol=0, atol=1e-12)


def test_permuted_and_sparse_label_ids_score_one():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(3, 100))
    pred = np.array([40, 7, 1000, 3, 9])[target]
    np.testing.assert_array_equal(ari(pred, target), np.ones(3))


@pytest.mark.parametrize(
    ("pred", "target"),
    [
        ([0, 0, 0, 0], [0, 0, 0, 0]),  # both one cluster -> 1
        ([0, 1, 2, 3], [3, 2, 1, 0]),  # both all singletons -> 1
        ([0, 0, 0, 0], [0, 1, 2, 3]),  # one cluster vs singletons -> 0
        ([0, 0, 1, 1], [0, 1, 0, 1]),  # -0.5
        ([5], [2]),  # a single pixel
        ([0, 0, 0, 1], [1, 1, 1, 1]),
    ],
)
def test_degenerate_cases_equal_sklearn(pred, target):
    expected = adjusted_rand_score(target, pred)
    assert ari([pred], [target])[0] == pytest.approx(expected, abs=1e-15)


def test_foreground_only_drops_background_and_is_nan_without_foreground():
    target = np.array([[0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 0]])
    pred = np.array([[3, 4, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1]])
    full = ari(pred, target)
    fg = ari(pred, target, foreground_only=True)
    assert fg[0] == 1.0 and full[0] < 1.0
    assert np.isnan(fg[1]) and full[1] == pytest.approx(adjusted_rand_score(target[1], pred[1]))


def test_large_images_do_not_overflow():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 6, size=(1, 256 * 256))
    pred = np.where(rng.random((1, 256 * 256)) < 0.9, target, rng.integers(0, 6, size=(1, 256 * 256)))
    np.testing.assert_allclose(ari(pred, target), sklearn_ari(pred, target), rtol=0, atol=1e-12)


def test_mismatched_shapes_raise_lns_error():
    with pytest.raises(LNSError, match="one shape"):
        adjusted_rand_index(torch.zeros(2, 5), torch.zeros(2, 6))


def _expected_summary(ari_values: np.ndarray, fg_values: np.ndarray) -> dict[str, float]:
    fg_values = fg_values[~np.isnan(fg_values)]
    return {
        "ari_mean": ari_values.mean(),
        "ari_std": ari_values.std(),
        "ari_fg_mean": fg_values.mean(),
        "ari_fg_std": fg_values.std(),
        "n_images": len(ari_values),
    }


def _batches(seed: int, n_batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        target = rng.integers(0, 3, size=(5, 8, 8))
        target[0] = 0  # an image without foreground: NaN ARI-FG, left out of the FG statistics
        pred = np.where(rng.random((5, 8, 8)) < 0.7, target, rng.integers(0, 3, size=(5, 8, 8)))
        batches.append((torch.from_numpy(pred), torch.from_numpy(target)))
    return batches


def test_metric_mean_and_std_equal_numpy():
    batches = _batches(0, 3)
    metric = ARIMetric()
    for pred, target in batches:
        metric.update(pred, target)
    values = np.concatenate([ari(p, t) for p, t in batches])
    fg_values = np.concatenate([ari(p, t, foreground_only=True) for p, t in batches])
    result = metric.compute()
    for key, value in _expected_summary(values, fg_values).items():
        assert result[key].item() == pytest.approx(value, abs=1e-12), key


def test_metric_states_merge_like_two_ranks():
    batches = _batches(1, 4)
    whole, rank0, rank1 = ARIMetric(), ARIMetric(), ARIMetric()
    for i, (pred, target) in enumerate(batches):
        whole.update(pred, target)
        (rank0 if i % 2 == 0 else rank1).update(pred, target)
    summed = {name: getattr(rank0, name) + getattr(rank1, name) for name in rank0._defaults}
    rank0.merge_state(rank1)
    expected = whole.compute()
    merged = rank0.compute()
    for key in expected:
        assert merged[key].item() == pytest.approx(expected[key].item(), abs=1e-12), key
    for name, value in summed.items():
        assert torch.allclose(value, getattr(whole, name), rtol=0, atol=1e-12), name
