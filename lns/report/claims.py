"""Check the paper's testable claims (spec/paper_results.md) on the collected runs, where the data allow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lns.report.comparisons import baselines_markdown, trained_vs_random_markdown
from lns.report.tables import SweepPoint, Table, format_cell, markdown_table

NEAR_BEST = 0.9  # "reaches the best" means at least this fraction of the best mean ARI
NOT_CHECKABLE = "Not checkable:"  # how a section says that the runs do not allow its check

Lines = dict[tuple[str, str, float], list[SweepPoint]]


@dataclass(frozen=True)
class ClaimRuns:
    """What the claims are checked on: the table's cells and the noise sweeps (ARI against σ and against T)."""

    table: Table
    std_lines: Lines
    num_lines: Lines


def claims_markdown(
    table: Table,
    std_lines: Lines,
    num_lines: Lines,
    left_out: int = 0,
    every_run: ClaimRuns | None = None,
) -> str:
    """claims.md: one section per claim, with numbers, or why the data do not allow the check.

    ``left_out``: runs already removed from ``table`` and the sweeps because their model learned nothing;
    ``every_run``: the same inputs with those runs kept, so that a claim the left-out runs would have allowed says
    that they were left out, and why, instead of that no such runs exist.
    """
    learned = ClaimRuns(table, std_lines, num_lines)

    def checked(section: Callable[[ClaimRuns], str]) -> str:
        return _explain_left_out(section, learned, every_run)

    sections = [
        "# Paper claims checked on these runs",
        *([_left_out(left_out)] if left_out else []),
        "Claims 2, 3, 6 and 8 use the table's runs (table.md); claims 4 and 5 use every run of a noise sweep. "
        f"'Near the best' means at least {NEAR_BEST:.0%} of the best mean ARI.",
        "## 1. Both models segment the GG stimuli\nSee the AE and VAE columns of table.md; the paper gives "
        "no threshold for 'segments', so this is read from the table (or against a --reference column).",
        checked(lambda runs: _latent_vs_output(runs.table)),
        checked(lambda runs: baselines_markdown(runs.table)),
        checked(lambda runs: _plateau(runs.std_lines)),
        checked(lambda runs: _sample_efficiency(runs.num_lines)),
        checked(lambda runs: _vae_vs_ae(runs.table)),
        "## 7. Paper-length training settings\nNot checkable here: summary.json does not record the training "
        "settings; see each run's .hydra/config.yaml.",
        checked(lambda runs: trained_vs_random_markdown(runs.table)),
    ]
    return "\n\n".join(sections) + "\n"


def _explain_left_out(section: Callable[[ClaimRuns], str], learned: ClaimRuns, every_run: ClaimRuns | None) -> str:
    """``section`` on the learned models' runs; where it is not checkable there but is with every run, say so."""
    text = section(learned)
    if every_run is None or NOT_CHECKABLE not in text or NOT_CHECKABLE in section(every_run):
        return text
    title = text.split("\n", 1)[0]
    flagged = [
        f"{dataset} {column}: {cell.issue}, {cell.flagged} of {cell.n} run{'s' if cell.n != 1 else ''}"
        for (dataset, column), cell in every_run.table.cells.items()
        if cell.flagged
    ]
    which = f" ({'; '.join(flagged)})" if flagged else ""
    return (
        f"{title}\nNot checkable on the models that learned something: the runs this check needs exist, but some "
        f"were left out because their model learned nothing{which}. table.md shows them, marked."
    )


def _latent_vs_output(table: Table) -> str:
    title = "## 2. Latent noise beats the output-noise control"
    rows = []
    for dataset in table.datasets:
        for model in ("AE", "VAE"):
            latent, control = table.get(dataset, model), table.get(dataset, f"{model} (output noise)")
            if latent is not None and control is not None:
                diff = latent.mean - control.mean
                pair = [format_cell(latent), format_cell(control)]
                rows.append([dataset, model, *pair, f"{diff:+.3f}", _yes(diff > 0)])
    if not rows:
        return f"{title}\nNot checkable: no dataset has both latent-noise and output-noise runs of one model."
    wins = sum(row[-1] == "yes" for row in rows)
    header = ["dataset", "model", "latent noise", "output noise", "difference", "latent better"]
    summary = f"Latent noise has the higher mean ARI in {wins} of {len(rows)} dataset/model pairs."
    return f"{title}\n{summary}\n\n{markdown_table(header, rows)}"


def _plateau(lines: Lines) -> str:
    title = "## 4. Small noise suffices (plateau at small σ)"
    if not lines:
        return f"{title}\nNot checkable: no dataset/variant was run at two or more noise std values."
    rows = []
    for (dataset, variant, perturb_num), points in lines.items():
        best = max(points, key=lambda p: p.mean)
        small = points[0]
        near = best.mean > 0 and small.mean >= NEAR_BEST * best.mean
        smallest = [f"{small.x:g}", f"{small.mean:.3f}"]
        rows.append([dataset, variant, f"{perturb_num:g}", *smallest, f"{best.x:g}", f"{best.mean:.3f}", _yes(near)])
    held = sum(row[-1] == "yes" for row in rows)
    header = ["dataset", "variant", "T", "smallest σ", "ARI there", "best σ", "best ARI", "near best"]
    summary = f"The smallest σ tested is near the best in {held} of {len(rows)} sweeps."
    return f"{title}\n{summary}\n\n{markdown_table(header, rows)}"


def _sample_efficiency(lines: Lines) -> str:
    title = "## 5. A handful of perturbations suffices"
    if not lines:
        return f"{title}\nNot checkable: no dataset/variant was run at two or more perturbation counts."
    rows = []
    for (dataset, variant, std), points in lines.items():
        best = max(p.mean for p in points)
        enough = next((p.x for p in points if best > 0 and p.mean >= NEAR_BEST * best), None)
        tested = ", ".join(f"{p.x:g}" for p in points)
        reached = "–" if enough is None else f"{enough:g}"
        rows.append([dataset, variant, f"{std:g}", tested, f"{best:.3f}", reached])
    header = ["dataset", "variant", "σ", "T tested", "best ARI", "smallest T near best"]
    return f"{title}\n{markdown_table(header, rows)}"


def _vae_vs_ae(table: Table) -> str:
    title = "## 6. The VAE does not segment better than the AE but is more stable"
    rows, higher, steadier, compared = [], 0, 0, 0
    for dataset in table.datasets:
        ae, vae = table.get(dataset, "AE"), table.get(dataset, "VAE")
        if ae is None or vae is None:
            continue
        diff = vae.mean - ae.mean
        higher += diff > 0
        stable = "–"
        if (ae.n or 0) > 1 and (vae.n or 0) > 1:
            compared += 1
            steadier += vae.std < ae.std
            stable = _yes(vae.std < ae.std)
        rows.append([dataset, format_cell(ae), format_cell(vae), f"{diff:+.3f}", stable])
    if not rows:
        return f"{title}\nNot checkable: no dataset has both AE and VAE latent-noise runs."
    summary = f"The VAE's mean ARI is higher in {higher} of {len(rows)} datasets. "
    if compared:
        summary += f"Its std over runs is lower in {steadier} of {compared} datasets with 2+ runs of each."
    else:
        summary += "Stability is not checkable: no dataset has two or more runs of both models."
    header = ["dataset", "AE", "VAE", "VAE − AE", "VAE std lower"]
    return f"{title}\n{summary}\n\n{markdown_table(header, rows)}"


def _left_out(count: int) -> str:
    return (
        f"{count} run{'s' if count != 1 else ''} left out of every comparison below: the model learned nothing "
        "(marked 'no signal' or 'not learning' in table.md), so its ARI says nothing about the method."
    )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
