"""Collect segmentation summaries into the paper's Table 1, sensitivity plots and a claims check.

Usage: python -m lns.report DIR [DIR ...] [--reference FILE] [--out OUTDIR] [--std S] [--perturb-num T]
                             [--data-dir DATA]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lns.errors import LNSError
from lns.report.claims import ClaimRuns, claims_markdown
from lns.report.collect import Reference, Run, collect_runs, read_reference
from lns.report.depth import depth_lines
from lns.report.figures import method_figures, save_depth_plot, save_sweep_plot
from lns.report.foreground import dataset_foreground
from lns.report.tables import (
    FG,
    STD_CONVENTION,
    Table,
    build_table,
    check_filters,
    pooled_settings,
    select_runs,
    sweeps,
    to_markdown,
    unused_references,
    write_csv,
)

__all__ = ["Reference", "Report", "Run", "Table", "collect_runs", "read_reference", "write_report"]


@dataclass(frozen=True)
class Report:
    table: Table
    markdown: str  # the content of table.md
    notes: list[str]  # pooled settings, skipped plots, unmatched reference rows
    files: list[Path]


def write_report(
    dirs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    reference: str | Path | None = None,
    std: float | None = None,
    perturb_num: int | None = None,
    data_dir: str | Path | None = None,
) -> Report:
    """Write table.md, table.csv, claims.md, the sensitivity plots and the method comparison pictures
    (``methods_<dataset>.png``, with input images and ground truth from ``data_dir`` when given) into `out`.

    Without `out`, a report over one directory goes into it (a sweep's own report); one over several goes into a
    new folder, ``outputs/report/<date-time>/`` under the working directory, so that no sweep's own report is
    overwritten unless `out` names it."""
    if not dirs:
        raise LNSError("No input directories given: pass the segmentation output directories to report on.")
    runs = collect_runs(dirs)
    references = read_reference(reference) if reference is not None else []
    check_filters(runs, std=std, perturb_num=perturb_num)
    chosen = select_runs(runs, std=std, perturb_num=perturb_num)
    if not chosen:
        available = sorted({(r.std, r.perturb_num) for r in runs if r.features == "noise"})
        raise LNSError(
            f"No run matches --std {std} --perturb-num {perturb_num}. The collected runs have "
            f"(std, perturb_num) in {available}; pick one of those or drop the options to pool every run."
        )
    foreground, foreground_notes = dataset_foreground(chosen, Path(data_dir) if data_dir is not None else None)
    table = build_table(chosen, references, foreground)
    notes = [f"{len(chosen)} of {len(runs)} runs in the table", *pooled_settings(chosen), *foreground_notes]
    flagged = [run for run in chosen if run.issue]
    if flagged:
        notes.append(
            f"{len(flagged)} of these runs are marked: their features say nothing about the method ('no signal': "
            "the decoder does not respond to latent noise; 'not learning': the training run's health check failed; "
            "'not resolved': the response to the noise was mostly rounding, the arithmetic's fault, not the model's)"
        )
    unchecked = [run for run in chosen if run.unchecked and not run.issue]
    if unchecked:
        notes.append(
            f"{len(unchecked)} of these runs are marked 'health not checked': their training ended before its "
            "health checks begin (callbacks.health.start_step), so nothing says whether the model learned; the "
            "run's health.json says when it ended"
        )
    notes += [
        f"reference row {r.dataset}/{r.model} ({r.source}) matches no dataset/variant of ours"
        for r in unused_references(table, references)
    ]
    lines = {param: sweeps(runs, param) for param in ("std", "perturb_num")}
    notes += [
        f"no ari_vs_{param}.png: no dataset/variant was run at two or more {param} values"
        for param, found in lines.items()
        if not found
    ]
    out_dir = default_report_dir(dirs) if out is None else Path(out).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures, picture_notes = method_figures(
        chosen, out_dir, table.columns, Path(data_dir) if data_dir is not None else None
    )
    notes += picture_notes
    caption = (
        "Mean test ARI per dataset: each cell is the mean over runs (seeds/models) of each run's mean ARI, "
        f"± the {STD_CONVENTION}, n = runs. Each '{FG}' column beside a column is the same over the "
        "foreground pixels only (ARI-FG)."
    )
    markdown = "\n\n".join([caption, to_markdown(table), "\n".join(f"- {note}" for note in notes)]) + "\n"
    (out_dir / "table.md").write_text(markdown)
    files = [out_dir / "table.md", write_csv(table, out_dir / "table.csv")]
    files += [save_sweep_plot(found, p, out_dir / f"ari_vs_{p}.png") for p, found in lines.items() if found]
    depth = depth_lines(runs)  # noise.site sweeps: ari_vs_depth.png
    files += [save_depth_plot(depth, out_dir / "ari_vs_depth.png")] if depth else []
    files += pictures
    (out_dir / "claims.md").write_text(claims_of_learned_models(runs, chosen, references, table, foreground))
    files.append(out_dir / "claims.md")
    return Report(table, markdown, notes, files)


def default_report_dir(dirs: Sequence[str | Path]) -> Path:
    """Where a report goes without ``out``: the one input directory, else a new ``outputs/report/<date-time>``."""
    if len(dirs) == 1:
        return Path(dirs[0]).absolute()
    return Path.cwd() / "outputs" / "report" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")


def claims_of_learned_models(
    runs: Sequence[Run],
    chosen: Sequence[Run],
    references: Sequence[Reference],
    table: Table,
    foreground: Mapping[str, int | None] | None = None,
) -> str:
    """claims.md from the runs whose model learned something; it says how many runs it left out, and where a
    claim is not checkable only because of them (``table``: every chosen run), that they were left out and why.
    ``foreground``: per dataset, the most foreground labels in a test mask (:mod:`lns.report.foreground`)."""
    learned = [run for run in runs if not run.issue]
    learned_chosen = [run for run in chosen if not run.issue]
    learned_table = build_table(learned_chosen, references, foreground)
    lines = {param: sweeps(learned, param) for param in ("std", "perturb_num")}
    every_run = ClaimRuns(table, sweeps(runs, "std"), sweeps(runs, "perturb_num"), chosen)
    return claims_markdown(
        learned_table,
        lines["std"],
        lines["perturb_num"],
        left_out=len(runs) - len(learned),
        every_run=every_run,
        runs=learned_chosen,
    )
