"""Paths of the repository and configs composed like the entry points compose them, with the tests' tiny settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"

# A run directory's latest checkpoint, relative to the run directory.
LAST = Path("checkpoints") / "last.ckpt"


def compose_config(name: str, overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """Compose ``conf/<name>.yaml`` like the entry point does, with the Hydra-only paths filled in."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO)
        cfg.paths.output_dir = str(output_dir)
    return cfg


def compose_with_hydra(name: str, overrides: list[str]) -> DictConfig:
    """The config including its ``hydra`` node, as a multirun sees it."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=True)


def sweep_jobs(cfg: DictConfig, command_line: list[str]) -> list[dict[str, str]]:
    """The jobs Hydra's basic sweeper makes from ``hydra.sweeper.params`` and the command line, as dicts."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    overrides = OverridesParser.create().parse_overrides([*params, *command_line])
    batches = BasicSweeper.split_arguments(overrides, None)
    return [dict(item.split("=", 1) for item in job) for batch in batches for job in batch]


TINY_TRAIN = [
    "data=kanizsa",
    "data.batch_size=8",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.checkpoint.every_n_train_steps=2",
    "callbacks.reconstructions.every_n_steps=2",
    "callbacks.curves.every_n_steps=2",
    "model.z_dim=4",
]

TINY_SEGMENT = [
    "test_num=4",
    "noise.perturb_num=6",
    "clustering.backend.workers=1",
    "batch_size=3",
    "figures_num=3",
]

# No figures and no validation: each in-process training run then takes about a second.
LEAN = ["logger=none", "~callbacks.reconstructions", "~callbacks.curves", "trainer.limit_val_batches=0"]
