"""Figures: each writes a readable PNG of the expected size; the label palette is fixed."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from lns.viz import (
    embed_umap,
    label_colors,
    save_curves,
    save_image_grid,
    save_label_grid,
    save_segmentation_panels,
    save_umap_scatter,
)


def _png_size(path) -> tuple[int, int]:
    """(width, height) of a PNG, read back from disk."""
    assert path.is_file() and path.stat().st_size > 0
    array = mpimg.imread(path)
    return array.shape[1], array.shape[0]


def _labels(n: int, size: int = 16) -> np.ndarray:
    labels = np.zeros((n, size, size), dtype=np.int64)
    labels[:, 2:8, 2:8] = 1
    labels[:, 8:14, 5:15] = 2
    return labels


def test_label_colors_fixed_palette_with_black_background():
    labels = np.arange(30).reshape(5, 6)
    colours = label_colors(labels)
    assert colours.shape == (5, 6, 3)
    assert np.array_equal(colours, label_colors(labels.copy()))
    assert np.all(colours[0, 0] == 0.0)
    assert colours.min() >= 0.0 and colours.max() <= 1.0
    first = colours.reshape(-1, 3)[1:21]
    assert len(np.unique(first, axis=0)) == 20  # labels 1..20 all distinct
    assert not np.any(np.all(colours.reshape(-1, 3)[1:] == 0.0, axis=1))  # only label 0 is black
    with pytest.raises(ValueError):
        label_colors(np.array([[-1, 0]]))
    with pytest.raises(ValueError):
        label_colors(np.array([0.5]))


def test_image_grid_pixel_size(tmp_path):
    images = np.random.default_rng(0).random((10, 3, 16, 16)).astype(np.float32)
    path = save_image_grid(images, tmp_path / "deep" / "grid.png", ncols=4)
    # 4 columns x 3 rows of 16 px tiles with 2 px gaps, upscaled by 128 // 16 = 8
    assert path == tmp_path / "deep" / "grid.png"
    assert _png_size(path) == ((4 * 18 + 2) * 8, (3 * 18 + 2) * 8)
    titled = save_image_grid(images[:2, :1], tmp_path / "titled.png", title="two grey images")
    width, height = _png_size(titled)
    assert width == (2 * 18 + 2) * 8 and height > (18 + 2) * 8


def test_label_grid_uses_palette(tmp_path):
    path = save_label_grid(_labels(3), tmp_path / "labels.png", ncols=8)
    assert _png_size(path) == ((3 * 18 + 2) * 8, (18 + 2) * 8)
    pixels = mpimg.imread(path)[..., :3]
    # inside the first tile, background (label 0) is black and label 1 has the palette's first colour
    assert np.allclose(pixels[3 * 8 + 4, 3 * 8 + 4], 0.0, atol=0.01)
    assert np.allclose(pixels[5 * 8 + 4, 5 * 8 + 4], label_colors(np.array(1)), atol=0.01)


def test_segmentation_panels(tmp_path):
    rng = np.random.default_rng(1)
    images, recons = rng.random((3, 3, 16, 16)), rng.random((3, 3, 16, 16))
    path = save_segmentation_panels(
        images,
        recons,
        _labels(3),
        _labels(3),
        tmp_path / "panels.png",
        indices=[4, 9, 11],
        scores=[0.1, 0.5, 1],
    )
    width, height = _png_size(path)
    assert height > width * 0.5  # three rows of four square panels
    with pytest.raises(ValueError, match="scores"):
        save_segmentation_panels(images, recons, _labels(3), _labels(3), tmp_path / "x.png", scores=[0.1])


def test_curves(tmp_path):
    curves = {"loss": [(i, 1.0 / (i + 1)) for i in range(20)], "geco_beta": [(0, 1.0), (10, 0.1)], "kl": []}
    path = save_curves(curves, tmp_path / "curves.png", log_scale=["loss"])
    assert _png_size(path)[0] > 0
    with pytest.raises(ValueError):
        save_curves({}, tmp_path / "none.png")


def test_umap_embedding_and_scatter(tmp_path):
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 0.1, (15, 4)), rng.normal(3, 0.1, (15, 4))])
    embedding = embed_umap(features, n_neighbors=400, seed=0)  # n_neighbors clipped to N - 1
    assert embedding.shape == (30, 2) and np.all(np.isfinite(embedding))
    labels = np.repeat([0, 2], 15)
    first, second = embedding[:15].mean(0), embedding[15:].mean(0)
    spread = max(embedding[:15].std(0).max(), embedding[15:].std(0).max())
    assert np.linalg.norm(first - second) > spread  # the two blobs stay apart
    path = save_umap_scatter(embedding, labels, tmp_path / "umap" / "scatter.png", title="blobs")
    assert _png_size(path) == (750, 600)
    with pytest.raises(ValueError):
        save_umap_scatter(embedding, labels[:3], tmp_path / "bad.png")
