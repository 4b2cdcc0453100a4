"""The report's method comparison picture: per dataset, the same test images segmented by every method present."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.errors import LNSError
from lns.report.collect import Run
from lns.viz.method_rows import save_method_rows

FIGURE_IMAGES = 6
"""Images (columns) in each comparison picture: the first ones every method segmented."""


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
