"""Lightning's checkpoint IO, writing through :func:`lns.runs.checkpoints.write_checkpoint`."""

from __future__ import annotations

from typing import Any

from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.plugins.io import TorchCheckpointIO

from lns.runs.checkpoints import write_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO whose saves are atomic: a kill at any moment keeps the previous file intact."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        write_checkpoint(checkpoint, path)
