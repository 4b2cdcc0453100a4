"""A run refused before it started leaves nothing behind: no new folder, or in a sweep one holding ``error.txt``.

Hydra creates a job's output folder (and its log file) before the job's checks run, and a refusal found while
Lightning sets the run up comes after ``.hydra/``, ``run_config.yaml`` and the lock file were written. When the
folder held nothing but Hydra's log as the job began, and holds nothing but such bookkeeping when the job is
refused, the job never produced anything: the folder is removed (with the empty folders above it, up to the
working directory), or in a sweep emptied down to ``error.txt`` so that the sweep's ``jobs.md`` can say why.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

from lns.runs.hydra_record import HYDRA_RECORD
from lns.runs.run_layout import RUN_CONFIG
from lns.runs.run_lock import RUN_LOCK
from lns.sweeps.job_outcome import ERROR_FILE

HYDRA_LOG_SUFFIX = ".log"
# What a refused training or segmentation may have written; anything else means the job started (a checkpoint,
# metrics rows, health.json, figures, segmentation parts) or belongs to someone else, and the folder stays.
BOOKKEEPING = frozenset({str(HYDRA_RECORD), str(RUN_LOCK), str(RUN_CONFIG), ERROR_FILE, "wandb_id.txt", "wandb"})
LOGGER_FILES = frozenset({"hparams.yaml"})


def _is_hydra_log(entry: Path) -> bool:
    return entry.is_file() and entry.suffix == HYDRA_LOG_SUFFIX


def is_fresh(folder: Path) -> bool:
    """True when ``folder`` is missing or holds only Hydra's job log (and an earlier attempt's ``error.txt``)."""
    if not folder.is_dir():
        return True
    return all(_is_hydra_log(entry) or entry.name == ERROR_FILE for entry in folder.iterdir())


def _only_bookkeeping(folder: Path) -> bool:
    for entry in folder.iterdir():
        if entry.name == "logs" and entry.is_dir():
            if any(item.name not in LOGGER_FILES for item in entry.iterdir()):
                return False
        elif not (_is_hydra_log(entry) or entry.name in BOOKKEEPING):
            return False
    return True


def _lock_is_free(folder: Path) -> bool:
    """False while another process holds the folder's training lock (``run.lock``)."""
    path = folder / RUN_LOCK
    if not path.is_file():
        return True
    descriptor = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        return error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(descriptor)
    return True


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def clear_refused_run(folder: Path, *, keep_error: bool, stop_at: Path) -> bool:
    """Remove what a refused job left in ``folder`` (see the module docstring); return whether it did.

    ``keep_error``: keep ``error.txt`` (a sweep job) instead of removing the folder. Without it, the folder and
    then every empty folder above it are removed, up to (not including) ``stop_at``.
    """
    if not folder.is_dir() or not _only_bookkeeping(folder) or not _lock_is_free(folder):
        return False
    for entry in folder.iterdir():
        if not (keep_error and entry.name == ERROR_FILE):
            _remove(entry)
    if keep_error:
        return True
    current, stop_at = folder.resolve(), stop_at.resolve()
    while True:
        try:
            current.rmdir()
        except OSError:
            break
        current = current.parent
        if stop_at not in current.parents:
            break
    return True
