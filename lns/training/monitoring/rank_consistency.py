"""The end-of-training check that every rank of a data-parallel run holds the same training state."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
import torch


class RankConsistency(pl.Callback):
    """At the end of training, check that every rank holds the same weights and objective state.

    Writes ``rank_consistency.json`` (one entry per rank: GECO beta, error average, a weight checksum) and
    raises if the ranks disagree, which would mean the GECO update or the gradient reduction is broken.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = [float(p.detach().double().sum()) for p in pl_module.model.parameters()]
        buffers = {name: float(b.double().sum()) for name, b in pl_module.objective.named_buffers()}
        local = torch.tensor([sum(state), *buffers.values()], dtype=torch.float64, device=pl_module.device)
        gathered = trainer.strategy.all_gather(local).reshape(trainer.world_size, -1).cpu()
        entries = [
            {
                "rank": rank,
                "weight_sum": float(row[0]),
                **dict(zip(buffers, map(float, row[1:]), strict=True)),
            }
            for rank, row in enumerate(gathered)
        ]
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / "rank_consistency.json"
            path.write_text(json.dumps(entries, indent=2) + "\n")
        if not torch.equal(gathered, gathered[:1].expand_as(gathered)):
            raise RuntimeError(f"Training state differs across ranks: {entries}")
