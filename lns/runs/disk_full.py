"""Recognising a write that failed for lack of space, and the one-paragraph explanation the user gets."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from lns.errors import LNSError

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def no_space_error(error: BaseException) -> OSError | None:
    """The "no space left" / "quota exceeded" ``OSError`` that is ``error`` or that it was raised from or during.

    ``torch.save`` reports a full disk as a ``RuntimeError`` of its zip writer; the ``OSError`` of the Python
    file object it wrote to is then its ``__context__``.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in NO_SPACE_ERRNOS:
            return current
        pending += [current.__cause__, current.__context__]
    return None


def is_disk_full(error: BaseException) -> bool:
    """True when :func:`no_space_error` finds the "no space left" error behind ``error``."""
    return no_space_error(error) is not None


def disk_full_error(path: str | os.PathLike[str] | None) -> LNSError:
    """The :class:`LNSError` for a write of ``path`` (None: unknown) that failed because the disk is full."""
    where = f"writing {path}" if path is not None else "writing a file"
    folder = Path(path).parent if path is not None else Path(".")
    return LNSError(
        f"No space left on the device (or the disk quota is used up) while {where}. The file it was replacing, if "
        f"any, is intact and the partial write was removed. Free space there (see `df -h {folder}`) or write to "
        "another disk, then run the same command again: a training run resumes from its checkpoints/last.ckpt, a "
        "segmentation skips the images it finished, and dataset generation starts that dataset again."
    )
