"""dKanizsa: a square over four circles at its corners; the test makes the square the background colour.

Drawn on a 256 canvas. Training: background 5/7..6/7, square 5/7..1, circles 2/7..3/7; a square of side 100
at 44..112 per axis; four circles of diameter 48 whose boxes sit at each corner - 24, jittered by -20..20 per
axis; circles first, square over them. Test: background and square share a colour from 5/7..6/7, no jitter,
square at 24..132, so only the four "pacmen" outline an illusory square.
"""

from __future__ import annotations

import numpy as np

from data_gen.common import Drawing, Params, paint_over, sample_colours
from data_gen.raster import Grid, ellipses, rectangles

CANVAS = 256
SIDE = 100
DIAMETER = 48
JITTER = 20
CORNERS = np.array([[0, 0], [SIDE, 0], [0, SIDE], [SIDE, SIDE]])
BACKGROUND = (5 / 7, 6 / 7)
SQUARE = (5 / 7, 1.0)
CIRCLE = (2 / 7, 3 / 7)
TRAIN_POSITION = (DIAMETER // 2 + JITTER, CANVAS - SIDE - DIAMETER // 2 - JITTER)
TEST_POSITION = (DIAMETER // 2, CANVAS - SIDE - DIAMETER // 2)
SETTINGS = {
    "canvas": CANVAS,
    "square_side": SIDE,
    "circle_diameter": DIAMETER,
    "circle_jitter": JITTER,
    "background_range": BACKGROUND,
    "square_range": SQUARE,
    "circle_range": CIRCLE,
    "train_position_range": TRAIN_POSITION,
    "test_position_range": TEST_POSITION,
}


def sample(rng: np.random.Generator, n: int, special: bool) -> Params:
    """Parameters of n training-distribution images, or of n special test images."""
    if not special:
        background = sample_colours(rng, n, *BACKGROUND)
        square = sample_colours(rng, n, *SQUARE)
        position = rng.integers(TRAIN_POSITION[0], TRAIN_POSITION[1] + 1, size=(n, 2))
        jitter = rng.integers(-JITTER, JITTER + 1, size=(n, 4, 2))
    else:
        background = square = sample_colours(rng, n, *BACKGROUND)
        position = rng.integers(TEST_POSITION[0], TEST_POSITION[1] + 1, size=(n, 2))
        jitter = np.zeros((n, 4, 2), dtype=np.int64)
    circle = sample_colours(rng, n, *CIRCLE)
    return {
        "position": position,
        "jitter": jitter,
        "background": background,
        "square": square,
        "circle": circle,
    }


def draw(params: Params, grid: Grid) -> Drawing:
    """Draw a batch on the given grid of the 256 canvas."""
    position = params["position"]
    n = len(position)
    boxes = (position[:, None, :] + CORNERS - DIAMETER // 2 + params["jitter"]).reshape(-1, 2)
    circles = ellipses(grid, boxes[:, 0], boxes[:, 1], DIAMETER, DIAMETER).reshape(n, 4, *grid.shape)
    labels = circles.any(axis=1).astype(np.uint8)
    paint_over(labels, rectangles(grid, position[:, 0], position[:, 1], SIDE, SIDE), 2)
    palette = np.stack([params["background"], params["circle"], params["square"]], axis=1)
    return Drawing(paint=labels, palette=palette, masks=labels, detailed_masks=None)
