"""One picture comparing segmentation methods on the same images: a row per method, a column per image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lns.viz.figures import label_colors, new_figure, save_figure

_TILE_INCHES = 1.6


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
    fig = new_figure((_TILE_INCHES * n + 2.4, _TILE_INCHES * len(rows) + 0.4))
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
