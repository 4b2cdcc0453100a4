"""Check the paper's testable claims (spec/paper_results.md) on the collected runs, where the data allow."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lns.report.collect import Run
from lns.report.comparisons import baselines_markdown, trained_vs_random_markdown
from lns.report.tables import (
    FG,
    Cell,
    SweepPoint,
    Table,
    aggregate,
    fg_share_note,
    format_cell,
    format_fg,
    markdown_table,
)
from lns.report.training import training_markdown

NEAR_BEST = 0.9  # "reaches the best" means at least this fraction of the best mean ARI
SMALL_STD = 1e-3
"""Claim 4's "very small noise": the paper has some variants succeed with σ below this."""
HANDFUL = 10
"""Claim 5's "a handful of perturbations": at most this many (a quarter of the default noise.perturb_num, 40)."""
NOT_CHECKABLE = "Not checkable:"  # how a section says that the runs do not allow its check

Lines = dict[tuple[str, str, float], list[SweepPoint]]


@dataclass(frozen=True)
class ClaimRuns:
    """What the claims are checked on: the table's cells, the noise sweeps (ARI against σ and against T) and the
    table's runs (claim 6 averages each trained model's runs before it compares seeds; claim 7 reads them)."""

    table: Table
    std_lines: Lines
    num_lines: Lines
    runs: Sequence[Run] = ()


def claims_markdown(
    table: Table,
    std_lines: Lines,
    num_lines: Lines,
    left_out: int = 0,
    every_run: ClaimRuns | None = None,
    runs: Sequence[Run] = (),
) -> str:
    """claims.md: one section per claim, with numbers, or why the data do not allow the check.

    ``runs``: the runs of ``table``. ``left_out``: runs already removed from ``table`` and the sweeps because their
    model learned nothing; ``every_run``: the same inputs with those runs kept, so that a claim the left-out runs
    would have allowed says that they were left out, and why, instead of that no such runs exist. Claim 7 (how the
    models were trained) reads every run, the left-out ones included.
    """
    learned = ClaimRuns(table, std_lines, num_lines, runs)

    def checked(section: Callable[[ClaimRuns], str]) -> str:
        return _explain_left_out(section, learned, every_run)

    sections = [
        "# Paper claims checked on these runs",
        *([_left_out(left_out)] if left_out else []),
        "Claims 1, 2, 3, 6, 7 and 8 use the table's runs (table.md); claims 4 and 5 use every run of a noise sweep. "
        f"'Near the best' means at least {NEAR_BEST:.0%} of the best mean ARI.",
        checked(lambda runs: _both_segment(runs.table)),
        checked(lambda runs: _latent_vs_output(runs.table)),
        checked(lambda runs: baselines_markdown(runs.table)),
        checked(lambda runs: _plateau(runs.std_lines)),
        checked(lambda runs: _sample_efficiency(runs.num_lines)),
        checked(lambda runs: _vae_vs_ae(runs.table, runs.runs)),
        training_markdown(every_run.runs if every_run is not None else runs),
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


def _with_fg_note(text: str, table: Table, datasets: Sequence[str]) -> str:
    """A section's text with the ARI-FG footnote of those ``datasets`` it shows whose ARI-FG is a share."""
    note = fg_share_note(table, dict.fromkeys(datasets))
    return f"{text}\n\n{note}" if note else text


def _both_segment(table: Table) -> str:
    title = "## 1. Both models segment the GG stimuli"
    rows = []
    for dataset in table.datasets:
        cells = [(table.get(dataset, model), table.get_fg(dataset, model)) for model in ("AE", "VAE")]
        if any(cell is not None for cell, _ in cells):
            texts = [text for cell, fg in cells for text in (format_cell(cell), format_fg(table, dataset, fg))]
            rows.append([dataset, *texts])
    if not rows:
        return f"{title}\n{NOT_CHECKABLE} no dataset has AE or VAE latent-noise runs."
    summary = (
        "The paper gives no threshold for 'segments': read these against the output-noise control (claim 2), the "
        "other methods (claim 3) or a --reference column of table.md."
    )
    header = ["dataset", "AE ARI", f"AE {FG}", "VAE ARI", f"VAE {FG}"]
    return _with_fg_note(f"{title}\n{summary}\n\n{markdown_table(header, rows)}", table, [r[0] for r in rows])


def _latent_vs_output(table: Table) -> str:
    title = "## 2. Latent noise beats the output-noise control"
    rows, wins = [], 0
    for dataset in table.datasets:
        for model in ("AE", "VAE"):
            control_column = f"{model} (output noise)"
            latent, control = table.get(dataset, model), table.get(dataset, control_column)
            if latent is not None and control is not None:
                diff = latent.mean - control.mean
                wins += diff > 0
                pair = [format_cell(latent), format_cell(control)]
                fg = [format_fg(table, dataset, table.get_fg(dataset, column)) for column in (model, control_column)]
                rows.append([dataset, model, *pair, f"{diff:+.3f}", _yes(diff > 0), *fg])
    if not rows:
        return f"{title}\n{NOT_CHECKABLE} no dataset has both latent-noise and output-noise runs of one model."
    header = ["dataset", "model", "latent noise", "output noise", "difference", "latent better"]
    header += [f"latent {FG}", f"output {FG}"]
    summary = f"Latent noise has the higher mean ARI in {wins} of {len(rows)} dataset/model pairs."
    return _with_fg_note(f"{title}\n{summary}\n\n{markdown_table(header, rows)}", table, [r[0] for r in rows])


def _near_best(points: Sequence[SweepPoint]) -> SweepPoint | None:
    """The first point (smallest x) whose mean ARI is at least :data:`NEAR_BEST` of the line's best; None when
    the best is not above 0."""
    best = max(p.mean for p in points)
    return next((p for p in points if p.mean >= NEAR_BEST * best), None) if best > 0 else None


def _plateau(lines: Lines) -> str:
    title = "## 4. Small noise suffices (plateau at small σ)"
    if not lines:
        return f"{title}\n{NOT_CHECKABLE} no dataset/variant was run at two or more noise std values."
    rows, held, small = [], 0, 0
    for (dataset, variant, perturb_num), points in lines.items():
        best = max(points, key=lambda p: p.mean)
        first, enough = points[0], _near_best(points)
        near = enough is not None and enough.x == first.x
        held += near
        small += enough is not None and enough.x < SMALL_STD
        tested = [f"{first.x:g}", f"{first.mean:.3f}", f"{best.x:g}", f"{best.mean:.3f}", _yes(near)]
        rows.append([dataset, variant, f"{perturb_num:g}", *tested, "–" if enough is None else f"{enough.x:g}"])
    header = ["dataset", "variant", "T", "smallest σ", "ARI there", "best σ", "best ARI", "near best"]
    header.append("smallest σ near best")
    summary = (
        f"The smallest σ tested is near the best in {held} of {len(rows)} sweeps; a σ below {SMALL_STD:g} is near "
        f"the best in {small} of {len(rows)} (the paper: some variants succeed with σ < {SMALL_STD:g})."
    )
    return f"{title}\n{summary}\n\n{markdown_table(header, rows)}"


def _sample_efficiency(lines: Lines) -> str:
    title = "## 5. A handful of perturbations suffices"
    if not lines:
        return f"{title}\n{NOT_CHECKABLE} no dataset/variant was run at two or more perturbation counts."
    rows, reached = [], Counter[float | None]()
    for (dataset, variant, std), points in lines.items():
        enough = _near_best(points)
        reached[None if enough is None else enough.x] += 1
        tested = ", ".join(f"{p.x:g}" for p in points)
        best = max(p.mean for p in points)
        rows.append([dataset, variant, f"{std:g}", tested, f"{best:.3f}", "–" if enough is None else f"{enough.x:g}"])
    found = sorted((t, count) for t, count in reached.items() if t is not None)
    handful = sum(count for t, count in found if t <= HANDFUL)
    spread = [f"T={t:g} in {count}" for t, count in found]
    spread += [f"never in {reached[None]} (best ARI not above 0)"] if reached[None] else []
    summary = (
        f"ARI reaches {NEAR_BEST:.0%} of its best with at most {HANDFUL} perturbations in {handful} of {len(rows)} "
        f"sweeps (the smallest T near the best: {', '.join(spread)})."
    )
    header = ["dataset", "variant", "σ", "T tested", "best ARI", "smallest T near best"]
    return f"{title}\n{summary}\n\n{markdown_table(header, rows)}"


def over_models(runs: Sequence[Run], value: Callable[[Run], float | None]) -> dict[tuple[str, str], Cell]:
    """Per (dataset, AE or VAE latent-noise column): the mean and std over trained models (:attr:`Run.model_key`:
    one per training seed) of each model's mean ``value`` over its runs; n is the number of models."""
    per_model: dict[tuple[str, str], dict[tuple[object, ...], list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        found = value(run)
        if run.variant in ("AE", "VAE") and found is not None:
            per_model[run.dataset, run.variant][run.model_key].append(found)
    return {key: aggregate([sum(v) / len(v) for v in models.values()]) for key, models in per_model.items()}


def _vae_vs_ae(table: Table, runs: Sequence[Run]) -> str:
    title = "## 6. The VAE does not segment better than the AE but is more stable"
    ari, fg = over_models(runs, lambda run: run.ari_mean), over_models(runs, lambda run: run.ari_fg_mean)
    rows, higher, steadier = [], 0, Counter[str]()
    for dataset in table.datasets:
        ae, vae = ari.get((dataset, "AE")), ari.get((dataset, "VAE"))
        if ae is None or vae is None:
            continue
        diff = vae.mean - ae.mean
        higher += diff > 0
        stable = "–"
        if ae.n > 1 and vae.n > 1:
            stable = "VAE" if vae.std < ae.std else "AE" if ae.std < vae.std else "tie"
            steadier[stable] += 1
        fgs = [format_fg(table, dataset, fg.get((dataset, model))) for model in ("AE", "VAE")]
        rows.append([dataset, format_cell(ae), format_cell(vae), f"{diff:+.3f}", stable, *fgs])
    if not rows:
        return f"{title}\n{NOT_CHECKABLE} no dataset has both AE and VAE latent-noise runs."
    summary = f"The VAE's mean ARI is higher in {higher} of {len(rows)} datasets (the paper: not higher). "
    compared = sum(steadier.values())
    if compared:
        vae_steadier, ae_steadier = steadier["VAE"], steadier["AE"]
        verdict = "the VAE" if vae_steadier > ae_steadier else "the AE" if ae_steadier > vae_steadier else "neither"
        summary += (
            f"Over training seeds, the VAE's ARI varies less in {vae_steadier} and the AE's in {ae_steadier} "
            f"of {compared} datasets with two or more models of each ({steadier['tie']} ties): {verdict} is more "
            "stable here (the paper: the VAE)."
        )
    else:
        summary += "Stability is not checkable: no dataset has two or more trained models (seeds) of both."
    header = ["dataset", "AE ARI", "VAE ARI", "VAE − AE", "more stable", f"AE {FG}", f"VAE {FG}"]
    note = (
        "Each cell is the mean ± population std over trained models (n, one per training seed) of each model's "
        "mean over its runs, so several noise settings of one model count once."
    )
    text = f"{title}\n{summary}\n\n{markdown_table(header, rows)}\n\n{note}"
    return _with_fg_note(text, table, [r[0] for r in rows])


def _left_out(count: int) -> str:
    return (
        f"{count} run{'s' if count != 1 else ''} left out of every comparison below: the model learned nothing "
        "or the arithmetic did not resolve the noise (marked 'no signal', 'not learning' or 'not resolved' in "
        "table.md), so its ARI says nothing about the method."
    )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
