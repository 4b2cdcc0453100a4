"""Command line: ``python -m data_gen dataset=kanizsa paths.data_dir=DIR n_train=2000 image_size=64``."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from data_gen.generate import generate, request_from_config
from lns.cli.entry import run_or_explain
from lns.cli.validation import check_values
from lns.runs.hydra_record import save_hydra_record


def generate_and_record(cfg: DictConfig) -> None:
    """Check every value, generate the requested datasets, then keep the command's config in the run folder."""
    check_values("generate", cfg)
    generate(request_from_config(OmegaConf.to_container(cfg, resolve=True)))
    save_hydra_record(cfg, Path(HydraConfig.get().runtime.output_dir))


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    """Generate the requested datasets; a user error is one paragraph headed ``error:`` and exit status 1, and
    leaves no run folder behind (:func:`lns.cli.entry.run_or_explain`)."""
    run_or_explain(lambda: generate_and_record(cfg))


if __name__ == "__main__":
    main()
