"""Experiment loggers from config, with W&B runs that resume under the same id and always finish."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger

WANDB_ID_FILE = "wandb_id.txt"


def wandb_run_id(run_dir: Path) -> str:
    """The W&B run id of ``run_dir``: read from ``wandb_id.txt``, or created and stored there on first use.

    A requeued or resumed job in the same directory therefore continues the same W&B run. The file is created
    with its content in one step (a hard link), so the processes of a multi-task SLURM job that all start here
    at once agree on one id.
    """
    path = run_dir / WANDB_ID_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{WANDB_ID_FILE}.{secrets.token_hex(4)}")
        tmp.write_text(secrets.token_hex(4) + "\n")
        try:
            with contextlib.suppress(FileExistsError):  # another process was first: use its id
                os.link(tmp, path)
        finally:
            tmp.unlink()
    return path.read_text().strip()


def build_loggers(logger_cfg: DictConfig | None, run_dir: Path) -> list[Logger]:
    """Instantiate every ``_target_`` entry of the ``logger`` config group."""
    loggers = []
    for name, entry in (logger_cfg or {}).items():
        kwargs = {}
        if name == "wandb":
            kwargs = {"id": wandb_run_id(run_dir), "resume": "allow"}
        loggers.append(hydra.utils.instantiate(entry, **kwargs))
    return loggers


@contextmanager
def finishing_wandb() -> Iterator[None]:
    """Finish any open W&B run when the block ends, also on error, so sweep jobs never merge into one run."""
    try:
        yield
    finally:
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:
            wandb.finish(exit_code=0 if sys.exc_info()[0] is None else 1)


def config_as_dict(cfg: DictConfig) -> dict:
    """The resolved config as plain containers (for logger hyper-parameters and summaries)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
