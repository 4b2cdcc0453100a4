"""Segmentation results as a W&B run: summary, a table of images with predicted and true masks, figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lns.data.npz import SplitArrays
from lns.runs.loggers import wandb_run_id
from lns.segmentation.parts import SegmentationResults


def _mask_dict(labels: np.ndarray) -> dict[str, Any]:
    return {"mask_data": labels.astype(np.uint8)}


def log_segmentation_to_wandb(
    options: dict[str, Any],
    out_dir: Path,
    summary: dict[str, Any],
    arrays: SplitArrays,
    results: SegmentationResults,
    figure_dir: Path,
    max_rows: int = 100,
) -> None:
    """Log one W&B run (``job_type=segment``) for a finished segmentation in ``out_dir``; ``options``: the
    ``logger.wandb`` settings (project, entity, group, tags, name, offline)."""
    import wandb

    run = wandb.init(
        project=options.get("project"),
        entity=options.get("entity"),
        group=options.get("group"),
        tags=options.get("tags"),
        name=options.get("name"),
        dir=str(out_dir),
        id=wandb_run_id(out_dir),
        resume="allow",
        job_type="segment",
        mode="offline" if options.get("offline") else None,
        config=summary,
    )
    run.summary.update({key: value for key, value in summary.items() if isinstance(value, int | float)})
    table = wandb.Table(columns=["index", "ari", "ari_fg", "n_clusters", "segmentation", "reconstruction"])
    for row in range(min(max_rows, len(results.index))):
        i = int(results.index[row])
        image = np.transpose(arrays.images[i], (1, 2, 0))
        masks = {"prediction": _mask_dict(results.labels[row]), "ground_truth": _mask_dict(arrays.masks[i])}
        table.add_data(
            i,
            float(results.ari[row]),
            float(results.ari_fg[row]),
            int(results.n_clusters[row]),
            wandb.Image(image, masks=masks),
            wandb.Image(np.transpose(results.reconstructions[row], (1, 2, 0))),
        )
    run.log({"segmentation/table": table})
    run.log({f"figures/{png.stem}": wandb.Image(str(png)) for png in sorted(figure_dir.glob("*.png"))})
