"""The report's pictures: the method comparison (per dataset, the same test images segmented by every method
present), mean ARI against the noise std and the number of perturbations, and ARI against the noise site's depth.

They are drawn with the primitives of :mod:`lns.viz.figures`."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.errors import LNSError
from lns.report.collect import Run
from lns.report.depth import LATENT, OUTPUT, DepthPoint, site_depth
from lns.report.tables import SweepPoint
from lns.viz.figures import new_figure, save_figure, save_method_rows

FIGURE_IMAGES = 6
"""Images (columns) in each comparison picture: the first ones every method segmented."""
_AXIS_LABELS = {"std": "noise std σ", "perturb_num": "perturbations T"}
_FIXED_LABELS = {"std": "T", "perturb_num": "σ"}


def _per_image_ari(run_dir: Path) -> dict[int, float]:
    with (run_dir / "per_image.csv").open() as handle:
        return {int(row["index"]): float(row["ari"]) for row in csv.DictReader(handle)}


def _label_maps(run_dir: Path) -> dict[int, np.ndarray]:
    with np.load(run_dir / "predictions.npz") as arrays:
        return dict(zip(arrays["index"].tolist(), arrays["labels"], strict=True))


def method_figures(
    runs: Sequence[Run],
    out_dir: Path,
    columns: Sequence[str],
    data_dir: Path | None = None,
    count: int = FIGURE_IMAGES,
) -> tuple[list[Path], list[str]]:
    """``methods_<dataset>.png`` for every dataset segmented by two or more methods (table ``columns``, in that
    order): one row per method (its first run), the first ``count`` images all of them segmented; with
    ``data_dir`` (the datasets' folder; else the folder the segmentation recorded) the input images and ground
    truth come first. Returns the pictures and notes on what was skipped."""
    rank = {column: i for i, column in enumerate(columns)}
    chosen: dict[str, dict[str, Run]] = defaultdict(dict)
    for run in sorted(runs, key=lambda r: (rank.get(r.variant, len(rank)), r.path)):
        chosen[run.dataset].setdefault(run.variant, run)
    files, notes = [], []
    for dataset, by_variant in chosen.items():
        if len(by_variant) < 2:
            continue
        missing = [v for v, run in by_variant.items() if not (run.path.parent / "predictions.npz").is_file()]
        if missing:
            notes.append(f"no methods_{dataset}.png: no predictions.npz beside the summary of {', '.join(missing)}")
            continue
        maps = {variant: _label_maps(run.path.parent) for variant, run in by_variant.items()}
        shared = sorted(set.intersection(*(set(m) for m in maps.values())))[:count]
        if not shared:
            notes.append(f"no methods_{dataset}.png: the methods segmented no image in common")
            continue
        scores = {}
        for variant, run in by_variant.items():
            ari = _per_image_ari(run.path.parent)
            scores[variant] = [ari[i] for i in shared]
        labels = {variant: np.stack([m[i] for i in shared]) for variant, m in maps.items()}
        images = masks = None
        first = next(iter(by_variant.values()))
        folder = data_dir if data_dir is not None else first.data_dir
        if folder is not None:
            size = next(iter(labels.values())).shape[-1]
            try:
                arrays = load_split(dataset_dir(folder, dataset, size), first.split, name=dataset, data_dir=folder)
            except LNSError as error:
                notes.append(f"methods_{dataset}.png without input images: {error}")
            else:
                images, masks = arrays.images[shared], arrays.masks[shared]
        path = out_dir / f"methods_{dataset}.png"
        files.append(save_method_rows(labels, path, indices=shared, scores=scores, images=images, masks=masks))
    return files, notes


def save_sweep_plot(lines: dict[tuple[str, str, float], list[SweepPoint]], param: str, path: Path) -> Path:
    """One subplot per dataset, one line per variant (and fixed other parameter), std error bars over runs."""
    datasets = list(dict.fromkeys(key[0] for key in lines))
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig = new_figure((4.6 * ncols, 3.6 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    lowest = min(p.mean - p.std for points in lines.values() for p in points)
    for ax, dataset in zip(axes, datasets, strict=False):
        for (name, variant, fixed), points in lines.items():
            if name != dataset:
                continue
            ax.errorbar(
                [p.x for p in points],
                [p.mean for p in points],
                yerr=[p.std for p in points],
                marker="o",
                ms=4,
                capsize=3,
                label=f"{variant} ({_FIXED_LABELS[param]}={fixed:g})",
            )
        ax.set_xscale("log")
        if param == "perturb_num":  # label the tested counts themselves, not powers of ten
            ax.set_xticks(sorted({p.x for key, points in lines.items() if key[0] == dataset for p in points}))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(dataset)
        ax.set_xlabel(_AXIS_LABELS[param])
        ax.set_ylabel("mean ARI")
        ax.set_ylim(min(0.0, lowest) - 0.05, 1.05)  # one ARI scale for every dataset
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(datasets) :]:
        ax.set_visible(False)
    fig.suptitle(f"ARI vs {_AXIS_LABELS[param]} (mean ± std over runs)")
    fig.tight_layout()
    return save_figure(fig, path)


def save_depth_plot(lines: dict[tuple[str, str], list[DepthPoint]], path: Path) -> Path:
    """One subplot per dataset: ARI against the site (x: every site of the dataset's lines, in depth order), one
    line per model/features/setting; the latent (LNS) and output (control) sites are marked by vertical lines."""
    datasets = list(dict.fromkeys(key[0] for key in lines))
    fig = new_figure((10.0, 3.8 * len(datasets) + 0.6))
    axes = fig.subplots(len(datasets), 1, squeeze=False).ravel()
    for ax, dataset in zip(axes, datasets, strict=True):
        ours = {key[1]: points for key, points in lines.items() if key[0] == dataset}
        sites = sorted({p.site for points in ours.values() for p in points}, key=lambda s: (site_depth(s), s))
        position = {site: i for i, site in enumerate(sites)}
        for label, points in ours.items():
            ax.errorbar(
                [position[p.site] for p in points],
                [p.mean for p in points],
                yerr=[p.std for p in points],
                marker="o",
                ms=3,
                capsize=2,
                label=label,
            )
        for site, text, side in ((LATENT, "latent (LNS)", "left"), (OUTPUT, "output (control)", "right")):
            if site in position:
                ax.axvline(position[site], color="0.4", linestyle="--", linewidth=1)
                shift = 3 if side == "left" else -3
                ax.annotate(
                    text, (position[site], 1.0), xytext=(shift, -10), textcoords="offset points", fontsize=8, ha=side
                )
        ax.set_xticks(range(len(sites)))
        ax.set_xticklabels(sites, rotation=90, fontsize=7)
        ax.set_title(dataset)
        ax.set_ylabel("mean ARI")
        ax.set_ylim(min(0.0, *(p.mean - p.std for points in ours.values() for p in points)) - 0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle("ARI vs noise site, encoder input -> latent -> output (mean ± std over runs)")
    fig.tight_layout()
    return save_figure(fig, path)
