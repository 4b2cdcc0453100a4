"""Train an autoencoder or beta-VAE on a Good Gestalt dataset: python run_train.py [overrides]."""

import sys

import hydra
from omegaconf import DictConfig

from lns.cli.console import quiet_libraries
from lns.cli.early_checks import check_training_settings
from lns.cli.entry import INTERRUPTED_EXIT_CODE, run_or_explain
from lns.sweeps.threads import share_cpus


def checked_train(cfg: DictConfig) -> dict:
    """Refuse what can be refused without torch first (in about a second), then import Lightning and train."""
    check_training_settings(cfg)
    from lns.train import train

    return train(cfg)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    share_cpus()  # under launcher=local, wait for this job's share of the cores; threads = its CPUs
    quiet_libraries()
    result = run_or_explain(lambda: checked_train(cfg))
    print(f"run directory: {result['run_dir']}")
    for name, segmentation in result.get("segmentations", {}).items():
        print(f"segmentation {name}:\n{segmentation['table']}\nresults: {segmentation['out_dir']}")
    if result["interrupted"]:
        print(f"interrupted at step {result['global_step']}; resume with the same hydra.run.dir or ckpt_path=")
        # A non-zero status stops a sweep too: Ctrl-C means stop, not "go on with the next job".
        sys.exit(INTERRUPTED_EXIT_CODE)


if __name__ == "__main__":
    from lns.cli.renamed_keys import renamed_arguments

    sys.argv = renamed_arguments(sys.argv)  # segment.jobs.<job>.features=... is segment.jobs.<job>.method=...
    main()
