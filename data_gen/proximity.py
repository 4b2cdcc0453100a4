"""dProximity: rows of 7x7 squares grouped by spacing and colour; the test groups by spacing alone.

Drawn directly at 64x64. Training: background 6/7..1, shapes 3/7..5/7, an 8 x 56 box at 0..(64 - size) per
axis. With probability 0.30 one row of six squares (1-pixel spacing) in one colour at offset rows 0..1,
cols 0..9 in the box; otherwise three pairs of squares in three colours, each pair at its own row offset 0..1,
the five free columns spread over the gaps by a uniform non-decreasing triple (i, j, k) in 0..5 (pair columns
i, j + 18, k + 36), so pairs are at least 3 pixels apart. Test: one colour for every square; half the images
show six equally spaced squares (one group), half three pairs with 3-pixel gaps (three groups).
"""

from __future__ import annotations

import itertools

import numpy as np

from data_gen.common import Drawing, Params, paint_over, sample_colours
from data_gen.raster import Grid, rectangles

CANVAS = 64
SQUARE = 7
PITCH = SQUARE + 1
BOX = np.array([8, 56])
PAIR_STRIDE = 2 * SQUARE + 1 + 3
SAME_PROBABILITY = 0.30
TEST_SAME_PROBABILITY = 0.5
BACKGROUND = (6 / 7, 1.0)
SHAPE = (3 / 7, 5 / 7)
ROW = np.array([SQUARE, 6 * SQUARE + 5])
PAIRS = np.array([SQUARE, 6 * SQUARE + 3 + 2 * 3])
FREE_COLUMNS = int(BOX[1]) - 6 * SQUARE - 3 - 2 * 3
TRIPLES = np.array([t for t in itertools.product(range(FREE_COLUMNS + 1), repeat=3) if t[0] <= t[1] <= t[2]])
SETTINGS = {
    "canvas": CANVAS,
    "square_side": SQUARE,
    "box": BOX.tolist(),
    "same_probability": SAME_PROBABILITY,
    "test_same_probability": TEST_SAME_PROBABILITY,
    "background_range": BACKGROUND,
    "shape_range": SHAPE,
    "min_group_gap": 3,
    "column_triples": len(TRIPLES),
}


def _groups(same: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> Params:
    """Group corners (n, 3, 2) and square counts (n, 3): one group of six when ``same``, else 3 pairs."""
    squares = np.where(same[:, None], np.array([6, 0, 0]), np.array([2, 2, 2]))
    return {"group_corner": np.stack([rows, cols], axis=-1), "group_squares": squares}


def sample(rng: np.random.Generator, n: int, special: bool) -> Params:
    """Parameters of n training-distribution images, or of n special test images."""
    background = sample_colours(rng, n, *BACKGROUND)
    pair_offsets = np.arange(3) * PAIR_STRIDE
    if not special:
        box = rng.integers(0, CANVAS - BOX + 1, size=(n, 2))
        same = rng.random(n) < SAME_PROBABILITY
        colours = sample_colours(rng, (n, 3), *SHAPE)
        row_offset = rng.integers(0, BOX - ROW + 1, size=(n, 2))
        pair_rows = rng.integers(0, BOX[0] - SQUARE + 1, size=(n, 3))
        triple = TRIPLES[rng.integers(0, len(TRIPLES), size=n)]
        rows = np.where(same[:, None], row_offset[:, :1], pair_rows) + box[:, :1]
        cols = np.where(same[:, None], row_offset[:, 1:], triple + pair_offsets) + box[:, 1:]
    else:
        colours = np.repeat(sample_colours(rng, n, *SHAPE)[:, None], 3, axis=1)
        same = rng.random(n) < TEST_SAME_PROBABILITY
        corner = rng.integers(0, CANVAS - np.where(same[:, None], ROW, PAIRS) + 1)
        rows = np.repeat(corner[:, :1], 3, axis=1)
        cols = corner[:, 1:] + pair_offsets
    return {"background": background, "colours": colours, **_groups(same, rows, cols)}


def draw(params: Params, grid: Grid) -> Drawing:
    """Draw a batch (the grid must be the full 64x64 canvas). Labels: 0 background, 1..3 the groups."""
    corner, squares = params["group_corner"], params["group_squares"]
    n = len(corner)
    labels = np.zeros((n, *grid.shape), dtype=np.uint8)
    for group in range(3):
        for k in range(6):
            cover = rectangles(grid, corner[:, group, 0], corner[:, group, 1] + k * PITCH, SQUARE, SQUARE)
            paint_over(labels, cover & (k < squares[:, group])[:, None, None], group + 1)
    palette = np.concatenate([params["background"][:, None], params["colours"]], axis=1)
    return Drawing(paint=labels, palette=palette, masks=labels, detailed_masks=None)
