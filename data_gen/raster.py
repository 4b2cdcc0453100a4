"""Vectorised drawing primitives: a whole batch of shapes at once, with per-shape parameters.

Every primitive returns a boolean coverage array ``(N, H, W)`` for N shapes, evaluated at the canvas pixels a
`Grid` lists (every pixel of a 64 canvas, every 4th pixel of a 256 canvas, ...). Coverage is a pure per-pixel
predicate, so drawing on a sampled grid gives exactly the canvas drawn in full and then subsampled, at a
fraction of the cost.

The geometry reproduces Pillow's ``ImageDraw`` (which the reference generator used) pixel for pixel:
rectangles include both corners; an ellipse or arc lies in the box ``top..top+height-1`` x
``left..left+width-1`` and is traced on a doubled (half-pixel) lattice by a closest-point walk along the
curve, an arc of stroke ``w`` being the ring between that curve and the one ``w - 1`` pixels inside it; arc
angles are degrees clockwise from 3 o'clock and the caps are cut orthogonally to the curve; a thick line is
the parallelogram Pillow builds around the segment, filled by rows with its rounding rules. Shape parameters
are (row, col) positions in canvas pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_EPS = 1e-9


@dataclass(frozen=True)
class Grid:
    """Canvas pixels at which shapes are evaluated: output pixel (i, j) is canvas (rows[i], cols[j])."""

    rows: np.ndarray
    cols: np.ndarray

    @classmethod
    def sampled(cls, canvas: int, step: int = 1) -> Grid:
        """Every ``step``-th pixel of a square canvas, starting at 0."""
        index = np.arange(0, canvas, step, dtype=np.int64)
        return cls(index, index)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.cols)


def _column(values: np.ndarray | int, n: int) -> np.ndarray:
    """Per-shape integer parameter as an (n, 1) array (scalars are broadcast)."""
    return np.broadcast_to(np.asarray(values, dtype=np.int64), (n,)).reshape(n, 1)


def _count(*values: np.ndarray | int) -> int:
    return max(np.size(v) for v in values)


def rectangles(
    grid: Grid, top: np.ndarray, left: np.ndarray, height: np.ndarray | int, width: np.ndarray | int
) -> np.ndarray:
    """Filled axis-aligned rectangles covering rows top..top+height-1 and cols left..left+width-1."""
    n = _count(top, left, height, width)
    top, left = _column(top, n), _column(left, n)
    in_rows = (grid.rows >= top) & (grid.rows < top + _column(height, n))
    in_cols = (grid.cols >= left) & (grid.cols < left + _column(width, n))
    return in_rows[:, :, None] & in_cols[:, None, :]


# ----------------------------------------------------------------------------------------------- ellipses


@lru_cache(maxsize=256)
def _quarter_walk(a: int, b: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Trace the quarter ellipse x^2/a^2 + y^2/b^2 = 1 (x, y >= 0) on the doubled lattice.

    Starts at (a, b mod 2) and ends at (a mod 2, b), stepping by 2 up, left, or diagonally to whichever point
    lies closest to the curve (smallest |b^2 x^2 + a^2 y^2 - a^2 b^2|, preferring up, then diagonal). Returns
    the largest and the smallest x visited on each row y (indexable by y = 0..b; rows of the other parity hold
    -1), or None for a degenerate (negative) size.
    """
    if a < 0 or b < 0:
        return None
    widest = np.full(b + 1, -1, dtype=np.int64)
    narrowest = np.full(b + 1, -1, dtype=np.int64)
    a2, b2 = a * a, b * b

    def deviation(x: int, y: int) -> int:
        return abs(a2 * y * y + b2 * x * x - a2 * b2)

    x, y = a, b % 2
    for _ in range(a + b + 2):
        if widest[y] < 0:
            widest[y] = x
        narrowest[y] = x
        if x == a % 2 and y == b:
            widest.flags.writeable = narrowest.flags.writeable = False  # shared through the cache
            return widest, narrowest
        best, best_deviation = (x, y + 2), deviation(x, y + 2)
        if x > 1:
            for candidate in ((x - 2, y + 2), (x - 2, y)):
                candidate_deviation = deviation(*candidate)
                if best_deviation > candidate_deviation:
                    best, best_deviation = candidate, candidate_deviation
        x, y = best
    raise AssertionError(f"quarter ellipse walk for a={a}, b={b} did not terminate")


@lru_cache(maxsize=256)
def _ring_rows(a: int, b: int, stroke: int) -> tuple[np.ndarray, np.ndarray]:
    """Per doubled row offset |Y| = 0..b: the outer and inner |X| bounds of a ring of ``stroke`` pixels.

    A pixel at doubled offsets (X, Y) from the centre is drawn when inner[|Y|] <= |X| <= outer[|Y|]. A filled
    ellipse is the ring whose inner curve is degenerate (inner bound a mod 2, the centre column, everywhere).
    """
    outer = np.full(b + 1, -1, dtype=np.int64)
    inner = np.full(b + 1, a % 2, dtype=np.int64)  # rows past the inner curve: filled to the centre column
    walk = _quarter_walk(a, b)
    if stroke < 1 or walk is None:
        return outer, inner
    outer = walk[0]
    inset = 2 * (stroke - 1)
    inner_walk = _quarter_walk(a - inset, b - inset)
    if inner_walk is not None:
        rows = b - inset + 1
        inner[:rows] = np.maximum(inner_walk[1], 0)
    inner.flags.writeable = False
    return outer, inner


def _normalize_angles(start: float, end: float) -> tuple[float, float]:
    """Pillow's angle normalisation: 0 <= start < 360 and start <= end <= start + 360."""
    if end - start >= 360:
        return 0.0, 360.0
    start = math.fmod(360 - math.fmod(-start, 360) if start < 0 else start, 360)
    end = start + math.fmod(360 - math.fmod(start - end, 360) if end < start else end - start, 360)
    return start, end


# A clip tree node: ("clip", A, B, C) keeps the half-plane A x + B y + C >= 0; ("and"|"or", left, right).
_Node = tuple


def _arc_clip_tree(a: int, b: int, start: float, end: float) -> _Node | None:
    """Half-plane tree cutting a ring to the arc start..end (doubled lattice, y down); None keeps it whole."""
    if a < b:
        transposed = _arc_clip_tree(b, a, 90 - end, 90 - start)
        return None if transposed is None else _transpose(transposed)
    start, end = _normalize_angles(start, end)
    if end == start + 360:
        return None
    # Same operation order as Pillow (angle * pi / 180), so the caps round identically.
    rad_l, rad_r = start * math.pi / 180.0, end * math.pi / 180.0
    twice_l, twice_r = start * math.pi / 90.0, end * math.pi / 90.0
    left_cap = ("clip", -a * math.sin(rad_l), b * math.cos(rad_l), (a * a - b * b) * math.sin(twice_l) / 2.0)
    right_cap = ("clip", a * math.sin(rad_r), -b * math.cos(rad_r), (b * b - a * a) * math.sin(twice_r) / 2.0)
    join = "and" if end - start < 180 else "or"
    if math.fmod(start, 180) == 0 or math.fmod(end, 180) == 0:
        return (join, left_cap, right_cap)
    half_l, half_r = int(start / 180), int(end / 180)
    if (half_l + half_r) % 2 == 1:
        lower_l = ("clip", 0.0, 1.0 if half_l % 2 == 0 else -1.0, 0.0)
        lower_r = ("clip", 0.0, 1.0 if half_r % 2 == 0 else -1.0, 0.0)
        return ("or", ("and", lower_l, left_cap), ("and", lower_r, right_cap))
    side = ("clip", 0.0, 1.0 if end < 180 or end > 540 else -1.0, 0.0)
    return (join, (join, left_cap, right_cap), side)


def _transpose(node: _Node) -> _Node:
    if node[0] == "clip":
        return ("clip", node[2], node[1], node[3])
    return (node[0], _transpose(node[1]), _transpose(node[2]))


def _round_up(values: np.ndarray) -> np.ndarray:
    """Pillow's ROUND_UP: halves away from zero."""
    return np.where(values >= 0, np.floor(values + 0.5), -np.floor(np.abs(values) + 0.5))


def _round_down(values: np.ndarray) -> np.ndarray:
    """Pillow's ROUND_DOWN: halves towards zero."""
    return np.where(values >= 0, np.ceil(values - 0.5), -np.ceil(np.abs(values) - 0.5))


def _clip_interval(node: _Node, y: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cut row segments [first, last] (doubled lattice) by an AND-tree of half-planes; first > last: empty."""
    if node[0] == "and":
        first_l, last_l = _clip_interval(node[1], y, first, last)
        first_r, last_r = _clip_interval(node[2], y, first, last)
        return np.maximum(first_l, first_r), np.minimum(last_l, last_r)
    _, coef_x, coef_y, offset = node
    if abs(coef_x) < _EPS:
        dropped = coef_y * y + offset < -_EPS
        return np.where(dropped, 1, first), np.where(dropped, 0, last)
    crossing = -(coef_y * y + offset) / coef_x
    first = np.where(coef_x * first + coef_y * y + offset < _EPS, _round_up(np.maximum(first, crossing)), first)
    last = np.where(coef_x * last + coef_y * y + offset < _EPS, _round_up(np.minimum(last, crossing)), last)
    return first, last


def _clip_pixels(node: _Node, x: np.ndarray, y: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Pixels (doubled offsets x, parity of the ring) that the cut segments cover.

    x is (n, 1, W); y, first and last are (n, H, 1). A cut segment [s, e] covers the pixels whose offset lies
    in [s - 1, e], as halving the lattice coordinate (rounding down) maps it to pixel columns.
    """
    if node[0] == "or":
        return _clip_pixels(node[1], x, y, first, last) | _clip_pixels(node[2], x, y, first, last)
    first, last = _clip_interval(node, y, first, last)
    return (first <= last) & (x >= first - 1) & (x <= last)


def _group_keys(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of the stacked per-shape parameters and, per shape, the index of its row."""
    stacked = np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=1)
    keys, inverse = np.unique(stacked, axis=0, return_inverse=True)
    return keys, inverse.reshape(-1)


def arcs(
    grid: Grid,
    top: np.ndarray,
    left: np.ndarray,
    height: np.ndarray | int,
    width: np.ndarray | int,
    stroke: np.ndarray | int,
    start: np.ndarray | float = 0,
    end: np.ndarray | float = 360,
) -> np.ndarray:
    """Elliptic arcs of ``stroke`` pixels (drawn inward from the box) between start and end degrees."""
    n = _count(top, left, height, width, stroke, start, end)
    a = _column(width, n)[:, 0] - 1
    b = _column(height, n)[:, 0] - 1
    stroke = _column(stroke, n)[:, 0]
    start = np.broadcast_to(np.asarray(start, dtype=np.float64), (n,))
    end = np.broadcast_to(np.asarray(end, dtype=np.float64), (n,))
    # Doubled-lattice offsets of every grid pixel from each shape's centre: pixel = corner + (offset + a) / 2.
    x = 2 * grid.cols[None, :] - (2 * _column(left, n) + a[:, None])
    y = 2 * grid.rows[None, :] - (2 * _column(top, n) + b[:, None])

    cover = np.zeros((n, *grid.shape), dtype=bool)
    keys, group_of = _group_keys(a, b, stroke, start, end)
    for k, (ka, kb, ks, k_start, k_end) in enumerate(keys):
        members = np.flatnonzero(group_of == k)
        ka, kb, ks = int(ka), int(kb), int(ks)
        normal_start, normal_end = _normalize_angles(k_start, k_end)
        if normal_end == normal_start:
            continue
        outer, inner = _ring_rows(ka, kb, ks)
        rows_y = np.abs(y[members])
        row = np.minimum(rows_y, kb)
        high = np.where(rows_y <= kb, outer[row], -1)[:, :, None]
        low = inner[row][:, :, None]
        tree = _arc_clip_tree(ka, kb, k_start, k_end)
        if tree is None:
            span = np.abs(x[members])[:, None, :]
            cover[members] = (span <= high) & (span >= low)
            continue
        # Each row is a left segment [-high, -low] and a right one [low or 2, high], cut separately.
        xs, ys = x[members][:, None, :], y[members][:, :, None].astype(np.float64)
        right_first = np.where((low > 0) | (low < high), np.where(low == 0, 2, low), high + 1)
        cover[members] = _clip_pixels(tree, xs, ys, -high, -low) | _clip_pixels(tree, xs, ys, right_first, high)
    return cover


def ellipses(
    grid: Grid, top: np.ndarray, left: np.ndarray, height: np.ndarray | int, width: np.ndarray | int
) -> np.ndarray:
    """Filled ellipses inscribed in their boxes."""
    n = _count(top, left, height, width)
    return arcs(grid, top, left, height, width, _column(width, n)[:, 0] + _column(height, n)[:, 0] - 2)


# ----------------------------------------------------------------------------------------------- lines


def _line_corners(start: np.ndarray, end: np.ndarray, width: np.ndarray) -> np.ndarray:
    """The four integer (x, y) corners of Pillow's wide-line parallelogram, shape (n, 4, 2)."""
    x0, y0 = start[:, 1], start[:, 0]
    x1, y1 = end[:, 1], end[:, 0]
    dx, dy = x1 - x0, y1 - y0
    length = np.hypot(dx, dy)
    half = (width - 1) / 2.0
    ratio_max = _round_up(half) / length
    ratio_min = _round_down(half) / length
    dx_min, dx_max = _round_down(ratio_min * dy), _round_down(ratio_max * dy)
    dy_min, dy_max = _round_down(ratio_min * dx), _round_down(ratio_max * dx)
    corners = [
        (x0 - dx_min, y0 + dy_max),
        (x1 - dx_min, y1 + dy_max),
        (x1 + dx_max, y1 - dy_min),
        (x0 + dx_max, y0 - dy_min),
    ]
    return np.stack([np.stack(c, axis=1) for c in corners], axis=1).astype(np.int64)


def thick_lines(grid: Grid, start: np.ndarray, end: np.ndarray, width: np.ndarray | int) -> np.ndarray:
    """Lines of ``width`` pixels between (row, col) points ``start`` and ``end`` (each (n, 2), n > 0)."""
    start = np.asarray(start, dtype=np.int64).reshape(-1, 2)
    end = np.asarray(end, dtype=np.int64).reshape(-1, 2)
    n = len(start)
    width = _column(width, n)[:, 0]
    corners = _line_corners(start, end, width)
    rows = grid.rows[None, :].astype(np.float32)
    low = np.full((n, len(grid.rows)), np.inf, dtype=np.float32)
    high = np.full((n, len(grid.rows)), -np.inf, dtype=np.float32)
    for i in range(4):
        (xa, ya), (xb, yb) = corners[:, i].T, corners[:, (i + 1) % 4].T
        y_min, y_max = np.minimum(ya, yb)[:, None], np.maximum(ya, yb)[:, None]
        on_edge = (rows >= y_min) & (rows <= y_max)
        flat = (ya == yb)[:, None]
        slope = np.where(ya == yb, 0, (xb - xa) / np.where(ya == yb, 1, yb - ya)).astype(np.float32)[:, None]
        crossing = (rows - ya[:, None].astype(np.float32)) * slope + xa[:, None].astype(np.float32)
        edge_low = np.where(flat, np.minimum(xa, xb)[:, None], crossing)
        edge_high = np.where(flat, np.maximum(xa, xb)[:, None], crossing)
        low = np.where(on_edge, np.minimum(low, edge_low), low)
        high = np.where(on_edge, np.maximum(high, edge_high), high)
    valid = np.isfinite(low)
    first = np.where(valid, _round_up(np.where(valid, low, 0)), 1)[:, :, None]
    last = np.where(valid, _round_down(np.where(valid, high, 0)), 0)[:, :, None]
    cols = grid.cols[None, None, :]
    return (cols >= first) & (cols <= last)
