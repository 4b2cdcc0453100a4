"""Aggregate runs into the Table-1 layout (datasets x variants) and sensitivity sweeps."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lns.data.catalog import GG_DATASETS
from lns.errors import LNSError
from lns.report.collect import Reference, Run

VARIANTS = ("AE", "VAE", "AE (output noise)", "VAE (output noise)", "AE (jacobian)", "VAE (jacobian)")
"""The paper's columns first; any other method's column follows (network methods, then network-free ones)."""
STD_CONVENTION = "population std (ddof=0) over runs"
FG = "ARI-FG"
"""The suffix of an ARI-FG column: "AE ARI-FG" beside "AE"."""
FG_SHARE_MARK = "†"
"""Marks an ARI-FG value of a dataset whose test masks have a single foreground label (:func:`fg_share_note`)."""


@dataclass(frozen=True)
class Cell:
    """Mean and spread of per-run mean ARIs (n = number of runs; None for reference values)."""

    mean: float
    std: float | None
    n: int | None
    flagged: int = 0  # runs whose model learned nothing (Run.issue set)
    issue: str | None = None  # their issue(s), e.g. "no signal"
    unchecked: int = 0  # other runs whose training ended before its health checks began (Run.unchecked)


@dataclass(frozen=True)
class Table:
    datasets: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    roles: dict[str, str] = field(default_factory=dict)  # column -> Run.role ("lns", "baseline", ...)
    fg_cells: dict[tuple[str, str], Cell] = field(default_factory=dict)  # the same runs' mean ARI-FG
    foreground: dict[str, int | None] = field(default_factory=dict)  # dataset -> most foreground labels in a mask

    def get(self, dataset: str, column: str) -> Cell | None:
        return self.cells.get((dataset, column))

    def get_fg(self, dataset: str, column: str) -> Cell | None:
        """The ARI-FG of a cell's runs (those that had foreground pixels); None where there is none."""
        return self.fg_cells.get((dataset, column))

    def fg_is_share(self, dataset: str) -> bool:
        """Whether the dataset's test masks have a single foreground label, so that its ARI-FG is the share of
        images whose foreground is not split (:mod:`lns.report.foreground`)."""
        return self.foreground.get(dataset) == 1


@dataclass(frozen=True)
class SweepPoint:
    x: float
    mean: float
    std: float
    n: int


def aggregate(values: Sequence[float]) -> Cell:
    """Mean and population std (ddof=0) of per-run values."""
    array = np.asarray(values, dtype=np.float64)
    return Cell(float(array.mean()), float(array.std()), len(array))


def select_runs(runs: Iterable[Run], *, std: float | None, perturb_num: int | None) -> list[Run]:
    """Noise runs matching the given std / perturb_num (None = any); runs of other features are always kept.

    Runs with the noise (or the Jacobian) inside the network are left to the depth plot (``Run.depth_only``).
    """
    return [
        run
        for run in runs
        if not run.depth_only
        and (
            run.features != "noise"
            or (
                (std is None or math.isclose(run.std, std, rel_tol=1e-9))
                and (perturb_num is None or run.perturb_num == perturb_num)
            )
        )
    ]


def check_filters(runs: Sequence[Run], *, std: float | None, perturb_num: int | None) -> None:
    """Refuse a ``--std`` or ``--perturb-num`` (or both together) that matches none of the noise runs
    :func:`select_runs` chooses from, naming the values those runs have."""
    noise = [run for run in runs if run.features == "noise" and not run.depth_only]
    filters = (
        ("--std", "std", std, select_runs(noise, std=std, perturb_num=None)),
        ("--perturb-num", "perturb_num", perturb_num, select_runs(noise, std=None, perturb_num=perturb_num)),
    )
    for flag, key, value, matched in filters:
        if value is None or matched:
            continue
        if not noise:
            raise LNSError(
                f"{flag} {value:g} matches none of the {len(runs)} runs: none of them has latent or output noise "
                f"(method=noise, noise.site=latent or output). Drop {flag}."
            )
        found = ", ".join(f"{found:g}" for found in sorted({getattr(run, key) for run in noise}))
        raise LNSError(
            f"{flag} {value:g} matches none of the {len(noise)} noise runs; their noise.{key} values are {found}. "
            f"Pass one of those, or drop {flag} to pool them."
        )
    if std is not None and perturb_num is not None and not select_runs(noise, std=std, perturb_num=perturb_num):
        pairs = ", ".join(f"({s:g}, {t})" for s, t in sorted({(run.std, run.perturb_num) for run in noise}))
        raise LNSError(
            f"--std {std:g} --perturb-num {perturb_num} together match none of the {len(noise)} noise runs; their "
            f"(noise.std, noise.perturb_num) pairs are {pairs}. Pass one of those pairs, or one of the two flags."
        )


def dataset_order(names: Iterable[str]) -> list[str]:
    """The six GG datasets in catalog order, then any others alphabetically."""
    present = set(names)
    return [n for n in GG_DATASETS if n in present] + sorted(present - set(GG_DATASETS))


def build_table(
    runs: Sequence[Run], references: Sequence[Reference] = (), foreground: Mapping[str, int | None] | None = None
) -> Table:
    """Datasets x variants (only variants with data); each reference column follows its matching variant.

    ``foreground``: per dataset, the most foreground labels in one test mask (:mod:`lns.report.foreground`)."""
    grouped: dict[tuple[str, str], list[float]] = defaultdict(list)
    fg: dict[tuple[str, str], list[float]] = defaultdict(list)
    issues: dict[tuple[str, str], list[str]] = defaultdict(list)
    unchecked: dict[tuple[str, str], int] = defaultdict(int)
    roles = {}
    for run in runs:
        grouped[run.dataset, run.variant].append(run.ari_mean)
        if run.ari_fg_mean is not None:
            fg[run.dataset, run.variant].append(run.ari_fg_mean)
        roles[run.variant] = run.role
        if run.issue:
            issues[run.dataset, run.variant].append(run.issue)
        elif run.unchecked:
            unchecked[run.dataset, run.variant] += 1
    cells = {
        key: replace(flag_cell(aggregate(values), issues[key]), unchecked=unchecked[key])
        for key, values in grouped.items()
    }
    datasets = dataset_order(run.dataset for run in runs)
    uses_model = {run.variant: run.uses_model for run in runs}
    variants = sorted(uses_model, key=lambda v: (_variant_rank(v), not uses_model[v], v))
    columns = []
    for variant in variants:
        columns.append(variant)
        for ref in references:
            name = f"{variant} ({ref.source})"
            if ref.model.lower() == variant.lower() and ref.dataset in datasets:
                cells[ref.dataset, name] = Cell(ref.ari_mean, ref.ari_std, None)
                if name not in columns:
                    columns.append(name)
    fg_cells = {key: aggregate(values) for key, values in fg.items()}
    return Table(datasets, columns, cells, roles, fg_cells, dict(foreground or {}))


def unused_references(table: Table, references: Sequence[Reference]) -> list[Reference]:
    """Reference rows that matched no (dataset, variant) of ours."""
    return [r for r in references if table.get(r.dataset, f"{_variant_name(r.model)} ({r.source})") is None]


def pooled_settings(runs: Sequence[Run]) -> list[str]:
    """One line per table cell that pools several noise settings, plus the overall settings."""
    settings: dict[tuple[str, str], set[tuple[float, int]]] = defaultdict(set)
    for run in runs:
        if run.features == "noise":
            settings[run.dataset, run.variant].add((run.std, run.perturb_num))
    if not settings:
        return []
    stds = sorted({s for group in settings.values() for s, _ in group})
    nums = sorted({t for group in settings.values() for _, t in group})
    lines = [f"noise settings in the table: std {_fmt_list(stds)}, perturb_num {_fmt_list(nums)}"]
    for (dataset, variant), group in sorted(settings.items()):
        if len(group) > 1:
            pairs = ", ".join(f"std={s:g}/T={t}" for s, t in sorted(group))
            lines.append(f"{dataset} / {variant} pools {len(group)} settings: {pairs}")
    return lines


def sweeps(runs: Sequence[Run], param: str) -> dict[tuple[str, str, float], list[SweepPoint]]:
    """Mean ARI against `param` ("std" or "perturb_num") for noise runs, holding the other parameter fixed.

    Keys are (dataset, variant, fixed value of the other parameter); only lines with two or more x values.
    """
    other = "perturb_num" if param == "std" else "std"
    grouped: dict[tuple[str, str, float], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.features == "noise":
            grouped[run.dataset, run.variant, getattr(run, other)][getattr(run, param)].append(run.ari_mean)
    lines = {}
    for key, by_x in grouped.items():
        if len(by_x) > 1:
            lines[key] = [SweepPoint(x, *_mean_std_n(values)) for x, values in sorted(by_x.items())]
    order = {name: i for i, name in enumerate(dataset_order(k[0] for k in lines))}
    return dict(sorted(lines.items(), key=lambda kv: (order[kv[0][0]], _variant_rank(kv[0][1]), kv[0][2])))


def shown_columns(table: Table) -> list[tuple[str, bool]]:
    """The columns of table.md and table.csv as (column, is ARI-FG): each column of runs with ARI-FG values is
    followed by its reference columns, then by its ARI-FG column."""
    shown: list[tuple[str, bool]] = []
    with_fg = {column for _, column in table.fg_cells}
    pending = None
    for column in table.columns:
        if column in table.roles:
            shown += [(pending, True)] if pending else []
            pending = column if column in with_fg else None
        shown.append((column, False))
    return shown + ([(pending, True)] if pending else [])


def format_fg(table: Table, dataset: str, cell: Cell | None) -> str:
    """An ARI-FG cell of ``dataset``, like :func:`format_cell`, marked :data:`FG_SHARE_MARK` where it is a share of
    images (:meth:`Table.fg_is_share`)."""
    text = format_cell(cell)
    return f"{text} {FG_SHARE_MARK}" if cell is not None and table.fg_is_share(dataset) else text


def fg_share_note(table: Table, datasets: Iterable[str] | None = None) -> str | None:
    """The footnote of :data:`FG_SHARE_MARK` for those of ``datasets`` (default: the table's) whose masks have a
    single foreground label and that have ARI-FG values; None where there is none."""
    shares = [d for d in (table.datasets if datasets is None else datasets) if table.fg_is_share(d)]
    shares = [d for d in shares if any(key[0] == d for key in table.fg_cells)]
    if not shares:
        return None
    return (
        f"{FG_SHARE_MARK} {', '.join(shares)}: every test mask has a single foreground label, so an image's ARI-FG "
        "is 1 when its foreground is left in one cluster and 0 when it is split. The mean is the share of images "
        "whose foreground was not split, not a graded score."
    )


def to_markdown(table: Table) -> str:
    """The table, each ARI-FG column beside its ARI column, with the footnote of :func:`fg_share_note`."""
    shown = shown_columns(table)

    def text(dataset: str, column: str, is_fg: bool) -> str:
        if is_fg:
            return format_fg(table, dataset, table.get_fg(dataset, column))
        return format_cell(table.get(dataset, column))

    header = ["dataset", *(f"{column} {FG}" if is_fg else column for column, is_fg in shown)]
    rows = [[d, *(text(d, column, is_fg) for column, is_fg in shown)] for d in table.datasets]
    note = fg_share_note(table)
    return markdown_table(header, rows) + (f"\n\n{note}" if note else "")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def flag_cell(cell: Cell, issues: Sequence[str]) -> Cell:
    """``cell`` marked with the issues of its runs whose model learned nothing."""
    return replace(cell, flagged=len(issues), issue=", ".join(sorted(set(issues))) or None)


def cell_marks(cell: Cell) -> list[str]:
    """What a cell's runs say about their models: ``no signal`` / ``not learning`` (all runs) or ``1 no signal``
    (some), and ``health not checked`` (all runs) or ``2 health not checked`` (some)."""
    marks = []
    if cell.flagged:
        marks.append(cell.issue if cell.flagged == cell.n else f"{cell.flagged} {cell.issue}")
    if cell.unchecked:
        marks.append("health not checked" if cell.unchecked == cell.n else f"{cell.unchecked} health not checked")
    return marks


def format_cell(cell: Cell | None) -> str:
    """Text like '0.600 ± 0.082 (n=3)'; reference cells have no n; missing cells are a dash.

    Cells of models that learned nothing say so: '0.000 (no signal, n=1)' when every run is affected,
    '0.400 ± 0.100 (n=3, 1 no signal)' when some are; runs too short for the training health checks add
    'health not checked'.
    """
    if cell is None:
        return "–"
    if cell.flagged and cell.flagged == cell.n:
        return f"{cell.mean:.3f} ({cell.issue}, n={cell.n})"
    text = f"{cell.mean:.3f}"
    if cell.std is not None:
        text += f" ± {cell.std:.3f}"
    if cell.n is None:
        return text
    return f"{text} ({', '.join([f'n={cell.n}', *cell_marks(cell)])})"


def write_csv(table: Table, path: Path) -> Path:
    """One row per dataset: ``foreground labels`` (the most in one test mask; empty when unknown) and ``ARI-FG is``
    (``share of images unsplit`` for a single foreground label, else ``score``), then for every column
    `<column> mean`, `<column> std`, `<column> n` and `<column> marks` (:func:`cell_marks`, separated by '; '), and
    beside a column with ARI-FG values `<column> ARI-FG mean`, `... std` and `... n`."""
    parts = {False: ("mean", "std", "n", "marks"), True: (f"{FG} mean", f"{FG} std", f"{FG} n")}
    shown = shown_columns(table)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["dataset", "foreground labels", f"{FG} is"]
        writer.writerow(header + [f"{c} {part}" for c, is_fg in shown for part in parts[is_fg]])
        for dataset in table.datasets:
            labels = table.foreground.get(dataset)
            kind = "" if labels is None else "share of images unsplit" if labels == 1 else "score"
            row: list[object] = [dataset, _blank(labels), kind]
            for column, is_fg in shown:
                cell = table.get_fg(dataset, column) if is_fg else table.get(dataset, column)
                if cell is None:
                    row += [""] * len(parts[is_fg])
                else:
                    row += [cell.mean, _blank(cell.std), _blank(cell.n)]
                    row += [] if is_fg else ["; ".join(cell_marks(cell))]
            writer.writerow(row)
    return path


def _mean_std_n(values: list[float]) -> tuple[float, float, int]:
    cell = aggregate(values)
    return cell.mean, cell.std, cell.n


def _variant_name(model: str) -> str:
    return next((v for v in VARIANTS if v.lower() == model.lower()), model)


def _variant_rank(variant: str) -> int:
    return VARIANTS.index(variant) if variant in VARIANTS else len(VARIANTS)


def _fmt_list(values: Sequence[float]) -> str:
    return "{" + ", ".join(f"{v:g}" for v in values) + "}"


def _blank(value: object) -> object:
    return "" if value is None else value
