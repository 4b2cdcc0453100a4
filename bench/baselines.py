"""Every segmentation method on the same trained runs: ARI, ARI-FG and seconds per image per dataset and method.

    python run_train.py -m sweep=table1 experiment=quickstart model=ae seed=1 segment=table paths.data_dir=data \\
        segment.test_num=100 hydra.sweep.dir=outputs/table_quickstart
    python bench/baselines.py outputs/table_quickstart

The segmentations are the sweep's own: with ``segment=table`` every training job segments its final checkpoint with
every method the report compares (latent noise, the output-noise control, the Jacobian limit, the network's
activations, latent noise and activations at random weights, and rgb, rgbxy, slic and felzenszwalb, done once per
dataset), and the sweep ends with its table.md and claims.md. This script reads the same ``summary.json`` files and
writes ``bench/results/baselines.md`` with what the sweep's table does not show: per dataset and method the ARI
± its spread over test images, the foreground ARI and the seconds per image, and the report's LNS-vs-best-other and
trained-vs-random comparisons. It takes one run per dataset and method (one seed and model); for several seeds use
the sweep's own table.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import markdown_table, write_results

from lns.report import Run, collect_runs
from lns.report.comparisons import baselines_markdown, trained_vs_random_markdown
from lns.report.tables import Table, build_table, select_runs


def one_run_each(runs: list[Run]) -> dict[tuple[str, str], Run]:
    """(dataset, table column) -> its run; exits naming the cell when a cell has several runs."""
    cells: dict[tuple[str, str], Run] = {}
    for run in runs:
        key = (run.dataset, run.variant)
        if key in cells:
            sys.exit(
                f"{run.dataset} / {run.variant} has several runs ({cells[key].path.parent}, {run.path.parent}): pass "
                "a sweep of one seed and model (its table.md pools several)."
            )
        cells[key] = run
    return cells


CELLS = {
    "ari": lambda s: f"{s['ari_mean']:.3f} ± {s['ari_std']:.3f}",
    "fg": lambda s: "–" if s.get("ari_fg_mean") is None else f"{s['ari_fg_mean']:.3f}",
    "speed": lambda s: "–" if s.get("seconds_per_image") is None else s["seconds_per_image"],
}


def rows(table: Table, summaries: dict[tuple[str, str], dict], kind: str) -> list[list[object]]:
    """One row per dataset, one ``kind`` cell per table column ("–" where a method did not run)."""
    cell = CELLS[kind]
    return [
        [d, *(cell(summaries[d, c]) if (d, c) in summaries else "–" for c in table.columns)] for d in table.datasets
    ]


def setting_lines(summaries: dict[tuple[str, str], dict]) -> str:
    """The segmentation settings of the summaries (one line when all share them)."""
    lines = {
        f"first {s['n_images']} images of {s['split']}.npz, {s['clustering']}, n_clusters {s['n_clusters']} (<= 0: "
        f"each mask's label count), noise seed {s['seed']}, {s['precision']}"
        for s in summaries.values()
    }
    return "; ".join(sorted(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", type=Path, help="training sweep directories made with segment=table")
    parser.add_argument("--output", type=Path, help="the results file (default: bench/results/baselines.md)")
    args = parser.parse_args()
    runs = select_runs(collect_runs(args.sweeps), std=None, perturb_num=None)
    summaries = {key: json.loads(run.path.read_text()) for key, run in one_run_each(runs).items()}
    table = build_table(runs)
    means = []
    for column in table.columns:
        values = [summaries[d, column]["ari_mean"] for d in table.datasets if (d, column) in summaries]
        means.append(f"{sum(values) / len(values):.3f} (n={len(values)})")
    learned = build_table([run for run in runs if not run.issue])
    headers = ["dataset", *table.columns]
    lines = [
        "ARI (mean ± population std over test images) per dataset and method; the columns are the sweep's table.md "
        "columns ('random weights': the run's architecture at a fresh seeded initialisation, weights=random).",
        "",
        *markdown_table(headers, [*rows(table, summaries, "ari"), ["mean over datasets", *means]]),
        "",
        "ARI-FG (the same over the pixels whose mask label is not background), mean over test images:",
        "",
        *markdown_table(headers, rows(table, summaries, "fg")),
        "",
        "Seconds per image (run_segment.py's segmentation loop: encoding, features, clustering; model loading, "
        "figures and process start excluded), on this shared machine:",
        "",
        *markdown_table(headers, rows(table, summaries, "speed")),
        "",
        baselines_markdown(learned).replace("## ", "### "),
        "",
        trained_vs_random_markdown(learned).replace("## ", "### "),
    ]
    checkpoints = {f"{s['dataset']}: {s['checkpoint']}" for s in summaries.values() if s["method"]["uses_model"]}
    flagged = sorted(f"{run.dataset} / {run.variant} ({run.issue})" for run in runs if run.issue)
    settings = {
        "runs": ", ".join(str(path.resolve()) for path in args.sweeps),
        "checkpoints of the network methods": "; ".join(sorted(checkpoints)),
        "segmentation": setting_lines(summaries),
        "left out of the comparisons (the model learned nothing)": "; ".join(flagged) or "none",
    }
    title = "Baselines and controls against latent noise segmentation"
    write_results("baselines", title, settings, lines, output=args.output)


if __name__ == "__main__":
    main()
