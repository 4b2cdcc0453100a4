"""Sensitivity plots: mean ARI against the noise std and against the number of perturbations."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.ticker import FormatStrFormatter, NullFormatter

from lns.report.tables import SweepPoint
from lns.viz.figures import new_figure, save_figure

_AXIS_LABELS = {"std": "noise std σ", "perturb_num": "perturbations T"}
_FIXED_LABELS = {"std": "T", "perturb_num": "σ"}


def save_sweep_plot(lines: dict[tuple[str, str, float], list[SweepPoint]], param: str, path: Path) -> Path:
    """One subplot per dataset, one line per variant (and fixed other parameter), std error bars over runs."""
    datasets = list(dict.fromkeys(key[0] for key in lines))
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig = new_figure((4.6 * ncols, 3.6 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    lowest = min(p.mean - p.std for points in lines.values() for p in points)
    for ax, dataset in zip(axes, datasets, strict=False):
        for (name, variant, fixed), points in lines.items():
            if name != dataset:
                continue
            ax.errorbar(
                [p.x for p in points],
                [p.mean for p in points],
                yerr=[p.std for p in points],
                marker="o",
                ms=4,
                capsize=3,
                label=f"{variant} ({_FIXED_LABELS[param]}={fixed:g})",
            )
        ax.set_xscale("log")
        if param == "perturb_num":  # label the tested counts themselves, not powers of ten
            ax.set_xticks(sorted({p.x for key, points in lines.items() if key[0] == dataset for p in points}))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(dataset)
        ax.set_xlabel(_AXIS_LABELS[param])
        ax.set_ylabel("mean ARI")
        ax.set_ylim(min(0.0, lowest) - 0.05, 1.05)  # one ARI scale for every dataset
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(datasets) :]:
        ax.set_visible(False)
    fig.suptitle(f"ARI vs {_AXIS_LABELS[param]} (mean ± std over runs)")
    fig.tight_layout()
    return save_figure(fig, path)
