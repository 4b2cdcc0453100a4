"""dClosure: a square with a dark outline band; the test breaks the outline and hides the square's colour.

Drawn directly at 64x64. Training: background 0..4/7, square 3/7..1 (overlapping ranges), side 40 at
0..24 per axis; a 2-pixel band inside the border has the square colour x (0.4, 0.5, 0.7). Test: square and
background share one colour from 3/7..4/7 so only the outline shows the square; half of the images have the
outline broken by 20 background-coloured squares (side 5..10), then made blocky in 2x2 cells.
"""

from __future__ import annotations

import numpy as np

from data_gen.common import Drawing, Params, paint_over, sample_colours
from data_gen.raster import Grid, rectangles

CANVAS = 64
SIDE = 40
BAND = 2
OUTLINE_RATIO = np.array([0.4, 0.5, 0.7])
BACKGROUND = (0.0, 4 / 7)
SQUARE = (3 / 7, 1.0)
TEST_COLOUR = (3 / 7, 4 / 7)
BREAK_PROBABILITY = 0.5
ERASERS = 20
ERASER_SIDE = (5, 10)
BLOCK = 2
SETTINGS = {
    "canvas": CANVAS,
    "square_side": SIDE,
    "outline_band": BAND,
    "outline_ratio": OUTLINE_RATIO.tolist(),
    "background_range": BACKGROUND,
    "square_range": SQUARE,
    "test_colour_range": TEST_COLOUR,
    "test_break_probability": BREAK_PROBABILITY,
    "test_erasers": ERASERS,
    "test_eraser_side": ERASER_SIDE,
    "test_block": BLOCK,
}


def sample(rng: np.random.Generator, n: int, special: bool) -> Params:
    """Parameters of n training-distribution images, or of n special test images."""
    position = rng.integers(0, CANVAS - SIDE + 1, size=(n, 2))
    if not special:
        background = sample_colours(rng, n, *BACKGROUND)
        return {"position": position, "background": background, "square": sample_colours(rng, n, *SQUARE)}
    colour = sample_colours(rng, n, *TEST_COLOUR)
    broken = rng.random(n) < BREAK_PROBABILITY
    side = rng.integers(ERASER_SIDE[0], ERASER_SIDE[1] + 1, size=(n, ERASERS))
    corner = rng.integers(0, CANVAS - side[..., None], size=(n, ERASERS, 2))
    return {
        "position": position,
        "background": colour,
        "square": colour,
        "broken": broken,
        "eraser_side": side,
        "eraser_corner": corner,
    }


def draw(params: Params, grid: Grid) -> Drawing:
    """Draw a batch (the grid must be the full 64x64 canvas)."""
    top, left = params["position"].T
    square = rectangles(grid, top, left, SIDE, SIDE)
    interior = rectangles(grid, top + BAND, left + BAND, SIDE - 2 * BAND, SIDE - 2 * BAND)
    detailed = square.astype(np.uint8) + interior
    palette = np.stack([params["background"], params["square"] * OUTLINE_RATIO, params["square"]], axis=1)
    paint = detailed.copy()
    if "broken" in params:
        n = len(top)
        side, corner = params["eraser_side"].ravel(), params["eraser_corner"].reshape(-1, 2)
        erased = rectangles(grid, corner[:, 0], corner[:, 1], side, side).reshape(n, ERASERS, *grid.shape)
        broken = params["broken"][:, None, None]
        paint_over(paint, erased.any(axis=1) & broken, 0)
        blocky = paint[:, ::BLOCK, ::BLOCK].repeat(BLOCK, axis=1).repeat(BLOCK, axis=2)
        paint_over(paint, np.broadcast_to(broken, paint.shape), blocky)
    return Drawing(paint=paint, palette=palette, masks=square.astype(np.uint8), detailed_masks=detailed)
