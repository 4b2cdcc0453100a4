"""The ``.hydra/`` record of a run (composed config, Hydra config, overrides), written once the run may start.

Hydra writes this record itself before the task function runs, so a run refused for overwriting an existing
run directory would already have replaced that run's record. The configs set ``hydra.output_subdir: null`` and
the entry points call :func:`save_hydra_record` after their checks pass instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lns.runs.atomic import atomic_write_text
from lns.runs.process_rank import is_launching_process

HYDRA_RECORD = Path(".hydra")


def save_hydra_record(cfg: DictConfig, output_dir: str | os.PathLike[str]) -> Path | None:
    """Write ``config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` to ``output_dir/.hydra`` as Hydra would.

    Does nothing outside a Hydra application (e.g. a config composed in a test), for a folder other than the Hydra
    job's own output directory (e.g. a segmentation that training runs into a subfolder) and in processes other
    than the launching one of a data-parallel run. Returns the folder written, or None.
    """
    if not HydraConfig.initialized() or not is_launching_process():
        return None
    if Path(HydraConfig.get().runtime.output_dir).resolve() != Path(output_dir).resolve():
        return None
    hydra_cfg = HydraConfig.instance().cfg
    folder = Path(output_dir) / HYDRA_RECORD
    atomic_write_text(folder / "config.yaml", OmegaConf.to_yaml(cfg))
    atomic_write_text(folder / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg))
    atomic_write_text(folder / "overrides.yaml", OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task))
    return folder
