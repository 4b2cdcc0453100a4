"""Checkpoint writing that never leaves a half-written file under the final name."""

from __future__ import annotations

from typing import Any

import torch
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.plugins.io import TorchCheckpointIO

from lns.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO whose saves are atomic: a kill at any moment keeps the previous file intact.

    ``torch.save`` writes through a Python file object, so a full disk surfaces as the file's ``OSError`` (which
    :func:`~lns.atomic.atomic_path` turns into a clear message) rather than as an opaque zip-writer error.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(checkpoint, handle)
