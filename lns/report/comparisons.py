"""Claims that compare methods: LNS against the best other method (the paper's +24.9%), trained vs random weights."""

from __future__ import annotations

from dataclasses import dataclass

from lns.report.tables import Table, format_cell, markdown_table

PAPER_IMPROVEMENT = 0.249
"""The paper's average relative ARI advantage of LNS over the other unsupervised models it tested (claim 3)."""

RANDOM_TAG = "random weights"

MIN_BASELINE_ARI = 0.05
"""Below this ARI the best other method is at chance level, and a ratio to it (LNS 0.7 against 0.01: +6,900%)
says nothing; such datasets get the absolute difference only and stay out of the average relative difference."""


@dataclass(frozen=True)
class Comparison:
    """On one dataset: the best LNS column and the best baseline column, with their mean ARIs."""

    dataset: str
    lns_column: str
    lns: float
    baseline_column: str
    baseline: float
    min_baseline: float = MIN_BASELINE_ARI

    @property
    def difference(self) -> float:
        """LNS - baseline, in ARI."""
        return self.lns - self.baseline

    @property
    def relative(self) -> float | None:
        """(LNS - baseline) / baseline; None when the baseline's ARI is below ``min_baseline`` (no meaningful ratio)."""
        return self.difference / self.baseline if self.baseline >= self.min_baseline else None


def _best(table: Table, dataset: str, role: str) -> tuple[str, float] | None:
    cells = [(c, table.get(dataset, c)) for c in table.columns if table.roles.get(c) == role]
    present = [(column, cell.mean) for column, cell in cells if cell is not None]
    return max(present, key=lambda pair: pair[1]) if present else None


def lns_vs_baselines(table: Table, min_baseline: float = MIN_BASELINE_ARI) -> list[Comparison]:
    """Per dataset with both: the best latent-noise column (AE or VAE) against the best baseline column."""
    comparisons = []
    for dataset in table.datasets:
        lns, baseline = _best(table, dataset, "lns"), _best(table, dataset, "baseline")
        if lns is not None and baseline is not None:
            comparisons.append(Comparison(dataset, *lns, *baseline, min_baseline))
    return comparisons


def mean_relative(comparisons: list[Comparison]) -> float | None:
    """The mean of the defined per-dataset relative differences (None when there is none)."""
    values = [c.relative for c in comparisons if c.relative is not None]
    return sum(values) / len(values) if values else None


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}%"


def _relative_cell(comparison: Comparison) -> str:
    if comparison.relative is None:
        return f"n/a (best other below ARI {comparison.min_baseline:g})"
    return _percent(comparison.relative)


def baselines_markdown(table: Table) -> str:
    """Claim 3's section: LNS against the best non-LNS method per dataset and on average, beside the paper's figure."""
    title = "## 3. LNS beats other unsupervised models by 24.9% on average"
    comparisons = lns_vs_baselines(table)
    if not comparisons:
        return (
            f"{title}\nNot checkable: no dataset has both latent-noise runs and runs of another method "
            "(python run_segment.py -m sweep=baselines run_dir=...)."
        )
    rows = [
        [
            c.dataset,
            c.lns_column,
            f"{c.lns:.3f}",
            c.baseline_column,
            f"{c.baseline:.3f}",
            f"{c.difference:+.3f}",
            _relative_cell(c),
        ]
        for c in comparisons
    ]
    average = mean_relative(comparisons)
    left_out = [c.dataset for c in comparisons if c.relative is None]
    left_out_text = f"; left out: {', '.join(left_out)}" if left_out else ""
    lns_mean = sum(c.lns for c in comparisons) / len(comparisons)
    base_mean = sum(c.baseline for c in comparisons) / len(comparisons)
    pooled = (lns_mean - base_mean) / base_mean if base_mean > 0 else None
    summary = (
        f"Relative ARI difference (LNS − best other) / best other: {_percent(average)} on average over the "
        f"{len(comparisons) - len(left_out)} datasets where the best other method reaches ARI "
        f"{comparisons[0].min_baseline:g} (a ratio to a chance-level ARI says nothing{left_out_text}); "
        f"{_percent(pooled)} between the mean ARIs of all {len(comparisons)}, {lns_mean:.3f} vs {base_mean:.3f}; "
        f"the paper: {_percent(PAPER_IMPROVEMENT)} against the models it tested. LNS is the better of the AE and VAE "
        "latent-noise columns; the others are every method that is neither LNS, its Jacobian limit nor a control."
    )
    header = ["dataset", "LNS column", "LNS ARI", "best other", "its ARI", "difference", "relative difference"]
    return f"{title}\n{summary}\n\n{markdown_table(header, rows)}"


def trained_counterpart(column: str) -> str | None:
    """The trained-weights column of a random-weights column ("AE (jacobian, random weights)" -> "AE (jacobian)")."""
    if f"{RANDOM_TAG})" not in column:
        return None
    return column.replace(f", {RANDOM_TAG})", ")").replace(f" ({RANDOM_TAG})", "")


def trained_vs_random_markdown(table: Table) -> str:
    """Section 8: every random-weights column beside its trained counterpart, per dataset."""
    title = "## 8. Does segmentation need a trained network? (weights=random control)"
    rows = []
    for column in table.columns:
        trained = trained_counterpart(column)
        if trained is None:
            continue
        for dataset in table.datasets:
            fresh, taught = table.get(dataset, column), table.get(dataset, trained)
            if fresh is not None and taught is not None:
                diff = taught.mean - fresh.mean
                rows.append([dataset, trained, format_cell(taught), format_cell(fresh), f"{diff:+.3f}"])
    if not rows:
        return (
            f"{title}\nNot checkable: no method was run with both trained and random weights "
            "(add weights=random to a segmentation of the same runs)."
        )
    wins = sum(float(row[-1]) > 0 for row in rows)
    summary = f"Trained weights give the higher mean ARI in {wins} of {len(rows)} dataset/method pairs."
    header = ["dataset", "method", "trained", "random weights", "trained − random"]
    return f"{title}\n{summary}\n\n{markdown_table(header, rows)}"
