"""Command line: ``python -m data_gen dataset=kanizsa paths.data_dir=DIR n_train=2000 image_size=64``."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from data_gen.generate import generate, request_from_config
from lns.cli.refused_run import clear_refused_run, is_fresh
from lns.errors import LNSError
from lns.runs.hydra_record import save_hydra_record


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    """Generate the requested datasets; print an LNSError as one paragraph and exit with status 1, leaving no run
    folder behind."""
    folder = Path(HydraConfig.get().runtime.output_dir)
    fresh = is_fresh(folder)
    try:
        generate(request_from_config(OmegaConf.to_container(cfg, resolve=True)))
    except LNSError as error:
        print("Error: " + " ".join(str(error).split()), file=sys.stderr)
        if fresh:
            clear_refused_run(folder, keep_error=False, stop_at=Path(HydraConfig.get().runtime.cwd))
        sys.exit(1)
    save_hydra_record(cfg, folder)


if __name__ == "__main__":
    main()
