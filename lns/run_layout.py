"""Where a training run keeps its files (shared by training, segmentation and the launchers)."""

from pathlib import Path

RUN_CONFIG = Path("run_config.yaml")
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# One segmentation's results, written last: a folder holding it holds a finished segmentation.
SEGMENTATION_SUMMARY = "summary.json"
