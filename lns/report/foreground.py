"""How many foreground labels a dataset's test masks hold, read from the masks themselves.

ARI-FG scores the foreground pixels only. Where every mask has a single foreground label (one object on a
background), the true partition of those pixels is one cluster, so an image scores 1 when its foreground is left in
one cluster and 0 when it is split: the mean is the share of images whose foreground is not split, not a graded
score. The report marks such cells (:func:`lns.report.tables.fg_share_note`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lns.data.catalog import SUPPORTED_IMAGE_SIZES, dataset_dir
from lns.data.npz import load_split
from lns.errors import LNSError
from lns.report.collect import Run


def foreground_labels(masks: np.ndarray) -> int:
    """The most distinct non-zero labels in one mask of ``masks`` (N, H, W); 0 without foreground."""
    return max((np.unique(mask[mask != 0]).size for mask in masks), default=0)


def split_foreground(data_dir: Path, dataset: str, split: str) -> int:
    """:func:`foreground_labels` of one split of a dataset under ``data_dir``, at the first image size whose folder
    holds it (the 64-pixel images subsample the 256-pixel canvas, so both hold the same labels); LNSError naming
    the file where none can be read."""
    error = None
    for size in SUPPORTED_IMAGE_SIZES:
        folder = dataset_dir(data_dir, dataset, size)
        if (folder / f"{split}.npz").is_file():
            try:
                return foreground_labels(load_split(folder, split, name=dataset, data_dir=data_dir).masks)
            except LNSError as failed:
                error = failed
    raise error or LNSError(f"no {split}.npz of {dataset} under {data_dir}")


def dataset_foreground(runs: Sequence[Run], data_dir: Path | None = None) -> tuple[dict[str, int | None], list[str]]:
    """Per dataset of ``runs`` that has ARI-FG values: the most foreground labels in one mask of the splits its runs
    segmented, read from ``data_dir`` (else the data folder each summary records); None where some split could not
    be read, with a note saying so."""
    wanted: dict[str, set[tuple[Path, str]]] = defaultdict(set)
    missing: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        if run.ari_fg_mean is None:
            continue
        folder = data_dir if data_dir is not None else run.data_dir
        if folder is None:
            missing[run.dataset].add(f"{run.split}: the summary records no data folder")
        else:
            wanted[run.dataset].add((Path(folder), run.split))
    counts: dict[str, int | None] = {}
    for dataset in sorted(wanted.keys() | missing.keys()):
        found = []
        for folder, split in sorted(wanted[dataset]):
            try:
                found.append(split_foreground(folder, dataset, split))
            except LNSError:
                missing[dataset].add(f"{split}: no readable {split}.npz under {folder}")
        counts[dataset] = None if missing[dataset] else max(found)
    notes = [
        f"ARI-FG of {dataset} is not checked for a single foreground label ({'; '.join(sorted(reasons))}): pass "
        "--data-dir with the datasets' folder"
        for dataset, reasons in sorted(missing.items())
        if reasons
    ]
    return counts, notes
