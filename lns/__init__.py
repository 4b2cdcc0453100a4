"""Latent Noise Segmentation: segment images with the latent noise of any generative model, and train the paper's.

The public Python API (no Hydra needed)::

    import lns

    result = lns.segment_images(model, images, n_clusters=3)   # any model with encode and decode
    lns.adjusted_rand_index(result.labels, masks)
    model = lns.load_model("<training run directory or checkpoint>")

The names are imported on first use, so ``import lns`` stays light for the command-line entry points.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lns.api import Segmentation, adjusted_rand_index, load_model, segment_images
    from lns.errors import LNSError, PrecisionWarning
    from lns.models.protocol import SegmentableModel

__version__ = "0.1.0"

_EXPORTS = {
    "segment_images": "lns.api",
    "adjusted_rand_index": "lns.api",
    "load_model": "lns.api",
    "Segmentation": "lns.api",
    "SegmentableModel": "lns.models.protocol",
    "LNSError": "lns.errors",
    "PrecisionWarning": "lns.errors",
}

__all__ = [
    "LNSError",
    "PrecisionWarning",
    "SegmentableModel",
    "Segmentation",
    "adjusted_rand_index",
    "load_model",
    "segment_images",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lns' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
