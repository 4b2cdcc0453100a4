"""Temporary files and folders left by killed processes: find the ones whose writer is dead and remove them.

Atomic writes (:mod:`lns.runs.atomic`) write ``.<name>.<pid>.tmp`` beside the final file; dataset generation builds
``.<folder>.partial-<pid>-<random>`` beside the dataset folder. The process id in the name tells whether the
writer still runs on this machine; the files of a live process are never touched.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

TEMPORARY_FILE = re.compile(r"^\..+\.(?P<pid>\d+)\.tmp$")
PARTIAL_FOLDER = re.compile(r"^\..+\.partial-(?P<pid>\d+)-[^/]*$")


def process_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine (whoever owns it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer(path: Path, pattern: re.Pattern[str]) -> int | None:
    match = pattern.match(path.name)
    return int(match["pid"]) if match else None


def stale_temporary_files(root: str | os.PathLike[str]) -> list[Path]:
    """``.<name>.<pid>.tmp`` files anywhere under ``root`` whose process is not running."""
    stale = []
    for path in sorted(Path(root).rglob(".*.tmp")):
        pid = _writer(path, TEMPORARY_FILE)
        if pid is not None and path.is_file() and not process_alive(pid):
            stale.append(path)
    return stale


def stale_partial_folders(parent: str | os.PathLike[str]) -> list[Path]:
    """``.<folder>.partial-<pid>-*`` folders directly in ``parent`` whose process is not running."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    stale = []
    for path in sorted(parent.glob(".*.partial-*")):
        pid = _writer(path, PARTIAL_FOLDER)
        if pid is not None and path.is_dir() and not process_alive(pid):
            stale.append(path)
    return stale


def remove_stale_temporary_files(root: str | os.PathLike[str]) -> list[Path]:
    """Remove :func:`stale_temporary_files` under ``root``; return what was removed (each one logged)."""
    removed = []
    for path in stale_temporary_files(root):
        path.unlink(missing_ok=True)
        log.info("Removed %s, left by a process that no longer runs.", path)
        removed.append(path)
    return removed


def remove_stale_partial_folders(parent: str | os.PathLike[str]) -> list[Path]:
    """Remove :func:`stale_partial_folders` in ``parent``; return what was removed (each one logged)."""
    removed = []
    for path in stale_partial_folders(parent):
        shutil.rmtree(path, ignore_errors=True)
        log.info("Removed %s, a dataset folder left half-written by a process that no longer runs.", path)
        removed.append(path)
    return removed
