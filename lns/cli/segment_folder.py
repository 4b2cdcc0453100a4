"""``run_segment.py images=<folder>``: segment a folder of one's own pictures with a trained model.

Writes into the output directory ``labels.npz`` (``labels`` (N, H, W), ``names``, ``reconstructions``), one picture
per input named after it (``pictures/<name>.png``: input, reconstruction, labels, and the mask when there is one)
and ``folder_summary.json``; with ``masks=<folder>`` also ``per_picture.csv`` with each picture's ARI. The labels
come from the core that ``lns.segment_images`` runs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from lns.data.image_folder import read_masks, read_pictures
from lns.errors import LNSError
from lns.metrics.ari import adjusted_rand_index
from lns.models.adapter import as_adapter
from lns.report.summary import model_and_method
from lns.runs.atomic import atomic_savez, atomic_write_text
from lns.runs.hydra_record import save_hydra_record
from lns.segment import method_settings, prepare_model, segmentation_health
from lns.segmentation.core import segment_all
from lns.viz.figures import save_picture_row

LABELS_FILE = "labels.npz"
FOLDER_SUMMARY = "folder_summary.json"
PICTURES = "pictures"


def picture_counts(n_clusters: int, masks: np.ndarray | None, count: int, pixels: int) -> list[int]:
    """Clusters per picture: ``n_clusters`` when > 0, else the number of labels in each picture's mask."""
    if n_clusters > 0:
        if n_clusters > pixels:
            raise LNSError(f"n_clusters={n_clusters} is more than the {pixels} pixels of a picture; use 1..{pixels}.")
        return [int(n_clusters)] * count
    if masks is None:
        raise LNSError(
            "Pass n_clusters=<K> (regions per picture): there are no masks to count the regions from "
            "(masks=<folder of label masks named like the pictures> gives each picture its own count)."
        )
    return [int(np.unique(mask).size) for mask in masks]


def _per_picture_csv(names: list[str], counts: list[int], ari: np.ndarray, ari_fg: np.ndarray) -> str:
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["name", "n_clusters", "ari", "ari_fg"])
    for name, k, score, score_fg in zip(names, counts, ari, ari_fg, strict=True):
        writer.writerow([name, k, f"{score:.6f}", f"{score_fg:.6f}"])
    return rows.getvalue()


def _table(summary: dict[str, Any]) -> str:
    """The one-row Markdown table printed at the end, its model and method labelled as a dataset run's are."""
    header = ["pictures", "model", "method", "clustering", "images"]
    row = [summary["images"], *model_and_method(summary), summary["clustering"], summary["n_images"]]
    if summary["ari_mean"] is not None:
        header += ["ARI", "ARI-FG"]
        fg = "n/a" if summary["ari_fg_mean"] is None else f"{summary['ari_fg_mean']:.3f}"
        row += [f"{summary['ari_mean']:.3f} ± {summary['ari_std']:.3f}", fg]
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(map(str, row)) + " |"]
    )


def segment_picture_folder(cfg: DictConfig) -> dict[str, Any]:
    """Segment every picture of ``cfg.images.folder`` with the configured model (see the module docstring); the
    health entry of ``folder_summary.json`` is the dataset runs' check, on the pictures."""
    out_dir = Path(cfg.paths.output_dir)
    if (out_dir / LABELS_FILE).exists():
        raise LNSError(f"{out_dir} already holds segmented pictures ({LABELS_FILE}); nothing was overwritten.")
    source, method = prepare_model(cfg)
    clusterer = hydra.utils.instantiate(cfg.clustering.backend)
    model = as_adapter(source.model.eval())
    resize = bool(cfg.images.get("resize", False))
    pictures = read_pictures(
        cfg.images.folder, size=source.image_size, channels=getattr(source.model, "channels", 3), resize=resize
    )
    masks = read_masks(cfg.masks, pictures.names, size=source.image_size, resize=resize) if cfg.get("masks") else None
    pixels = source.image_size**2
    counts = picture_counts(int(cfg.n_clusters), masks, len(pictures.files), pixels)
    save_hydra_record(cfg, out_dir)
    images = torch.from_numpy(pictures.images).to(device=model.device, dtype=model.dtype)
    labels, reconstructions = segment_all(model, images, counts, method, clusterer, int(cfg.batch_size))
    labels_np, reconstructions_np = labels.numpy(), reconstructions.float().cpu().numpy()
    health_record = segmentation_health(cfg, source, torch.from_numpy(pictures.images), method)
    ari = ari_fg = None
    if masks is not None:
        ari = adjusted_rand_index(labels, torch.from_numpy(masks)).numpy()
        ari_fg = adjusted_rand_index(labels, torch.from_numpy(masks), foreground_only=True).numpy()
        atomic_write_text(out_dir / "per_picture.csv", _per_picture_csv(pictures.names, counts, ari, ari_fg))
    for i, name in enumerate(pictures.names):
        title = name if ari is None else f"{name}  ARI {ari[i]:.3f}"
        mask = None if masks is None else masks[i]
        save_picture_row(
            pictures.images[i],
            reconstructions_np[i],
            labels_np[i],
            out_dir / PICTURES / f"{name}.png",
            mask=mask,
            title=title,
        )
    atomic_savez(
        out_dir / LABELS_FILE,
        labels=labels_np.astype(np.int64),
        names=np.asarray(pictures.names),
        reconstructions=reconstructions_np.astype(np.float32),
    )
    fg = None if ari_fg is None else ari_fg[np.isfinite(ari_fg)]
    summary = {
        "images": str(pictures.folder.resolve()),
        "masks": str(Path(cfg.masks).resolve()) if masks is not None else None,
        "n_images": len(pictures.files),
        "n_clusters": counts,
        "ari_mean": None if ari is None else float(ari.mean()),
        "ari_std": None if ari is None else float(ari.std()),
        "ari_fg_mean": float(fg.mean()) if fg is not None and fg.size else None,
        "model": source.kind,
        "checkpoint": str(source.checkpoint.resolve()),
        **method_settings(cfg, method),
        "clustering": cfg.clustering.name,
        "seed": int(cfg.seed),
        "resize": resize,
        "health": health_record,
    }
    atomic_write_text(out_dir / FOLDER_SUMMARY, json.dumps(summary, indent=2) + "\n")
    return {"summary": summary, "out_dir": out_dir, "figure_dir": out_dir / PICTURES, "table": _table(summary)}
