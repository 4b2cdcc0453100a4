"""How a training run trained, as its records say: what a segmentation copies into ``summary.json``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lns.runs.hydra_record import HYDRA_RECORD


def recorded_max_steps(run_dir: Path | None) -> int | None:
    """``trainer.max_steps`` of the run's last start, from ``<run_dir>/.hydra/config.yaml`` (``run_config.yaml`` does
    not hold it, so that a run can be resumed with a longer budget); None without a run directory or that record."""
    config_file = Path(run_dir) / HYDRA_RECORD / "config.yaml" if run_dir is not None else None
    if config_file is None or not config_file.is_file():
        return None
    value = OmegaConf.select(OmegaConf.load(config_file), "trainer.max_steps", throw_on_resolution_failure=False)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def training_record(settings: Mapping[str, Any], run_dir: Path | None, global_step: int | None) -> dict[str, Any]:
    """The training settings of a run's ``settings`` (``run_config.yaml``'s content, or the copy a checkpoint
    holds): ``max_steps`` (:func:`recorded_max_steps`), ``global_step`` (the steps the checkpoint was trained for),
    the optimizer's ``lr``, the data's ``batch_size`` and the ``objective`` config (``_target_`` and its arguments,
    e.g. GECO's ``goal`` per pixel per channel). A setting the record lacks is None."""
    optimizer = settings.get("optimizer") or {}
    data = settings.get("data") or {}
    objective = settings.get("objective")
    return {
        "max_steps": recorded_max_steps(run_dir),
        "global_step": global_step,
        "lr": optimizer.get("lr"),
        "batch_size": data.get("batch_size"),
        "objective": dict(objective) if isinstance(objective, Mapping) else None,
    }
