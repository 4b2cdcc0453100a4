"""Atomic file writing: write to a temporary sibling, fsync it, rename it over the final name, fsync the folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lns.runs.disk_full import disk_full_error, is_disk_full


def temporary_sibling(path: Path, pid: int | None = None) -> Path:
    """``.<name>.<pid>.tmp`` beside ``path``: the process id tells a stale file from one still being written."""
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}.tmp")


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (e.g. a rename into it) to the disk, so a power loss cannot undo them."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_durably(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """``os.replace(source, target)``, then fsync the target's folder (and the source's, when it differs)."""
    os.replace(source, target)
    folders = {Path(target).absolute().parent, Path(source).absolute().parent}
    for folder in folders:
        fsync_directory(folder)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed to ``path``.

    On error the temporary file is removed and ``path`` keeps its previous content, so a crash or a kill at any
    moment never leaves a half-written file under the final name; a kill can leave the temporary file, which the
    next run removes (:mod:`lns.runs.stale_files`). A write that fails for lack of space raises an
    :class:`~lns.errors.LNSError` that says so.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        replace_durably(tmp, path)
    except Exception as error:
        if is_disk_full(error):
            raise disk_full_error(path) from error
        raise
    finally:
        tmp.unlink(missing_ok=True)


def atomic_savez(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """``numpy.savez`` with the atomic rename of :func:`atomic_path` (``path`` should end in ``.npz``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
