"""ARI against the depth of the noise site (encoder input -> latent -> output), from a ``sweep=noise_site`` run:
the points of each line (:func:`depth_lines`), drawn by :func:`lns.report.figures.save_depth_plot`."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from lns.report.collect import Run
from lns.report.summary import line_label
from lns.report.tables import aggregate, dataset_order

LATENT, OUTPUT = "latent", "output"
_PARTS = {"encoder": 0, LATENT: 1, "decoder": 2, OUTPUT: 3}


@dataclass(frozen=True)
class DepthPoint:
    """Mean and population std of the runs' mean ARIs with the noise at ``site`` (n = runs)."""

    site: str
    mean: float
    std: float
    n: int


def site_depth(site: str) -> tuple[int, float]:
    """Sort key from the input side: encoder layers, the latent, decoder layers, the output.

    ``encoder.3`` -> (0, 3); ``latent`` -> (1, 0); ``decoder`` (its last layer) -> (2, inf); ``output`` -> (3, 0).
    Names of other shapes (not made by this code base) go last, in name order by the caller's stable sort.
    """
    part, _, number = site.partition(".")
    if part not in _PARTS:
        return len(_PARTS), 0.0
    if part in (LATENT, OUTPUT):
        return _PARTS[part], 0.0
    return _PARTS[part], float(number) if number.isdigit() else math.inf


def depth_lines(runs: Sequence[Run]) -> dict[tuple[str, str], list[DepthPoint]]:
    """Mean ARI per noise site for each (dataset, line label), sites in depth order; only lines over two or more
    sites of which at least one is a layer inside the network (the latent and the output alone show no depth)."""
    grouped: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.features in ("noise", "jacobian") and run.site is not None:
            grouped[run.dataset, line_label(run)][run.site].append(run.ari_mean)
    lines = {}
    for key, by_site in grouped.items():
        if len(by_site) > 1 and any(site not in (LATENT, OUTPUT) for site in by_site):
            sites = sorted(by_site, key=lambda site: (site_depth(site), site))
            lines[key] = [DepthPoint(site, *_summary(by_site[site])) for site in sites]
    order = {name: i for i, name in enumerate(dataset_order(key[0] for key in lines))}
    return dict(sorted(lines.items(), key=lambda item: (order[item[0][0]], item[0][1])))


def _summary(values: list[float]) -> tuple[float, float, int]:
    cell = aggregate(values)
    return cell.mean, cell.std, cell.n
