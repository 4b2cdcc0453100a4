"""Segment a training run's final checkpoint at the end of training (``run_train.py segment=paper``).

Each job of the ``segment`` config group is a ``run_segment.py`` configuration, composed from ``conf/segment.yaml``
exactly as that command would compose it, so both write the same files (``<run>/segment/<job>/``). In a sweep, a job
whose method does not use the network is done once per dataset (lns/sweeps/shared_segmentation.py).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from lns.errors import LNSError
from lns.report.summary import format_table
from lns.runs.run_layout import SEGMENTATION_SUMMARY
from lns.segment import pixel_method, segment
from lns.sweeps.job_outcome import in_multirun
from lns.sweeps.renamed_settings import renamed_settings
from lns.sweeps.shared_segmentation import registry_file, segment_once

SEGMENT_DIR = "segment"


def job_overrides(settings: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Split a job's settings into command-line overrides (strings: group options such as ``method: jacobian``,
    or plain string keys) and values merged into the composed config (numbers, mappings); a null keeps
    ``run_segment.py``'s default."""
    overrides = [f"{key}={value}" for key, value in settings.items() if isinstance(value, str)]
    values = {key: value for key, value in settings.items() if value is not None and not isinstance(value, str)}
    return overrides, values


def segmentation_configs(cfg: DictConfig, run_dir: Path) -> dict[str, DictConfig]:
    """One ``run_segment.py`` config per job of ``cfg.segment``, each segmenting ``run_dir`` into
    ``<run_dir>/segment/<job>``; keys of ``cfg.segment`` other than ``jobs`` apply to every job, and the training's
    ``trainer.enable_progress_bar`` to every job that does not set its own."""
    if not GlobalHydra.instance().is_initialized():
        raise LNSError(
            "segment= needs the configs of run_segment.py: call train() from run_train.py, or inside "
            "hydra.initialize_config_dir(<the conf folder>)."
        )
    spec = OmegaConf.to_container(cfg.segment, resolve=True)
    carried = {"trainer": {"enable_progress_bar": bool(cfg.trainer.get("enable_progress_bar", True))}}
    jobs = spec.pop("jobs", None) or {}
    common_overrides, common_values = job_overrides(renamed_settings(spec, "segment"))
    configs = {}
    for name, settings in jobs.items():
        overrides, values = job_overrides(renamed_settings(settings or {}, f"segment.jobs.{name}"))
        if "wandb" in (cfg.get("logger") or {}):
            overrides.append("logger=wandb")
        composed = compose("segment", overrides=[*common_overrides, *overrides])
        with open_dict(composed):
            merged = OmegaConf.merge(composed, carried, common_values, values)
            merged.run_dir = str(run_dir)
            merged.ckpt_path = None
            merged.experiment_name = cfg.experiment_name
            merged.tags = list(cfg.tags)
            merged.paths.root_dir = cfg.paths.root_dir
            merged.paths.data_dir = str(Path(cfg.paths.data_dir).absolute())
            merged.paths.output_dir = str(run_dir / SEGMENT_DIR / name)
        configs[name] = merged
    return configs


def segment_final_checkpoint(cfg: DictConfig, run_dir: Path) -> dict[str, dict[str, Any]]:
    """Run every segmentation job of ``cfg.segment`` on the run's final checkpoint; return name -> result.

    A job whose ``summary.json`` exists (a requeued job that had finished it) is read, not redone. In a sweep, a
    job whose method does not use the network reads the result of the sweep's first run of the same dataset that
    did it (:func:`lns.sweeps.shared_segmentation.segment_once`).
    """
    results = {}
    for name, seg_cfg in segmentation_configs(cfg, run_dir).items():
        out_dir = Path(seg_cfg.paths.output_dir)
        if in_multirun() and not pixel_method(seg_cfg).record().get("uses_model", True):
            sweep_dir = Path(HydraConfig.get().sweep.dir)
            registry = registry_file(sweep_dir, name, seg_cfg, cfg.data.name, cfg.data.image_size)
            results[name] = segment_once(registry, out_dir, partial(own_result, seg_cfg), finished_result)
        else:
            results[name] = own_result(seg_cfg)
    return results


def own_result(seg_cfg: DictConfig) -> dict[str, Any]:
    """Segment into ``seg_cfg``'s output folder, or read the segmentation that finished there earlier."""
    out_dir = Path(seg_cfg.paths.output_dir)
    return finished_result(out_dir) if (out_dir / SEGMENTATION_SUMMARY).is_file() else segment(seg_cfg)


def finished_result(out_dir: Path) -> dict[str, Any]:
    """What :func:`lns.segment.segment` returns, for a segmentation that finished earlier."""
    summary = json.loads((out_dir / SEGMENTATION_SUMMARY).read_text())
    return {"summary": summary, "out_dir": out_dir, "figure_dir": out_dir / "figures", "table": format_table(summary)}
