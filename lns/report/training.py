"""Claim 7: how each segmented model was trained (``summary.json``'s ``training``), against the paper's recipe."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lns.report.collect import Run
from lns.report.summary import model_label
from lns.report.tables import markdown_table

PAPER_STEPS = 1_100_000
PAPER_LR = 5e-5
PAPER_BATCH_SIZE = 64
PAPER_Z_DIM = 15
PAPER_GECO_GOAL = 0.0006
"""GECO's reconstruction goal per pixel per channel, as ``conf/objective/geco.yaml``'s ``goal`` holds it (the
objective multiplies it by channels × height × width)."""
GECO = "GecoObjective"
TITLE = "## 7. Paper-length training settings"


def objective_name(objective: dict[str, Any] | None) -> str | None:
    """The objective's class name (the last part of its ``_target_``); None when not recorded."""
    target = (objective or {}).get("_target_")
    return str(target).rsplit(".", 1)[-1] if target else None


def steps_share(steps: int) -> str:
    """``steps`` as a percentage of the paper's 1.1e6: '0.127%'."""
    return f"{100 * steps / PAPER_STEPS:.3g}%"


def recipe_gaps(run: Run) -> list[str]:
    """How ``run``'s model was trained other than the paper's recipe: fewer steps (as a share of 1.1e6), another
    lr, batch size or z_dim, and for a VAE an objective other than GECO with the goal 0.0006 (an AE's loss is the
    reconstruction alone whatever the objective). Empty when it follows the recipe; a setting not recorded is
    named as unknown."""
    training = run.training or {}
    steps, lr, batch = training.get("global_step"), training.get("lr"), training.get("batch_size")
    gaps = []
    if steps is None or steps < PAPER_STEPS:
        gaps.append("steps unknown" if steps is None else f"steps {steps_share(steps)} of 1.1e6")
    if lr is None or not math.isclose(lr, PAPER_LR):
        gaps.append("lr unknown" if lr is None else f"lr {lr:g} ({lr / PAPER_LR:.3g}× {PAPER_LR:g})")
    if batch != PAPER_BATCH_SIZE:
        gaps.append("batch unknown" if batch is None else f"batch {batch}, not {PAPER_BATCH_SIZE}")
    if run.z_dim != PAPER_Z_DIM:
        gaps.append("z_dim unknown" if run.z_dim is None else f"z_dim {run.z_dim}, not {PAPER_Z_DIM}")
    if run.model == "vae":
        objective = training.get("objective") or {}
        name, goal = objective_name(objective), objective.get("goal")
        if name != GECO:
            gaps.append(f"objective {name or 'unknown'}, not GECO")
        elif goal is None or not math.isclose(goal, PAPER_GECO_GOAL):
            gaps.append(f"GECO goal {goal}, not {PAPER_GECO_GOAL:g}")
    return gaps


def _objective_text(run: Run) -> str:
    objective = (run.training or {}).get("objective")
    name = objective_name(objective)
    if name is None:
        return "?"
    text = f"GECO goal {objective.get('goal')}" if name == GECO else name
    return f"{text} (no KL)" if run.model == "ae" else text


def _value(value: object) -> str:
    return "?" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _row(run: Run, gaps: list[str]) -> list[str]:
    training = run.training or {}
    steps, lr = training.get("global_step"), training.get("lr")
    return [
        run.dataset,
        model_label(run.model),
        _value(run.train_seed),
        _value(steps),
        "?" if steps is None else steps_share(steps),
        _value(training.get("max_steps")),
        "?" if lr is None else f"{lr:g} (×{lr / PAPER_LR:.3g})",
        _value(training.get("batch_size")),
        _value(run.z_dim),
        _objective_text(run),
        _value(run.training_precision),
        "; ".join(gaps) or "none",
    ]


def _order(run: Run) -> tuple[str, str, int, str]:
    return run.dataset, run.model, -1 if run.train_seed is None else run.train_seed, str(run.path)


HEADER = [
    "dataset",
    "model",
    "seed",
    "steps",
    "of 1.1e6",
    "max_steps",
    "lr (× 5e-5)",
    "batch",
    "z_dim",
    "objective",
    "precision",
    "differs from the paper",
]


def training_markdown(runs: Sequence[Run]) -> str:
    """Claim 7's section: one row per trained model that was segmented (its first run stands for it) with its
    recorded settings, the steps as a share of the paper's 1.1e6, the lr as a multiple of 5e-5, and what differs
    from the recipe (:func:`recipe_gaps`); models whose segmentations did not record the settings are counted."""
    models: dict[tuple[object, ...], Run] = {}
    for run in runs:
        if run.uses_model and run.weights == "trained":
            models.setdefault(run.model_key, run)
    if not models:
        return f"{TITLE}\nNot checkable: no segmentation of a trained model."
    recorded = {key: run for key, run in models.items() if run.training is not None}
    recipe = (
        f"The paper: Adam lr {PAPER_LR:g}, batch {PAPER_BATCH_SIZE}, z_dim {PAPER_Z_DIM}, {PAPER_STEPS:,} steps, "
        f"GECO goal {PAPER_GECO_GOAL:g} per pixel per channel (for the AE the loss is the reconstruction alone)."
    )
    unknown = len(models) - len(recorded)
    missing = (
        f" {unknown} of {len(models)} models did not record their training settings (an authors' checkpoint, or "
        "a segmentation by an older lns): how they were trained is not known here."
        if unknown
        else ""
    )
    if not recorded:
        return f"{TITLE}\nNot checkable:{missing} {recipe}"
    gaps = {key: recipe_gaps(run) for key, run in recorded.items()}
    full = sum(not found for found in gaps.values())
    settings = sum(all(gap.startswith("steps ") for gap in found) for found in gaps.values())
    steps = [s for run in recorded.values() if (s := (run.training or {}).get("global_step")) is not None]
    longest = f" The longest trained {max(steps):,} steps ({steps_share(max(steps))} of 1.1e6)." if steps else ""
    summary = (
        f"{full} of {len(recorded)} models that recorded their training settings follow the paper's recipe in "
        f"full, {settings} in lr, batch size, z_dim and objective (steps aside).{longest}{missing} {recipe}"
    )
    order = sorted(recorded, key=lambda key: _order(recorded[key]))
    rows = [_row(recorded[key], gaps[key]) for key in order]
    return f"{TITLE}\n{summary}\n\n{markdown_table(HEADER, rows)}"
