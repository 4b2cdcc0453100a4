"""2-D UMAP embedding of per-pixel features and a scatter plot coloured by label."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from lns.viz.figures import label_colors, new_figure, save_figure

_MAX_LEGEND_ENTRIES = 24


def embed_umap(features: np.ndarray, *, n_neighbors: int = 400, seed: int = 0) -> np.ndarray:
    """Embed features (N, D) in 2-D with umap-learn; n_neighbors is clipped to N - 1 for small inputs."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"embed_umap expects (N, D) features, got shape {features.shape}")
    n = len(features)
    if n < 4:
        raise ValueError(f"embed_umap needs at least 4 points, got {n}")
    import umap  # imported here: loading numba takes seconds and most callers never need it

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(n_neighbors, n - 1)),
        random_state=seed,
        low_memory=True,
        # spectral initialisation needs more points than dimensions; tiny inputs fall back to random init
        init="spectral" if n > 16 else "random",
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
        warnings.filterwarnings("ignore", message=".*not converge.*")
        return np.asarray(reducer.fit_transform(features), dtype=np.float32)


def save_umap_scatter(embedding: np.ndarray, labels: np.ndarray, path: str | Path, *, title: str | None = None) -> Path:
    """Scatter a (N, 2) embedding, points coloured by label (fixed palette, 0 = black), with a legend."""
    embedding, labels = np.asarray(embedding, dtype=np.float64), np.asarray(labels).reshape(-1)
    if embedding.ndim != 2 or embedding.shape[1] != 2:
        raise ValueError(f"save_umap_scatter expects a (N, 2) embedding, got shape {embedding.shape}")
    if len(labels) != len(embedding):
        raise ValueError(f"save_umap_scatter: {len(labels)} labels for {len(embedding)} points")
    colours = label_colors(labels)
    fig = new_figure((7.5, 6.0))
    ax = fig.add_axes((0.08, 0.08, 0.70, 0.84))
    size = float(np.clip(3000.0 / max(len(labels), 1), 0.5, 30.0))
    ax.scatter(embedding[:, 0], embedding[:, 1], c=colours, s=size, linewidths=0, alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    if title:
        ax.set_title(title)
    shown = np.unique(labels)[:_MAX_LEGEND_ENTRIES]
    handles = [
        Line2D([], [], ls="", marker="o", color=label_colors(np.array(lab)), label=f"label {lab}") for lab in shown
    ]
    legend_title = "label" if len(shown) == len(np.unique(labels)) else f"first {len(shown)} labels"
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.80, 0.5), title=legend_title, frameon=False)
    return save_figure(fig, path)
