"""dGradOcclusion: a flat vertical bar over a horizontal gradient bar; the test makes the two overlap.

Drawn on a 256 canvas. Background 6/7..1; both bars 3/7..5/7. The horizontal bar (60 x 120) is drawn first,
column j coloured colour x (0.4 + j / 119 x 0.6) rounded to the nearest 8-bit level n/255 (`gradient_colours`);
the vertical bar (120 x 60, ratio 1, i.e. flat) over it, each at an independent uniform position. Test: the
horizontal bar's position is drawn so the bars overlap. Masks: 1 the vertical bar (it owns the overlap), 2 the
horizontal bar; detailed masks: 1 vertical only, 2 horizontal only, 3 overlap.
"""

from __future__ import annotations

import numpy as np

from data_gen.common import Drawing, Params, paint_over, sample_colours
from data_gen.raster import Grid, rectangles

CANVAS = 256
VERTICAL = np.array([120, 60])
HORIZONTAL = np.array([60, 120])
VERTICAL_RATIO = 1.0
HORIZONTAL_RATIO = 0.4
BACKGROUND = (6 / 7, 1.0)
SHAPE = (3 / 7, 5 / 7)
SETTINGS = {
    "canvas": CANVAS,
    "vertical_bar": VERTICAL.tolist(),
    "horizontal_bar": HORIZONTAL.tolist(),
    "vertical_gradient_ratio": VERTICAL_RATIO,
    "horizontal_gradient_ratio": HORIZONTAL_RATIO,
    "background_range": BACKGROUND,
    "shape_range": SHAPE,
}


def sample(rng: np.random.Generator, n: int, special: bool) -> Params:
    """Parameters of n training-distribution images, or of n special test images."""
    vertical_colour = sample_colours(rng, n, *SHAPE)
    horizontal_colour = sample_colours(rng, n, *SHAPE)
    background = sample_colours(rng, n, *BACKGROUND)
    vertical = rng.integers(0, CANVAS - VERTICAL + 1, size=(n, 2))
    if special:
        low = np.maximum(0, vertical - HORIZONTAL + 1)
        high = np.minimum(CANVAS - HORIZONTAL, vertical + VERTICAL - 1)
        horizontal = rng.integers(low, high + 1)
    else:
        horizontal = rng.integers(0, CANVAS - HORIZONTAL + 1, size=(n, 2))
    return {
        "vertical": vertical,
        "horizontal": horizontal,
        "vertical_colour": vertical_colour,
        "horizontal_colour": horizontal_colour,
        "background": background,
    }


def gradient(length: int, ratio: float) -> np.ndarray:
    """Colour factors along a bar: ratio at the start rising linearly to 1 at the end."""
    return ratio + np.arange(length) / (length - 1) * (1 - ratio)


def gradient_colours(colour: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Colours (N, 3) x factors (K,) -> (N, K, 3), each rounded to the nearest 8-bit level n/255.

    Unrounded, the products n/255 x factor lie on a grid 595 times finer than 1/255, and the splits' colour
    scales (999/1000, 998/1000) move them onto each other: gradient colours then repeat across splits. On the
    8-bit levels the scales keep every split's values apart, as for the flat colours (within 1/510 of the exact
    product).
    """
    levels = np.round(colour[:, None, :] * 255) * factors[None, :, None]
    return np.round(levels) / 255


def draw(params: Params, grid: Grid) -> Drawing:
    """Draw a batch on the given grid of the 256 canvas.

    Palette: 0 background, 1 the vertical bar (flat, ratio 1), 2 + j column j of the horizontal bar.
    """
    vertical, horizontal = params["vertical"], params["horizontal"]
    front = rectangles(grid, vertical[:, 0], vertical[:, 1], *VERTICAL)
    back = rectangles(grid, horizontal[:, 0], horizontal[:, 1], *HORIZONTAL)
    column = np.clip(grid.cols[None, :] - horizontal[:, 1:2], 0, HORIZONTAL[1] - 1)
    paint = np.where(back, (2 + column[:, None, :]).astype(np.uint8), np.uint8(0))
    paint_over(paint, front, 1)
    factors = gradient(int(HORIZONTAL[1]), HORIZONTAL_RATIO)
    bar = gradient_colours(params["horizontal_colour"], factors)
    flat = params["vertical_colour"] * gradient(int(VERTICAL[0]), VERTICAL_RATIO)[0]
    palette = np.concatenate([params["background"][:, None], flat[:, None], bar], axis=1)
    masks = np.where(front, np.uint8(1), np.where(back, np.uint8(2), np.uint8(0)))
    detailed = front.astype(np.uint8) + 2 * back.astype(np.uint8)
    return Drawing(paint=paint, palette=palette, masks=masks, detailed_masks=detailed)
