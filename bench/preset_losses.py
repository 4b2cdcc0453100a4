"""Does the CPU quick-start recipe train every Good Gestalt dataset? Reconstruction loss after 200 and 1,400 steps.

    python run_train.py -m sweep=table1 experiment=quickstart model=ae seed=1 paths.data_dir=data \\
        hydra.sweep.dir=outputs/final/after                    # today's recipe on the six datasets (+ segment=table)
    python run_train.py -m sweep=table1 experiment=quickstart model=ae seed=1 paths.data_dir=data \\
        '~callbacks.output_bias' trainer.max_steps=200 hydra.sweep.dir=outputs/final/before_200   # the grey start
    python bench/preset_losses.py table --root outputs/final --recipes before_200 after --steps 20 200 1400

The runs of a recipe are the training runs in ``<--root>/<RECIPE>/`` (every sub-directory holding
``run_config.yaml``, its dataset read from there): a training sweep's job directories, or runs named by dataset.
``table`` reads the reconstruction loss logged nearest to each step of ``--steps`` from each
run's CSV metrics (``logs/metrics.csv``, or ``logs/version_*/metrics.csv`` of older runs), the last logged step,
and the run's probe records (``health.json``, when it has one) replayed through the default health thresholds, and
writes
``bench/results/preset_losses.md``, with two reference points per run: the error of the best constant output (the
mean validation image; a model at or above it has learned nothing) and the segmentation-health numbers of the
run's last checkpoint (``lns.segmentation.health`` with the defaults of ``conf/segment.yaml``: 16 test images,
4 perturbations of std 1e-3).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch
from common import REPO, markdown_table, write_results
from omegaconf import OmegaConf

from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.runs.run_layout import LAST_CHECKPOINT, RUN_CONFIG
from lns.segmentation.health import measure_signal
from lns.segmentation.source import load_source
from lns.sweeps.sweep_runs import run_state
from lns.training.monitoring.health import HealthHistory, HealthThresholds, across_image_variance, read_health

DATASETS = ("kanizsa", "gradient_occlusion", "closure", "continuity", "illusory_occlusion", "proximity")
LOSS_COLUMN = "train/recon"


def loss_curve(run_dir: Path) -> dict[int, float]:
    """Step -> logged training reconstruction loss, over all of the run's CSV metrics files."""
    curve: dict[int, float] = {}
    for path in sorted(run_dir.glob("logs/*/metrics.csv")) + sorted(run_dir.glob("logs/metrics.csv")):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                value = row.get(LOSS_COLUMN, "")
                if value not in ("", None):
                    curve[int(row["step"])] = float(value)
    return curve


def loss_at(curve: dict[int, float], step: int) -> float | None:
    """The loss logged at the step nearest ``step`` (None when nothing was logged within 50 steps of it)."""
    if not curve:
        return None
    nearest = min(curve, key=lambda logged: abs(logged - step))
    return curve[nearest] if abs(nearest - step) <= 50 else None


def health_verdict(run_dir: Path) -> str:
    """The run's probe records replayed through today's default thresholds: the first step of each problem.

    Replaying (rather than reading the flags the run raised) applies one set of thresholds to every run, also to
    runs started before the defaults changed. ``-`` when the run has no health file (no probe records).
    """
    data = read_health(run_dir)
    if data is None:
        return "-"
    replay, first = HealthHistory(), {}
    for record in HealthHistory.from_dict(data).records:
        for flag in replay.add(record, HealthThresholds(), lr=1.0):
            first.setdefault(flag["kind"], flag["step"])
    span = f"probe steps {data['records'][0]['step']}-{data['records'][-1]['step']}" if data["records"] else "no probe"
    problems = ", ".join(f"{kind} at {step}" for kind, step in first.items()) or "no problem"
    return f"{problems} ({span})"


def constant_image_error(data_dir: Path, name: str) -> float:
    """The error (units of ``train/recon``) of always drawing the mean validation image."""
    images = load_split(dataset_dir(data_dir, name), "valid", name=name, data_dir=data_dir).images
    return across_image_variance(torch.from_numpy(images))


def signal_numbers(run_dir: Path, data_dir: Path, name: str) -> tuple[float, float]:
    """Segmentation health of the run's last checkpoint: (noise response, share of unchanged pixels)."""
    source = load_source(run_dir, None)
    images = load_split(dataset_dir(data_dir, name), "test", name=name, data_dir=data_dir).images[:16]
    stats = measure_signal(
        source.model.eval(), torch.from_numpy(images), std=1e-3, perturb_num=4, seed=0, zero_atol=0.0
    )
    return stats["noise_response"], stats["zero_pixel_fraction"]


def recipe_runs(recipe_dir: Path) -> dict[str, Path]:
    """Dataset -> training run, for the runs directly inside ``recipe_dir`` (folders holding ``run_config.yaml``)."""
    found: dict[str, Path] = {}
    for run in sorted(path.parent for path in recipe_dir.glob(f"*/{RUN_CONFIG}")):
        name = OmegaConf.load(run / RUN_CONFIG).data.name
        if name in found:
            sys.exit(f"{recipe_dir} holds two runs of {name} ({found[name]}, {run}): one run per dataset and recipe.")
        found[name] = run
    return found


def table(
    root: Path, data_dir: Path, recipes: list[str], steps: list[int], notes: list[str], output: Path | None
) -> None:
    """Write the loss-per-step table of every run of each recipe under ``root``."""
    runs = {recipe: recipe_runs(root / recipe) for recipe in recipes}
    rows: list[list[object]] = []
    for name in [name for name in DATASETS if any(name in found for found in runs.values())]:
        baseline = constant_image_error(data_dir, name)
        for recipe in recipes:
            run_dir = runs[recipe].get(name)
            if run_dir is None:
                continue
            curve = loss_curve(run_dir)
            done = run_state(run_dir).complete
            losses = [loss_at(curve, step) for step in steps]
            response, unchanged = (
                signal_numbers(run_dir, data_dir, name) if (run_dir / LAST_CHECKPOINT).is_file() else ("-", "-")
            )
            last = max(curve, default=None)
            rows.append(
                [
                    name,
                    recipe,
                    round(baseline, 1),
                    *("-" if value is None else round(value, 1) for value in losses),
                    "-" if last is None else f"{curve[last]:.1f} @ {last}" + ("" if done else " (unfinished)"),
                    response if response == "-" else f"{response:.2g}",
                    unchanged if unchanged == "-" else f"{unchanged:.2f}",
                    health_verdict(run_dir),
                ]
            )
    headers = [
        "dataset",
        "recipe",
        "mean-image error",
        *(f"recon loss @ {step}" for step in steps),
        "last logged",
        "noise response",
        "unchanged pixels",
        "training health (default thresholds)",
    ]
    write_results(
        "preset_losses",
        "Quick-start recipe on every dataset: training reconstruction loss (sum over pixels, batch mean)",
        {
            "runs": f"the training runs in `{root}/<recipe>/` (seed 1, 3,000 training images, 2-core CPU)",
            "loss": f"`{LOSS_COLUMN}` from the run's CSV metrics, logged every 20 steps, nearest logged step",
        },
        markdown_table(headers, rows),
        notes,
        output,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    table_parser = sub.add_parser("table", help="write the results table")
    table_parser.add_argument("--recipes", nargs="+", default=["before", "after"])
    table_parser.add_argument("--steps", nargs="+", type=int, default=[200, 1400])
    table_parser.add_argument("--note", action="append", default=[], help="a line for the results file's notes")
    table_parser.add_argument("--root", type=Path, default=REPO / "outputs" / "presets")
    table_parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    table_parser.add_argument("--output", type=Path, help="the results file (default: bench/results/preset_losses.md)")
    args = parser.parse_args()
    table(args.root, args.data_dir, args.recipes, args.steps, args.note, args.output)


if __name__ == "__main__":
    main()
