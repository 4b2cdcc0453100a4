"""Segment test images with latent noise: python run_segment.py run_dir=<training run or sweep> [overrides]."""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from lns.cli.console import quiet_libraries
from lns.cli.early_checks import check_segmentation_settings
from lns.cli.entry import run_or_explain
from lns.sweeps.threads import share_cpus


def checked_segment(cfg: DictConfig) -> dict:
    """Refuse what can be refused without torch first (in about a second), then import Lightning and segment
    the dataset's test split, or the folder of pictures given as ``images=``."""
    check_segmentation_settings(cfg)
    if OmegaConf.select(cfg, "images.folder"):
        from lns.cli.segment_folder import segment_picture_folder

        return segment_picture_folder(cfg)
    from lns.segment import segment

    return segment(cfg)


@hydra.main(version_base="1.3", config_path="conf", config_name="segment")
def main(cfg: DictConfig) -> None:
    share_cpus()  # under launcher=local, wait for this job's share of the cores; threads = its CPUs
    quiet_libraries()
    result = run_or_explain(lambda: checked_segment(cfg))
    if result:
        print(result["table"])
        print(f"results: {result['out_dir']}\npictures: {result['figure_dir']}")


if __name__ == "__main__":
    from lns.cli.images_argument import images_argument
    from lns.cli.renamed_keys import renamed_arguments
    from lns.sweeps.sweep_runs import expand_run_dir_argument

    # A training sweep directory becomes one segmentation job per completed run; features=... is method=...
    sys.argv = run_or_explain(lambda: expand_run_dir_argument(images_argument(renamed_arguments(sys.argv))))
    main()
