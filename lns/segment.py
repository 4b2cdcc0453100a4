"""``segment(cfg)``: latent noise segmentation of a test split, with tables, pictures and UMAP plots."""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, open_dict

from lns.data.batches import LabelledBatches
from lns.data.catalog import dataset_dir, folder_name
from lns.data.npz import MASKED_SPLITS, SplitArrays, load_split
from lns.errors import LNSError
from lns.report.summary import format_table, scores
from lns.runs.atomic import atomic_savez, atomic_write_text
from lns.runs.hydra_record import save_hydra_record
from lns.runs.loggers import config_as_dict, finishing_wandb
from lns.runs.run_layout import RUN_CONFIG, SEGMENTATION_SUMMARY
from lns.runs.stale_files import remove_stale_temporary_files
from lns.segmentation.health import (
    SignalThresholds,
    has_signal,
    is_resolved,
    measure_signal,
    no_signal_message,
    unresolved_message,
)
from lns.segmentation.layout import to_segmentation_layout
from lns.segmentation.methods import LatentNoiseMethod, PixelMethod
from lns.segmentation.module import FeatureSettings, SegmentationModule
from lns.segmentation.noise_checks import check_directions, check_noise_settings
from lns.segmentation.parts import PartStore, SegmentationResults
from lns.segmentation.source import ModelSource, load_source
from lns.segmentation.wandb_log import log_segmentation_to_wandb
from lns.segmentation.weights import apply_weights, weights_record
from lns.training.monitoring.health import read_health
from lns.training.precision import uses_gpu
from lns.viz.figures import save_segmentation_panels
from lns.viz.umap_plot import embed_umap, save_umap_scatter

log = logging.getLogger(__name__)

PRECISIONS = {"float32": torch.float32, "float64": torch.float64}
LATENT_NOISE_FEATURES = ("noise", "jacobian")


def feature_settings(cfg: DictConfig) -> FeatureSettings:
    """Validated settings of a latent-noise ``method`` choice (noise or jacobian) and the ``noise`` group."""
    check_noise_settings(cfg.noise.std, cfg.noise.perturb_num, cfg.noise.site)
    directions = int(cfg.method.get("directions", FeatureSettings.directions))
    check_directions(directions)
    return FeatureSettings(
        kind=cfg.method.name,
        std=float(cfg.noise.std),
        perturb_num=int(cfg.noise.perturb_num),
        site=cfg.noise.site,
        seed=int(cfg.seed),
        chunk_size=int(cfg.method.chunk_size),
        relative=bool(cfg.noise.relative),
        directions=directions,
    )


def pixel_method(cfg: DictConfig) -> PixelMethod:
    """The ``method`` choice as a method: ``noise``/``jacobian`` from the ``noise`` group, any other choice from
    its config's own ``method`` node (``_target_`` and the method's parameters)."""
    if cfg.method.name in LATENT_NOISE_FEATURES:
        return LatentNoiseMethod(feature_settings(cfg))
    if "method" not in cfg.method:
        raise LNSError(
            f"method={cfg.method.name} has no `method` node: a method config other than noise/jacobian must "
            "name its class (method.method._target_) and parameters, as conf/method/rgb.yaml does."
        )
    return hydra.utils.instantiate(cfg.method.method)


def weights_choice(cfg: DictConfig) -> tuple[str, int]:
    """The ``weights`` group's choice (``trained`` when the config has no such group) and its seed."""
    weights = cfg.get("weights") or {"name": "trained"}
    return str(weights["name"]), int(weights.get("seed", 0))


def method_settings(cfg: DictConfig, method: PixelMethod) -> dict[str, Any]:
    """How the pixels were segmented, as ``summary.json`` and folder mode's ``folder_summary.json`` record it:
    ``features`` (the method's name), ``method`` (its name and parameters), ``weights`` and, for latent noise,
    ``noise``."""
    record = method.record()
    settings = {"features": record["name"], "method": record, "weights": weights_record(*weights_choice(cfg))}
    if isinstance(method, LatentNoiseMethod):
        noise = method.settings
        settings["noise"] = {
            "std": noise.std,
            "perturb_num": noise.perturb_num,
            "site": noise.site,
            "relative": noise.relative,
        }
    return settings


def settings_record(cfg: DictConfig, source: ModelSource, dataset: str, method: PixelMethod) -> dict:
    """Everything that determines the results, as stored in ``summary.json`` and beside partial results; the
    checkpoint and run directory as absolute paths, so that a summary read elsewhere still names them."""
    return {
        "dataset": dataset,
        "model": source.kind,
        "z_dim": source.z_dim,
        "train_seed": source.train_seed,
        "split": cfg.split,
        **method_settings(cfg, method),
        "clustering": cfg.clustering.name,
        "n_clusters": int(cfg.n_clusters),
        "seed": int(cfg.seed),
        "precision": cfg.precision,
        "channels_last": bool(cfg.channels_last),
        "test_num": cfg.test_num,
        "checkpoint": str(source.checkpoint.resolve()),
        "run_dir": str(source.run_dir.resolve()) if source.run_dir else None,
        "training": source.training,
    }


def data_folder(cfg: DictConfig, source: ModelSource, dataset: str) -> Path:
    """The data folder: ``paths.data_dir`` when given, else the one the training run recorded, else ``<root>/data``.

    A recorded folder that is gone is an error naming it and the override to use.
    """
    if cfg.paths.get("data_dir"):
        return Path(cfg.paths.data_dir)
    if source.data_dir is None:
        return Path(cfg.paths.root_dir) / "data"
    if not source.data_dir.is_dir():
        raise LNSError(
            f"The run {source.run_dir} was trained on data in {source.data_dir} (recorded in its {RUN_CONFIG}), "
            f"which does not exist any more. Pass the folder that now holds {folder_name(dataset, source.image_size)}: "
            f"paths.data_dir=<folder>."
        )
    return source.data_dir


def load_test_split(cfg: DictConfig, dataset: str, image_size: int, data_dir: Path) -> tuple[SplitArrays, int]:
    """The masked test split and the number of its images to segment (``test_num``, all when null)."""
    if cfg.split not in MASKED_SPLITS:
        raise LNSError(f"split={cfg.split} has no masks to score against; valid: {', '.join(MASKED_SPLITS)}.")
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
    summary = {**scores(results.ari, results.ari_fg, len(results.index)), **settings}
    atomic_write_text(out_dir / SEGMENTATION_SUMMARY, json.dumps(summary, indent=2) + "\n")
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
    for i in progress(umap_index, "UMAP", enabled=bool(cfg.trainer.get("enable_progress_bar", True))):
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


def progress(items: list[int], label: str, *, enabled: bool = True) -> list[int]:
    """Wrap ``items`` in a progress bar when enabled and there is more than one (UMAP takes seconds per image)."""
    if not enabled or len(items) <= 1:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label)


def segmentation_health(
    cfg: DictConfig, source: ModelSource, images: torch.Tensor, method: PixelMethod
) -> dict[str, Any] | None:
    """``summary.json``'s health entry: the decoder's response to latent noise (lns.segmentation.health) and the
    training run's health verdict (its health.json); warns when the features carry no signal. None for methods
    that do not use the network."""
    if not method.record().get("uses_model", True):
        return None
    thresholds = SignalThresholds(
        min_noise_response=float(cfg.health.min_noise_response),
        max_zero_fraction=float(cfg.health.max_zero_fraction),
        zero_atol=float(cfg.health.zero_atol),
        min_resolution=float(cfg.health.min_resolution),
    )
    stats = measure_signal(
        source.model,
        images[: int(cfg.health.num_images)],
        std=float(cfg.noise.std),
        perturb_num=int(cfg.health.perturb_num),
        seed=int(cfg.seed),
        zero_atol=thresholds.zero_atol,
    )
    signal, resolved = has_signal(stats, thresholds), is_resolved(stats, thresholds)
    if resolved is False:
        log.warning(unresolved_message(stats, thresholds, source.model, std=float(cfg.noise.std)))
    elif not signal:
        random_weights = weights_choice(cfg)[0] == "random"
        log.warning(no_signal_message(stats, thresholds, random_weights=random_weights))
    training = read_health(source.run_dir) if source.run_dir is not None else None
    return {
        **stats,
        "signal": signal,
        "resolved": resolved,
        "training_healthy": None if training is None else training["healthy"],
        "training_problems": [] if training is None else list(training["active"]),
        "training_not_checked": None if training is None else training.get("not_checked"),
    }


def prepare_model(cfg: DictConfig) -> tuple[ModelSource, PixelMethod]:
    """The model (run directory or checkpoint, ``weights`` applied, in ``precision`` and the segmentation layout)
    and the pixel method, checked against each other."""
    method = pixel_method(cfg)
    if cfg.batch_size < 1:
        raise LNSError(f"batch_size={cfg.batch_size} must be at least 1 (images segmented at a time).")
    if cfg.precision not in PRECISIONS:
        raise LNSError(f"precision={cfg.precision} is unknown; valid: {', '.join(PRECISIONS)}.")
    model = cfg.get("model") or {}  # what an authors' checkpoint is expected to hold
    source = load_source(cfg.run_dir, cfg.ckpt_path, z_dim=model.get("z_dim"), variational=model.get("variational"))
    source = apply_weights(source, *weights_choice(cfg))
    method.check(source.model)
    source.model.to(PRECISIONS[cfg.precision])
    if cfg.precision == "float32" and uses_gpu(str(cfg.trainer.accelerator)):
        log.info(
            "Segmentation on the GPU decodes in IEEE float32: TF32 and autocast are off around every decode "
            f"(TF32 rounds by about 5e-4, more than noise.std={cfg.noise.std} moves a pixel)."
        )
    to_segmentation_layout(source.model, bool(cfg.channels_last))
    return source, method


def segment(cfg: DictConfig) -> dict[str, Any]:
    """Segment ``cfg.split`` of the model's dataset; resumes an interrupted run in the same directory."""
    out_dir = Path(cfg.paths.output_dir)
    if (out_dir / SEGMENTATION_SUMMARY).exists():
        raise LNSError(
            f"{out_dir} already holds a finished segmentation ({SEGMENTATION_SUMMARY}); nothing was overwritten."
        )
    source, method = prepare_model(cfg)
    dataset = cfg.data.name if cfg.get("data") else source.dataset
    if dataset is None:
        raise LNSError(f"Cannot tell which dataset {source.checkpoint} was trained on; pass data=<name>.")
    folder = data_folder(cfg, source, dataset)
    arrays, count = load_test_split(cfg, dataset, source.image_size, folder)
    pixels = arrays.images.shape[-2] * arrays.images.shape[-1]
    if cfg.n_clusters > pixels:
        raise LNSError(
            f"n_clusters={cfg.n_clusters} is more than the {pixels} pixels of an image; use 1..{pixels}, or "
            "n_clusters=0 for the number of labels in each image's mask."
        )
    settings = settings_record(cfg, source, dataset, method)
    store = PartStore(out_dir / "parts", settings)
    remove_stale_temporary_files(out_dir)
    save_hydra_record(cfg, out_dir)
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
            method,
            store,
            batches,
            n_clusters=int(cfg.n_clusters),
            umap_num=int(cfg.umap_num),
        )
        trainer = hydra.utils.instantiate(cfg.trainer, default_root_dir=str(out_dir))
        started = time.perf_counter()
        trainer.test(module, verbose=False)
        seconds_per_image = (time.perf_counter() - started) / len(todo)
        if not trainer.is_global_zero:
            return {}
    else:
        seconds_per_image = None
    results = store.collect()
    health = segmentation_health(cfg, source, torch.from_numpy(arrays.images[:count]), method)
    # The data folder is recorded for the report's pictures, not in the parts' settings: the data may move.
    extra = {
        "seconds_per_image": seconds_per_image,
        "health": health,
        "data_dir": str(folder.resolve()),
        "training_precision": source.training_precision,
    }
    summary = write_outputs(out_dir, results, {**settings, **extra})
    figure_dir = draw_figures(cfg, out_dir, arrays, results, store)
    if cfg.get("logger") and "wandb" in cfg.logger:
        # The W&B group names data.name: the model's dataset when the command line gave no data=.
        named = copy.deepcopy(cfg)
        with open_dict(named):
            named.data = cfg.get("data") or {"name": dataset}
        with finishing_wandb():
            log_segmentation_to_wandb(config_as_dict(named.logger.wandb), out_dir, summary, arrays, results, figure_dir)
    return {"summary": summary, "out_dir": out_dir, "figure_dir": figure_dir, "table": format_table(summary)}
