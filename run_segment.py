"""Segment test images with latent noise: python run_segment.py run_dir=<training run or sweep> [overrides]."""

import sys

import hydra
from omegaconf import DictConfig

from lns.entry import run_or_explain


@hydra.main(version_base="1.3", config_path="conf", config_name="segment")
def main(cfg: DictConfig) -> None:
    from lns.segment import segment

    result = run_or_explain(lambda: segment(cfg))
    if result:
        print(result["table"])
        print(f"results: {result['out_dir']}\npictures: {result['figure_dir']}")


if __name__ == "__main__":
    from lns.sweep_runs import expand_run_dir_argument

    # A training sweep directory becomes one segmentation job per completed run.
    sys.argv = run_or_explain(lambda: expand_run_dir_argument(sys.argv))
    main()
