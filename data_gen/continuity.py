"""dContinuity: a circle outline; the test dashes it and adds clutter arcs of random colours.

Drawn on a 256 canvas. Training: background 6/7..1, circle 0..5/7, an outline of a 160x160 circle with stroke
10 at 0..96 per axis. Test: the circle as six 30-degree arcs starting every 60 degrees, then 5..19 random
30-degree arc fragments (same box and stroke, box anywhere in -160..256) in one of two colours drawn from the
whole 0..255 range. Masks: the whole circle path; detailed masks: 1 the path, 2 its painted arcs.
"""

from __future__ import annotations

import numpy as np

from data_gen.common import Drawing, Params, paint_over, sample_colours
from data_gen.raster import Grid, arcs

CANVAS = 256
BOX = 160
STROKE = 10
BACKGROUND = (6 / 7, 1.0)
CIRCLE = (0.0, 5 / 7)
ARC = 30
DASH_STARTS = np.arange(0, 360, 60)
FRAGMENTS = (5, 19)
FRAGMENT_REACH = (-BOX, CANVAS)
SETTINGS = {
    "canvas": CANVAS,
    "circle_box": BOX,
    "stroke": STROKE,
    "background_range": BACKGROUND,
    "circle_range": CIRCLE,
    "test_arc_degrees": ARC,
    "test_dash_starts": DASH_STARTS.tolist(),
    "test_fragments": FRAGMENTS,
    "test_fragment_box_range": FRAGMENT_REACH,
    "test_fragment_colour_range": (0.0, 1.0),
}


def sample(rng: np.random.Generator, n: int, special: bool) -> Params:
    """Parameters of n training-distribution images, or of n special test images."""
    params = {
        "position": rng.integers(0, CANVAS - BOX + 1, size=(n, 2)),
        "background": sample_colours(rng, n, *BACKGROUND),
        "circle": sample_colours(rng, n, *CIRCLE),
    }
    if special:
        most = FRAGMENTS[1]
        params["clutter"] = sample_colours(rng, (n, 2), 0.0, 1.0)
        params["fragments"] = rng.integers(FRAGMENTS[0], most + 1, size=n)
        params["fragment_colour"] = rng.integers(0, 2, size=(n, most))
        params["fragment_start"] = rng.integers(0, 361, size=(n, most))
        params["fragment_corner"] = rng.integers(FRAGMENT_REACH[0], FRAGMENT_REACH[1] + 1, size=(n, most, 2))
    return params


def draw(params: Params, grid: Grid) -> Drawing:
    """Draw a batch on the given grid of the 256 canvas."""
    top, left = params["position"].T
    n = len(top)
    ring = arcs(grid, top, left, BOX, BOX, STROKE)
    palette = [params["background"], params["circle"]]
    if "clutter" not in params:
        masks = ring.astype(np.uint8)
        return Drawing(paint=masks.copy(), palette=np.stack(palette, axis=1), masks=masks, detailed_masks=None)
    k = len(DASH_STARTS)
    starts = np.tile(DASH_STARTS, n)
    dashes = arcs(grid, top.repeat(k), left.repeat(k), BOX, BOX, STROKE, starts, starts + ARC)
    dashed = dashes.reshape(n, k, *grid.shape).any(axis=1)
    paint = dashed.astype(np.uint8)
    for j in range(params["fragment_start"].shape[1]):
        start, corner = params["fragment_start"][:, j], params["fragment_corner"][:, j]
        fragment = arcs(grid, corner[:, 0], corner[:, 1], BOX, BOX, STROKE, start, start + ARC)
        shown = fragment & (j < params["fragments"])[:, None, None]
        paint_over(paint, shown, (2 + params["fragment_colour"][:, j]).astype(np.uint8)[:, None, None])
    palette += [params["clutter"][:, 0], params["clutter"][:, 1]]
    masks = ring.astype(np.uint8)
    return Drawing(paint=paint, palette=np.stack(palette, axis=1), masks=masks, detailed_masks=masks + dashed)
