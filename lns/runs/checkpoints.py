"""Checkpoint files: reading them safely (``weights_only`` loading, every failure an :class:`LNSError` naming the
file) and writing them atomically (a kill at any moment keeps the previous file intact)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from lns.errors import LNSError
from lns.runs.atomic import atomic_path


def _refusal_detail(error: Exception) -> str:
    """The line of a ``weights_only`` refusal that says what was refused ('' for other errors)."""
    text = str(error)
    if "WeightsUnpickler error:" not in text:
        return ""
    rest = text.split("WeightsUnpickler error:", 1)[1].strip()
    return rest.splitlines()[0].split(" Please use", 1)[0] if rest else ""


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; arbitrary pickled objects are never executed."""
    path = Path(path)
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise LNSError(f"Checkpoint {path} {problem}; check the path (run_dir=... or ckpt_path=...).")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load signals unreadable files with many exception types
        refused = _refusal_detail(error)
        if "global" in refused.lower() or "class" in refused.lower():
            raise LNSError(
                f"Checkpoint {path} cannot be read: it contains pickled Python objects that are not plain tensors "
                "or values, so it was refused without running them; only load checkpoints from sources you "
                f"trust, and re-save them with plain values. Details: {refused}"
            ) from error
        reason = refused or f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        kind = (
            "not a PyTorch file of tensors, or truncated or corrupt"
            if isinstance(error, pickle.UnpicklingError)
            else "truncated or corrupt"
        )
        raise LNSError(
            f"Checkpoint {path} cannot be read ({kind}: {reason}); copy it again, or use checkpoints/last.ckpt or an "
            "earlier periodic checkpoint of the run."
        ) from error


def read_checkpoint_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`read_checkpoint`, whose content must be a dictionary."""
    content = read_checkpoint(path)
    if not isinstance(content, dict):
        raise LNSError(f"Checkpoint {path} holds a {type(content).__name__}, not a checkpoint dictionary.")
    return content


def write_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save(checkpoint, path)`` with the atomic rename of :func:`~lns.runs.atomic.atomic_path`.

    ``torch.save`` writes through a Python file object, so a full disk surfaces as the file's ``OSError`` (which
    :func:`~lns.runs.atomic.atomic_path` turns into a clear message) rather than as an opaque zip-writer error.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(checkpoint, handle)
