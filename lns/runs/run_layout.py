"""Where a training run keeps its files (shared by training, segmentation and the launchers)."""

from pathlib import Path

from lns.errors import LNSError

RUN_CONFIG = Path("run_config.yaml")
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# One segmentation's results, written last: a folder holding it holds a finished segmentation.
SEGMENTATION_SUMMARY = "summary.json"
# The key of a training checkpoint that holds the run's settings (run_config.yaml's content: the model's class and
# arguments, the dataset), so the checkpoint alone rebuilds its model.
CHECKPOINT_RUN_CONFIG = "run_config"


def training_run_config(run_dir: Path) -> Path:
    """``run_dir``'s ``run_config.yaml``; a folder without one is an :class:`LNSError` (not a training run)."""
    config_file = Path(run_dir) / RUN_CONFIG
    if not config_file.is_file():
        absent = "" if Path(run_dir).exists() else " (the folder itself does not exist)"
        raise LNSError(
            f"{run_dir} is not a training run directory: {config_file} is missing{absent}. Pass the directory that "
            "run_train.py printed, or ckpt_path=<file> with data=<name>."
        )
    return config_file
