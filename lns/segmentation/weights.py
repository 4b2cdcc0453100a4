"""The ``weights`` control: segment with the run's trained weights, or with its architecture at a fresh, seeded
initialisation (does a method need a trained network?)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from lns.errors import LNSError
from lns.models import Autoencoder, build_model
from lns.segmentation.source import ModelSource

WEIGHTS = ("trained", "random")


def fresh_model(model: nn.Module, seed: int, config: dict[str, Any] | None = None) -> nn.Module:
    """A new model of ``model``'s architecture, initialised from ``seed``; the global random state is kept.

    lns's autoencoders are rebuilt from their sizes, other models from ``config`` (the class and arguments their
    run recorded).
    """
    if not isinstance(model, Autoencoder) and config is None:
        raise LNSError(
            f"weights=random needs to rebuild the {type(model).__name__} from its class and arguments, which this "
            "checkpoint does not record; segment the training run of lns that wrote it (run_dir=...)."
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model, Autoencoder):
            fresh = Autoencoder(
                z_dim=model.z_dim, variational=model.variational, channels=model.channels, image_size=model.image_size
            )
        else:
            fresh = build_model(config)
    return fresh.eval()


def apply_weights(source: ModelSource, name: str, seed: int) -> ModelSource:
    """``source`` itself for ``trained``, or ``source`` with a :func:`fresh_model` for ``random``."""
    if name not in WEIGHTS:
        raise LNSError(f"weights={name} is unknown; valid: {', '.join(WEIGHTS)}.")
    if name == "trained":
        return source
    return dataclasses.replace(source, model=fresh_model(source.model, seed, source.model_config))


def weights_record(name: str, seed: int) -> dict[str, Any]:
    """The ``weights`` entry of ``summary.json``: the name, and the initialisation seed for ``random``."""
    return {"name": name} if name == "trained" else {"name": name, "seed": int(seed)}
