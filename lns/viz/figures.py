"""PNG figures: image and label grids, segmentation panels, method comparison rows, training curves.

Every function draws on its own `matplotlib.figure.Figure` (Agg canvas, no pyplot state), creates the parent
directory, writes a PNG and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Fixed qualitative palette: label 0 (background) is black, labels 1.. cycle through these 20 colours
# (Tableau 10 followed by its lighter companions, so neighbouring labels stay distinct).
_PALETTE = np.array(
    [
        [0.000, 0.000, 0.000],
        [0.122, 0.467, 0.706],
        [1.000, 0.498, 0.055],
        [0.173, 0.627, 0.173],
        [0.839, 0.153, 0.157],
        [0.580, 0.404, 0.741],
        [0.549, 0.337, 0.294],
        [0.890, 0.467, 0.761],
        [0.498, 0.498, 0.498],
        [0.737, 0.741, 0.133],
        [0.090, 0.745, 0.812],
        [0.682, 0.780, 0.910],
        [1.000, 0.733, 0.471],
        [0.596, 0.875, 0.541],
        [1.000, 0.596, 0.588],
        [0.773, 0.690, 0.835],
        [0.769, 0.612, 0.580],
        [0.969, 0.714, 0.824],
        [0.780, 0.780, 0.780],
        [0.859, 0.859, 0.553],
        [0.620, 0.855, 0.898],
    ]
)
_GRID_PAD = 2  # pixels between grid tiles (before upscaling)
_GRID_BG = 0.6  # grey separators, visible on black and on white stimuli
_TITLE_PX = 28  # height of the title strip above a grid
_DPI = 100
_METHOD_TILE_INCHES = 1.6  # a panel of save_method_rows


def label_colors(labels: np.ndarray) -> np.ndarray:
    """Map an integer label array (any shape) to RGB floats in [0, 1]; 0 is black, the palette cycles."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) and not np.all(labels == np.round(labels)):
        raise ValueError("label_colors expects integer labels")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"label_colors expects non-negative labels, got minimum {labels.min()}")
    n_colours = len(_PALETTE) - 1
    index = np.where(labels == 0, 0, (labels - 1) % n_colours + 1)
    return _PALETTE[index]


def save_image_grid(images: np.ndarray, path: str | Path, *, ncols: int = 8, title: str | None = None) -> Path:
    """Write images (N, C, H, W) in [0, 1] (C = 1 or 3) as a grid; tiles are upscaled to at least ~64 px."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"save_image_grid expects (N, 1|3, H, W) images, got shape {images.shape}")
    tiles = np.clip(np.nan_to_num(images), 0.0, 1.0).transpose(0, 2, 3, 1)
    if tiles.shape[-1] == 1:
        tiles = np.repeat(tiles, 3, axis=-1)
    return _save_mosaic(tiles, path, ncols=ncols, title=title)


def save_label_grid(labels: np.ndarray, path: str | Path, *, ncols: int = 8, title: str | None = None) -> Path:
    """Write label maps (N, H, W) as a grid coloured with the fixed palette (`label_colors`)."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"save_label_grid expects (N, H, W) labels, got shape {labels.shape}")
    return _save_mosaic(label_colors(labels), path, ncols=ncols, title=title)


def save_picture_row(
    image: np.ndarray,
    reconstruction: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    *,
    mask: np.ndarray | None = None,
    title: str | None = None,
) -> Path:
    """One picture: input | reconstruction | labels (| ground-truth mask); images (C, H, W) in [0, 1], labels (H, W)."""
    tiles = [_to_rgb(np.asarray(image)), _to_rgb(np.asarray(reconstruction)), label_colors(labels)]
    if mask is not None:
        tiles.append(label_colors(mask))
    return _save_mosaic(np.stack(tiles), path, ncols=len(tiles), title=title)


def save_segmentation_panels(
    images: np.ndarray,
    reconstructions: np.ndarray,
    predictions: np.ndarray,
    masks: np.ndarray,
    path: str | Path,
    *,
    indices: Sequence[int] | None = None,
    scores: Sequence[float] | None = None,
) -> Path:
    """One row per image: input | reconstruction | predicted labels | ground truth.

    `indices` are the dataset indices shown in the row titles (default 0..N-1); `scores` the per-image ARI.
    """
    images = np.asarray(images, dtype=np.float64)
    reconstructions = np.asarray(reconstructions, dtype=np.float64)
    predictions, masks = np.asarray(predictions), np.asarray(masks)
    n = len(images)
    indices = list(range(n)) if indices is None else list(indices)
    for name, array in (
        ("reconstructions", reconstructions),
        ("predictions", predictions),
        ("masks", masks),
        ("indices", indices),
        ("scores", scores if scores is not None else indices),
    ):
        if len(array) != n:
            raise ValueError(f"save_segmentation_panels: {name} has {len(array)} entries, images has {n}")
    if n == 0:
        raise ValueError("save_segmentation_panels needs at least one image")
    columns = ("input", "reconstruction", "predicted labels", "ground truth")
    fig = new_figure((2.0 * len(columns) + 0.6, 2.0 * n + 0.4))
    axes = fig.subplots(n, len(columns), squeeze=False)
    for row in range(n):
        panels = (
            _to_rgb(images[row]),
            _to_rgb(reconstructions[row]),
            label_colors(predictions[row]),
            label_colors(masks[row]),
        )
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=10)
        label = f"#{indices[row]}"
        if scores is not None:
            label += f"\nARI {float(scores[row]):.3f}"
        axes[row, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def save_method_rows(
    labels: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    indices: Sequence[int],
    scores: Mapping[str, Sequence[float]] | None = None,
    images: np.ndarray | None = None,
    masks: np.ndarray | None = None,
) -> Path:
    """Label maps (N, H, W) of each method (one row each, named by its key) for the images ``indices``.

    ``images`` (N, C, H, W) in [0, 1] and ``masks`` (N, H, W), when given, are the first rows; ``scores`` holds each
    method's per-image ARI, shown under its panels.
    """
    if not labels:
        raise ValueError("save_method_rows needs at least one method")
    n = len(indices)
    rows: list[tuple[str, np.ndarray, Sequence[float] | None]] = []
    if images is not None:
        rgb = np.clip(np.nan_to_num(np.asarray(images, dtype=np.float64)), 0, 1).transpose(0, 2, 3, 1)
        rows.append(("input", np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb, None))
    if masks is not None:
        rows.append(("ground truth", label_colors(masks), None))
    for name, maps in labels.items():
        rows.append((name, label_colors(maps), None if scores is None else scores.get(name)))
    for name, panels, _ in rows:
        if len(panels) != n:
            raise ValueError(f"save_method_rows: {name} has {len(panels)} images, indices has {n}")
    fig = new_figure((_METHOD_TILE_INCHES * n + 2.4, _METHOD_TILE_INCHES * len(rows) + 0.4))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for row, (name, panels, row_scores) in enumerate(rows):
        for col in range(n):
            ax = axes[row, col]
            ax.imshow(panels[col], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"#{indices[col]}", fontsize=9)
            if row_scores is not None:
                ax.set_xlabel(f"ARI {float(row_scores[col]):.2f}", fontsize=8)
        axes[row, 0].set_ylabel(name, fontsize=9, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return save_figure(fig, path)


def save_curves(
    curves: Mapping[str, Sequence[tuple[int, float]]], path: str | Path, *, log_scale: Iterable[str] = ()
) -> Path:
    """One subplot per named curve of (step, value) points; log y axis for the names in `log_scale`."""
    if not curves:
        raise ValueError("save_curves needs at least one curve")
    log_names = set(log_scale)
    ncols = min(3, len(curves))
    nrows = math.ceil(len(curves) / ncols)
    fig = new_figure((4.2 * ncols, 3.0 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, points) in zip(axes, curves.items(), strict=False):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        values = np.asarray(list(points), dtype=np.float64).reshape(-1, 2)
        if len(values) == 0:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.plot(values[:, 0], values[:, 1], marker="." if len(values) < 50 else None, lw=1.2)
        if name in log_names and np.any(values[:, 1] > 0):
            ax.set_yscale("log")
    for ax in axes[len(curves) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return save_figure(fig, path)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """(C, H, W) with C = 1 or 3 -> (H, W, 3) clipped to [0, 1]."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a (1|3, H, W) image, got shape {image.shape}")
    rgb = np.clip(np.nan_to_num(image), 0.0, 1.0).transpose(1, 2, 0)
    return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb


def _save_mosaic(tiles: np.ndarray, path: str | Path, *, ncols: int, title: str | None) -> Path:
    """Tile (N, H, W, 3) RGB arrays into one picture drawn at an integer scale, one image pixel per block.

    The PNG is exactly (rows*(H+pad)+pad)*scale high (plus a title strip) and (cols*(W+pad)+pad)*scale wide.
    """
    n, height, width, _ = tiles.shape
    if n == 0:
        raise ValueError("cannot draw a grid of zero images")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    mosaic = np.full((nrows * (height + _GRID_PAD) + _GRID_PAD, ncols * (width + _GRID_PAD) + _GRID_PAD, 3), _GRID_BG)
    for i, tile in enumerate(tiles):
        top = _GRID_PAD + (i // ncols) * (height + _GRID_PAD)
        left = _GRID_PAD + (i % ncols) * (width + _GRID_PAD)
        mosaic[top : top + height, left : left + width] = tile
    scale = max(1, 128 // max(height, width))
    mosaic = mosaic.repeat(scale, axis=0).repeat(scale, axis=1)
    title_px = _TITLE_PX if title else 0
    fig = new_figure((mosaic.shape[1] / _DPI, (mosaic.shape[0] + title_px) / _DPI))
    fig.figimage(mosaic, xo=0, yo=0, origin="upper")
    if title:
        fig.text(0.5, 1.0 - 0.5 * title_px / (mosaic.shape[0] + title_px), title, ha="center", va="center")
    return save_figure(fig, path)


def new_figure(size_inches: tuple[float, float]) -> Figure:
    """A standalone figure on an Agg canvas (no pyplot state), white background, 100 dpi."""
    fig = Figure(figsize=size_inches, dpi=_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as PNG (creating parent directories), release its artists and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, format="png", facecolor="white")
    fig.clear()
    return path
