"""``segment(cfg)``: latent noise segmentation of a test split, with tables, pictures and UMAP plots."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, open_dict

from lns.atomic import atomic_savez, atomic_write_text
from lns.data.batches import LabelledBatches
from lns.data.catalog import dataset_dir
from lns.data.npz import MASKED_SPLITS, SplitArrays, load_split
from lns.errors import LNSError
from lns.loggers import finishing_wandb
from lns.segmentation.features import check_noise_settings
from lns.segmentation.module import FeatureSettings, SegmentationModule
from lns.segmentation.parts import PartStore, SegmentationResults
from lns.segmentation.source import ModelSource, resolve_source
from lns.segmentation.wandb_log import log_segmentation_to_wandb
from lns.viz.figures import save_segmentation_panels
from lns.viz.umap_plot import embed_umap, save_umap_scatter

SUMMARY = "summary.json"
PRECISIONS = {"float32": torch.float32, "float64": torch.float64}


def feature_settings(cfg: DictConfig) -> FeatureSettings:
    """Validated feature settings from the ``features`` and ``noise`` config groups."""
    kind = cfg.features.name
    if kind not in ("noise", "jacobian"):
        raise LNSError(f"features={kind} is unknown; valid: noise, jacobian.")
    check_noise_settings(cfg.noise.std, cfg.noise.perturb_num, cfg.noise.site)
    return FeatureSettings(
        kind=kind,
        std=float(cfg.noise.std),
        perturb_num=int(cfg.noise.perturb_num),
        site=cfg.noise.site,
        seed=int(cfg.seed),
        chunk_size=int(cfg.features.chunk_size),
    )


def settings_record(cfg: DictConfig, source: ModelSource, dataset: str, features: FeatureSettings) -> dict:
    """Everything that determines the results, as stored in ``summary.json`` and beside partial results."""
    return {
        "dataset": dataset,
        "model": source.kind,
        "z_dim": source.model.z_dim,
        "train_seed": source.train_seed,
        "split": cfg.split,
        "features": features.kind,
        "noise": {"std": features.std, "perturb_num": features.perturb_num, "site": features.site},
        "clustering": cfg.clustering.name,
        "n_clusters": int(cfg.n_clusters),
        "seed": features.seed,
        "precision": cfg.precision,
        "channels_last": bool(cfg.channels_last),
        "test_num": cfg.test_num,
        "checkpoint": str(source.checkpoint),
        "run_dir": str(source.run_dir) if source.run_dir else None,
    }


def load_test_split(cfg: DictConfig, dataset: str, image_size: int) -> tuple[SplitArrays, int]:
    """The masked test split and the number of its images to segment (``test_num``, all when null)."""
    if cfg.split not in MASKED_SPLITS:
        raise LNSError(f"split={cfg.split} has no masks to score against; valid: {', '.join(MASKED_SPLITS)}.")
    data_dir = Path(cfg.paths.data_dir)
    arrays = load_split(dataset_dir(data_dir, dataset, image_size), cfg.split, name=dataset, data_dir=data_dir)
    available = len(arrays.images)
    count = available if cfg.test_num is None else int(cfg.test_num)
    if not 0 < count <= available:
        raise LNSError(
            f"test_num={cfg.test_num} but {cfg.split}.npz of {dataset} holds {available} images; "
            f"use 1..{available} or test_num=null for all."
        )
    return arrays, count


def write_outputs(out_dir: Path, results: SegmentationResults, settings: dict) -> dict[str, Any]:
    """``per_image.csv``, ``predictions.npz`` and ``summary.json`` (written last: its presence means done)."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["index", "ari", "ari_fg", "n_clusters"])
    for i, ari, ari_fg, k in zip(results.index, results.ari, results.ari_fg, results.n_clusters, strict=True):
        writer.writerow([int(i), f"{ari:.6f}", f"{ari_fg:.6f}", int(k)])
    atomic_write_text(out_dir / "per_image.csv", rows.getvalue())
    atomic_savez(
        out_dir / "predictions.npz",
        labels=results.labels.astype(np.int64),
        reconstructions=results.reconstructions.astype(np.float32),
        index=results.index.astype(np.int64),
    )
    fg = results.ari_fg[np.isfinite(results.ari_fg)]
    summary = {
        "ari_mean": float(np.mean(results.ari)),
        "ari_std": float(np.std(results.ari)),
        "ari_fg_mean": float(np.mean(fg)) if fg.size else None,
        "ari_fg_std": float(np.std(fg)) if fg.size else None,
        "n_images": len(results.index),
        **settings,
    }
    atomic_write_text(out_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def draw_figures(
    cfg: DictConfig, out_dir: Path, arrays: SplitArrays, results: SegmentationResults, store: PartStore
) -> Path:
    """Side-by-side panels for the first ``figures_num`` images and UMAP plots for the first ``umap_num``."""
    figure_dir = out_dir / "figures"
    shown = slice(0, int(cfg.figures_num))
    index = results.index[shown]
    if len(index):
        save_segmentation_panels(
            arrays.images[index],
            results.reconstructions[shown],
            results.labels[shown],
            arrays.masks[index],
            figure_dir / "segmentations.png",
            indices=index.tolist(),
            scores=results.ari[shown].tolist(),
        )
    umap_index = [int(i) for i in results.index if i < cfg.umap_num]
    colours = arrays.detailed_masks if arrays.detailed_masks is not None else arrays.masks
    for i in progress(umap_index, "UMAP"):
        features = store.features(i)
        if features is not None:
            embedding = embed_umap(features, n_neighbors=int(cfg.umap_neighbors), seed=int(cfg.seed))
            save_umap_scatter(
                embedding,
                colours[i].reshape(-1),
                figure_dir / f"umap_{i:04d}.png",
                title=f"pixel features, image {i}",
            )
    return figure_dir


def progress(items: list[int], label: str) -> list[int]:
    """Wrap ``items`` in a progress bar when there is more than one (UMAP takes seconds per image)."""
    if len(items) <= 1:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label)


def format_table(summary: dict[str, Any]) -> str:
    """The one-row Markdown ARI table printed at the end of a segmentation."""
    fg = "n/a" if summary["ari_fg_mean"] is None else f"{summary['ari_fg_mean']:.3f} ± {summary['ari_fg_std']:.3f}"
    noise = summary["noise"]
    method = (
        "jacobian"
        if summary["features"] == "jacobian"
        else f"{noise['site']} σ={noise['std']:g} T={noise['perturb_num']}"
    )
    return "\n".join(
        [
            "| dataset | model | split | method | clustering | images | ARI | ARI-FG |",
            "|---|---|---|---|---|---|---|---|",
            f"| {summary['dataset']} | {summary['model'].upper()} | {summary['split']} | {method} | "
            f"{summary['clustering']} | {summary['n_images']} | {summary['ari_mean']:.3f} ± {summary['ari_std']:.3f} "
            f"| {fg} |",
        ]
    )


def segment(cfg: DictConfig) -> dict[str, Any]:
    """Segment ``cfg.split`` of the model's dataset; resumes an interrupted run in the same directory."""
    out_dir = Path(cfg.paths.output_dir)
    if (out_dir / SUMMARY).exists():
        raise LNSError(f"{out_dir} already holds a finished segmentation ({SUMMARY}); nothing was overwritten.")
    features = feature_settings(cfg)
    if cfg.batch_size < 1:
        raise LNSError(f"batch_size={cfg.batch_size} must be at least 1 (images segmented at a time).")
    if cfg.precision not in PRECISIONS:
        raise LNSError(f"precision={cfg.precision} is unknown; valid: {', '.join(PRECISIONS)}.")
    source = resolve_source(cfg)
    source.model.to(PRECISIONS[cfg.precision])
    if cfg.channels_last:
        source.model.to(memory_format=torch.channels_last)
    dataset = cfg.data.name if cfg.get("data") else source.dataset
    if dataset is None:
        raise LNSError(f"Cannot tell which dataset {source.checkpoint} was trained on; pass data=<name>.")
    arrays, count = load_test_split(cfg, dataset, source.image_size)
    pixels = arrays.images.shape[-2] * arrays.images.shape[-1]
    if cfg.n_clusters > pixels:
        raise LNSError(
            f"n_clusters={cfg.n_clusters} is more than the {pixels} pixels of an image; use 1..{pixels}, or "
            "n_clusters=0 for the number of labels in each image's mask."
        )
    settings = settings_record(cfg, source, dataset, features)
    store = PartStore(out_dir / "parts", settings)
    todo = torch.tensor(sorted(set(range(count)) - store.done_indices()), dtype=torch.long)
    if len(todo):
        batches = LabelledBatches(
            torch.from_numpy(arrays.images[todo.numpy()]),
            torch.from_numpy(arrays.masks[todo.numpy()]),
            todo,
            int(cfg.batch_size),
        )
        module = SegmentationModule(
            source.model,
            hydra.utils.instantiate(cfg.clustering.backend),
            features,
            store,
            batches,
            n_clusters=int(cfg.n_clusters),
            umap_num=int(cfg.umap_num),
        )
        trainer = hydra.utils.instantiate(cfg.trainer, default_root_dir=str(out_dir))
        trainer.test(module, verbose=False)
        if not trainer.is_global_zero:
            return {}
    results = store.collect()
    summary = write_outputs(out_dir, results, settings)
    figure_dir = draw_figures(cfg, out_dir, arrays, results, store)
    if cfg.get("logger") and "wandb" in cfg.logger:
        # The W&B group names data.name: the model's dataset when the command line gave no data=.
        named = copy.deepcopy(cfg)
        with open_dict(named):
            named.data = cfg.get("data") or {"name": dataset}
        with finishing_wandb():
            log_segmentation_to_wandb(named.logger.wandb, out_dir, summary, arrays, results, figure_dir)
    return {"summary": summary, "out_dir": out_dir, "figure_dir": figure_dir, "table": format_table(summary)}
