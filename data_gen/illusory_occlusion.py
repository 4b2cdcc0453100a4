"""dIlluOcclusion: a square with a cross on a striped background; the test hides the square or the cross.

Drawn on a 256 canvas. Training: background 0..5/7 with diagonal stripes (width 10, every 40 pixels) of colour
background x (0.2, 0.6, 0.3); a square of side 80 (colour 2/7..1) at 0..176 per axis with a cross of two
32-pixel bands (offset 24 from the edges) of colour square x (0.8, 0.7, 0.3). Test, half and half: (a) one
colour from 2/7..5/7 for background and square (the square shows only through its cross); (b) one colour for
background and cross, the square body being that colour / (0.8, 0.7, 0.3) (the cross vanishes into the
background, so the square looks occluded by it).
"""

from __future__ import annotations

import math

import numpy as np

from data_gen.common import Drawing, Params, paint_over, sample_colours
from data_gen.raster import Grid, rectangles, thick_lines

CANVAS = 256
SIDE = 80
CROSS_OFFSET = math.floor(0.3 * SIDE)
CROSS_BAND = SIDE - 2 * CROSS_OFFSET
STRIPE_WIDTH = 10
STRIPE_STARTS = np.arange(2, 2 * CANVAS, 40)
STRIPE_MARGIN = 10
STRIPE_RATIO = np.array([0.2, 0.6, 0.3])
CROSS_RATIO = np.array([0.8, 0.7, 0.3])
BACKGROUND = (0.0, 5 / 7)
SQUARE = (2 / 7, 1.0)
TEST_SHARED = (2 / 7, 5 / 7)
TEST_CROSS = (SQUARE[0] * CROSS_RATIO, np.minimum(BACKGROUND[1], SQUARE[1] * CROSS_RATIO))
SETTINGS = {
    "canvas": CANVAS,
    "square_side": SIDE,
    "cross_offset": CROSS_OFFSET,
    "cross_band": CROSS_BAND,
    "stripe_width": STRIPE_WIDTH,
    "stripe_starts": STRIPE_STARTS.tolist(),
    "stripe_ratio": STRIPE_RATIO.tolist(),
    "cross_ratio": CROSS_RATIO.tolist(),
    "background_range": BACKGROUND,
    "square_range": SQUARE,
    "test_shared_range": TEST_SHARED,
    "test_cross_range": [TEST_CROSS[0].tolist(), TEST_CROSS[1].tolist()],
    "test_kind_probability": 0.5,
}


def sample(rng: np.random.Generator, n: int, special: bool) -> Params:
    """Parameters of n training-distribution images, or of n special test images."""
    position = rng.integers(0, CANVAS - SIDE + 1, size=(n, 2))
    if not special:
        background, square = sample_colours(rng, n, *BACKGROUND), sample_colours(rng, n, *SQUARE)
        cross = square * CROSS_RATIO
    else:
        hidden_cross = (rng.random(n) >= 0.5)[:, None]
        shared = sample_colours(rng, n, *TEST_SHARED)
        cross_colour = sample_colours(rng, n, *TEST_CROSS)
        background = np.where(hidden_cross, cross_colour, shared)
        square = np.where(hidden_cross, cross_colour / CROSS_RATIO, shared)
        cross = np.where(hidden_cross, cross_colour, shared * CROSS_RATIO)
    return {
        "position": position,
        "background": background,
        "stripes": background * STRIPE_RATIO,
        "square": square,
        "cross": cross,
    }


def stripes(grid: Grid) -> np.ndarray:
    """The fixed diagonal background stripes, (H, W) bool."""
    starts = np.stack([STRIPE_STARTS, np.full_like(STRIPE_STARTS, -STRIPE_MARGIN)], axis=1)
    return thick_lines(grid, starts, starts[:, ::-1], STRIPE_WIDTH).any(axis=0)


def draw(params: Params, grid: Grid) -> Drawing:
    """Draw a batch on the given grid of the 256 canvas."""
    top, left = params["position"].T
    n = len(top)
    detailed = np.broadcast_to(stripes(grid).astype(np.uint8), (n, *grid.shape)).copy()
    square = rectangles(grid, top, left, SIDE, SIDE)
    paint_over(detailed, square, 2)
    across = rectangles(grid, top + CROSS_OFFSET, left, CROSS_BAND, SIDE)
    down = rectangles(grid, top, left + CROSS_OFFSET, SIDE, CROSS_BAND)
    paint_over(detailed, across | down, 3)
    palette = np.stack([params["background"], params["stripes"], params["square"], params["cross"]], axis=1)
    return Drawing(paint=detailed, palette=palette, masks=square.astype(np.uint8), detailed_masks=detailed)
