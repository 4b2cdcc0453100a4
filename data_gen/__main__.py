"""Command line: ``python -m data_gen dataset=kanizsa paths.data_dir=DIR n_train=2000 image_size=64``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from data_gen.generate import generate, request_from_config
from lns.errors import LNSError


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    """Generate the requested datasets; print an LNSError as one paragraph and exit with status 1."""
    try:
        generate(request_from_config(OmegaConf.to_container(cfg, resolve=True)))
    except LNSError as error:
        print("Error: " + " ".join(str(error).split()), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
