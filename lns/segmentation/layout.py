"""The memory layout models are segmented in, one default for ``run_segment.py`` and ``lns.segment_images``.

lns's autoencoders decode about twice as fast on a CPU in NHWC (channels-last) layout. A layout changes which
convolution kernels run, and so the rounding of every decoding: at sigma=1e-3 that alone moves ward's near-ties.
Both entry points therefore segment in the same layout by default, :data:`CHANNELS_LAST`, so they give the same
labels bit for bit. Other models keep their own layout (torch.func's Jacobian fails on GroupNorm in NHWC).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from lns.models import Autoencoder

CHANNELS_LAST = True
"""The default of both entry points (``channels_last`` in conf/segment.yaml, in ``lns.segment_images``)."""


def _is_channels_last(model: torch.nn.Module) -> bool:
    weights = [p for p in model.parameters() if p.ndim == 4]
    return bool(weights) and weights[0].is_contiguous(memory_format=torch.channels_last)


def to_segmentation_layout(model: Any, channels_last: bool) -> bool:
    """Put lns's autoencoder ``model`` in NHWC layout when ``channels_last``; True when it changed anything."""
    if not channels_last or not isinstance(model, Autoencoder) or _is_channels_last(model):
        return False
    model.to(memory_format=torch.channels_last)
    return True


@contextmanager
def segmentation_layout(model: Any, channels_last: bool) -> Iterator[None]:
    """:func:`to_segmentation_layout` for a block, the model's own layout back afterwards."""
    changed = to_segmentation_layout(model, channels_last)
    try:
        yield
    finally:
        if changed:
            model.to(memory_format=torch.contiguous_format)
