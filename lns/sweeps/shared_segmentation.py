"""Segmentations that every job of a sweep would repeat, done once: methods that do not use the network.

rgb, rgbxy, slic and felzenszwalb give the same labels for every run of a dataset, whatever its model or seed. Each
such segmentation of a sweep has a registry file, ``<sweep dir>/.shared/<dataset>.<job>.<settings hash>.lock``: the
first job to lock it segments into its own ``segment/<job>/`` and writes that folder into the file; a job that
locks it later reads that result instead. A job killed while segmenting releases the lock with its death, so the
next job of the dataset does the segmentation. The report therefore counts one run per dataset for these columns.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lns.runs.run_layout import SEGMENTATION_SUMMARY
from lns.runs.run_lock import UNSUPPORTED

log = logging.getLogger(__name__)

SHARED_DIR = ".shared"
RUN_SPECIFIC_KEYS = ("run_dir", "ckpt_path", "experiment_name", "tags", "logger")


def settings_hash(seg_cfg: DictConfig, dataset: str, image_size: int) -> str:
    """A short hash of what decides a network-free segmentation: its settings, the data folder, dataset and size
    (not the run it was started from, nor where it writes)."""
    settings = OmegaConf.to_container(seg_cfg, resolve=True)
    for key in RUN_SPECIFIC_KEYS:
        settings.pop(key, None)
    settings["paths"] = {"data_dir": settings["paths"]["data_dir"]}
    settings["dataset"], settings["image_size"] = dataset, image_size
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def registry_file(sweep_dir: Path, name: str, seg_cfg: DictConfig, dataset: str, image_size: int) -> Path:
    """The registry file of job ``name`` of the segmentation ``seg_cfg`` of ``dataset`` in ``sweep_dir``."""
    return sweep_dir / SHARED_DIR / f"{dataset}.{name}.{settings_hash(seg_cfg, dataset, image_size)}.lock"


def segment_once(
    registry: Path,
    out_dir: Path,
    segment: Callable[[], dict[str, Any]],
    finished: Callable[[Path], dict[str, Any]],
) -> dict[str, Any]:
    """The result recorded in ``registry`` when its folder holds a finished segmentation (``finished(folder)``);
    otherwise ``segment()`` into ``out_dir``, recorded for the jobs that come later. Waits while another job holds
    ``registry``. Where the file system has no file locks, every job segments for itself."""
    registry.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(registry, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError as error:
            if error.errno not in UNSUPPORTED:
                raise
            log.warning("%s has no file locks (%s): this job segments for itself.", registry.parent, error)
            return segment()
        recorded = os.pread(descriptor, 4096, 0).decode().strip()
        if recorded and (Path(recorded) / SEGMENTATION_SUMMARY).is_file():
            return finished(Path(recorded))
        result = segment()
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{out_dir}\n".encode(), 0)
        return result
    finally:
        os.close(descriptor)
