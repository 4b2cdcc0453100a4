"""What the dataset modules share: colour sampling, the drawing result, and turning label maps into images.

A dataset module draws a batch as a *paint* map (N, H, W) of palette indices plus a per-image palette
(N, K, 3) of exact colours, so parts whose colours are ratios of each other keep that exact relation and the
split's colour scale (999/1000 for train, 998/1000 for valid) is applied once, to the palette.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Drawing:
    """A drawn batch: palette indices, per-image colours, and the label maps the split stores."""

    paint: np.ndarray  # uint8 (N, H, W) index into the palette
    palette: np.ndarray  # float64 (N, K, 3) colours in [0, 1]
    masks: np.ndarray  # uint8 (N, H, W) object labels
    detailed_masks: np.ndarray | None  # uint8 (N, H, W) part labels, None where the dataset defines none


def channel_bounds(low: float | np.ndarray, high: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer bounds per channel: [ceil(low * 255), floor(high * 255)]."""
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), (3,))
    high = np.broadcast_to(np.asarray(high, dtype=np.float64), (3,))
    return np.ceil(low * 255).astype(np.int64), np.floor(high * 255).astype(np.int64)


def sample_colours(
    rng: np.random.Generator, shape: int | tuple[int, ...], low: float | np.ndarray, high: float | np.ndarray
) -> np.ndarray:
    """Colours of ``shape`` (+ 3 channels): integers per channel within `channel_bounds`, divided by 255."""
    lo, hi = channel_bounds(low, high)
    size = (*np.atleast_1d(shape), 3)
    return rng.integers(lo, hi + 1, size=size) / 255.0


def take(params: Params, start: int, stop: int) -> Params:
    """Rows start..stop-1 of every parameter array."""
    return {key: value[start:stop] for key, value in params.items()}


def compose(paint: np.ndarray, palette: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Images (N, 3, H, W) float32: each pixel takes its palette colour, times ``scale``."""
    n, height, width = paint.shape
    k = palette.shape[1]
    colours = palette * scale if scale != 1.0 else palette
    table = np.ascontiguousarray(colours.astype(np.float32).transpose(2, 0, 1).reshape(3, n * k))
    index = paint.reshape(n, height * width).astype(np.intp)
    index += (np.arange(n, dtype=np.intp) * k)[:, None]
    images = np.empty((n, 3, height * width), dtype=np.float32)
    for channel in range(3):
        np.take(table[channel], index, out=images[:, channel])
    return images.reshape(n, 3, height, width)


def paint_over(canvas: np.ndarray, cover: np.ndarray, value: int | np.ndarray) -> np.ndarray:
    """Set ``canvas`` to ``value`` where ``cover`` is true (later shapes over earlier ones), in place."""
    np.copyto(canvas, np.asarray(value, dtype=canvas.dtype), where=cover)
    return canvas
