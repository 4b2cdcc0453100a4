"""Every segmentation method on the same trained runs: ARI per dataset and method, and seconds per image.

    python bench/baselines.py --presets outputs/presets --recipe after --data-dir data

For each dataset whose run ``<presets>/<recipe>/<data option>`` is complete (a ``DONE`` file), segments the first
--test-num test images with run_segment.py (the production path): latent noise (T=40, sigma=0.001), the network's
activations, rgb, rgbxy, slic and felzenszwalb with the trained weights, and latent noise and activations with
random weights (weights=random), all clustered by exact ward into each mask's label count. Outputs go to
``<out>/<recipe>/<data option>/<method>``; finished jobs are skipped, so the script can be rerun as more runs
finish. Where the run holds its own finished latent-noise segmentation with these settings, that is used instead.
The comparison of claim 3 (LNS vs the best other method) and the trained-vs-random control come from lns.report.

--model-free-run RUN: for datasets without a usable run, the four network-free methods load RUN's model with
data=<dataset> (they never use it). --allow-unfinished: runs without DONE are used at their last checkpoint, copied
to <out>/<recipe>/<data option>/checkpoint-step<N>.ckpt first (the results list the checkpoints used).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import REPO, markdown_table, write_results

from lns.checkpoint_file import read_checkpoint_dict
from lns.report import write_report
from lns.report.comparisons import baselines_markdown, trained_vs_random_markdown
from lns.run_layout import SEGMENTATION_SUMMARY

DATA_OPTIONS = ("kanizsa", "closure", "continuity", "illusory_occlusion", "gradient_occlusion", "proximity")
TRAINED = ("noise", "activations", "rgb", "rgbxy", "slic", "felzenszwalb")
MODEL_FREE = ("rgb", "rgbxy", "slic", "felzenszwalb")
RANDOM = ("noise", "activations")
LNS_SETTINGS = {"std": 0.001, "perturb_num": 40, "site": "latent"}


def job_name(features: str, weights: str) -> str:
    return features if weights == "trained" else f"{features}_random"


def own_lns_summary(run_dir: Path, test_num: int) -> Path | None:
    """A finished latent-noise segmentation inside the training run with the benchmark's settings, if any."""
    for path in sorted(run_dir.rglob(SEGMENTATION_SUMMARY)):
        summary = json.loads(path.read_text())
        if (
            summary.get("features") == "noise"
            and summary.get("noise") == LNS_SETTINGS
            and summary.get("clustering") == "ward"
            and summary.get("split") == "test"
            and summary.get("n_images") == test_num
            and summary.get("n_clusters", 0) <= 0
            and summary.get("weights", {"name": "trained"})["name"] == "trained"
        ):
            return path
    return None


def checkpoint_step(run_dir: Path) -> int:
    """The training step of the run's ``checkpoints/last.ckpt``."""
    return int(read_checkpoint_dict(run_dir / "checkpoints" / "last.ckpt")["global_step"])


def snapshot(run_dir: Path, out_dir: Path) -> Path:
    """A copy of an unfinished run's ``last.ckpt`` named by its step, so training can go on overwriting it."""
    target = out_dir / f"checkpoint-step{checkpoint_step(run_dir)}.ckpt"
    if not target.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        shutil.copyfile(run_dir / "checkpoints" / "last.ckpt", partial)
        partial.rename(target)
    return target


def usable(run_dir: Path, allow_unfinished: bool) -> bool:
    """A complete run (``DONE``), or with ``allow_unfinished`` any run that has saved a checkpoint."""
    return (run_dir / "DONE").is_file() or (allow_unfinished and (run_dir / "checkpoints" / "last.ckpt").is_file())


def borrowed_models(summaries: dict[tuple[str, str], dict], recipe_dir: Path) -> str:
    """Which jobs loaded a model other than their dataset's own run (only network-free methods may do so)."""
    borrowed = sorted(
        f"{option}/{name} loaded {summary['run_dir']}"
        for (option, name), summary in summaries.items()
        if summary.get("run_dir") and Path(summary["run_dir"]).resolve() != (recipe_dir / option).resolve()
    )
    if not borrowed:
        return "each dataset's own run"
    return (
        "each dataset's own run, except (with data=<dataset>; rgb, rgbxy, slic and felzenszwalb never use the "
        f"model, only the saved reconstructions come from it): {'; '.join(borrowed)}"
    )


def segment_jobs(
    run_dir: Path, out_dir: Path, data_dir: Path, test_num: int, weights: str, features: list[str], *extra: str
) -> int:
    """One run_segment.py multirun over ``features`` with ``weights`` (and ``extra`` overrides); its exit status."""
    if not features:
        return 0
    command = [
        sys.executable,
        "run_segment.py",
        "-m",
        f"run_dir={run_dir}",
        f"paths.data_dir={data_dir}",
        f"test_num={test_num}",
        "noise.std=0.001",
        "noise.perturb_num=40",
        "clustering=ward",
        f"weights={weights}",
        f"features={','.join(features)}",
        f"hydra.sweep.dir={out_dir}",
        "hydra.sweep.subdir=${features.name}" + ("" if weights == "trained" else "_random"),
        "hydra/job_logging=disabled",
        *extra,
    ]
    print(" ".join(command), flush=True)
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", type=Path, default=REPO / "outputs" / "presets")
    parser.add_argument("--recipe", default="after", help="the runs of bench/preset_losses.py train <recipe>")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_baselines")
    parser.add_argument("--test-num", type=int, default=100)
    parser.add_argument(
        "--model-free-run",
        type=Path,
        help="a complete run whose model is loaded (data=<option>) to run rgb, rgbxy, slic and felzenszwalb on the "
        "datasets whose own run is not complete: these methods never use the model",
    )
    parser.add_argument(
        "--allow-unfinished",
        action="store_true",
        help="also use runs without DONE at their last checkpoint (the results name its step); use a fresh --out",
    )
    parser.add_argument("--only-report", action="store_true", help="write the results from finished jobs only")
    args = parser.parse_args()
    for key in ("presets", "data_dir", "out", "model_free_run"):
        if getattr(args, key) is not None:
            setattr(args, key, getattr(args, key).resolve())

    complete = [o for o in DATA_OPTIONS if usable(args.presets / args.recipe / o, args.allow_unfinished)]
    borrowed = [o for o in DATA_OPTIONS if o not in complete] if args.model_free_run else []
    print(f"complete runs: {complete or 'none'}; network-free methods only: {borrowed or 'none'}", flush=True)
    owns = {o: own_lns_summary(args.presets / args.recipe / o, args.test_num) for o in complete}
    if not args.only_report:
        for option in [*complete, *borrowed]:
            out_dir = args.out / args.recipe / option
            jobs = (("trained", TRAINED), ("random", RANDOM)) if option in complete else (("trained", MODEL_FREE),)
            for weights, methods in jobs:
                todo = [
                    f
                    for f in methods
                    if not (out_dir / job_name(f, weights) / SEGMENTATION_SUMMARY).is_file()
                    and not (f == "noise" and weights == "trained" and owns.get(option) is not None)
                ]
                if option in complete:
                    run_dir = args.presets / args.recipe / option
                    pinned = (
                        () if (run_dir / "DONE").is_file() or not todo else (f"ckpt_path={snapshot(run_dir, out_dir)}",)
                    )
                    segment_jobs(run_dir, out_dir, args.data_dir, args.test_num, weights, todo, *pinned)
                else:
                    segment_jobs(
                        args.model_free_run, out_dir, args.data_dir, args.test_num, weights, todo, f"data={option}"
                    )

    summaries: dict[tuple[str, str], dict] = {}
    report_dirs: list[Path] = []
    for option in DATA_OPTIONS:
        out_dir = args.out / args.recipe / option
        found = {p.parent.name: p for p in out_dir.glob(f"*/{SEGMENTATION_SUMMARY}")}
        if owns.get(option) is not None:
            found["noise"] = owns[option]
            report_dirs.append(owns[option].parent)
        for name, path in found.items():
            summaries[option, name] = json.loads(path.read_text())
        if found:
            report_dirs.append(out_dir)
    if not summaries:
        sys.exit("No finished segmentation to report: no run of the recipe is complete yet.")

    columns = [job_name(f, "trained") for f in TRAINED] + [job_name(f, "random") for f in RANDOM]
    datasets = [o for o in DATA_OPTIONS if any((o, c) in summaries for c in columns)]
    ari_rows, fg_rows, speed_rows = [], [], []
    for option in datasets:
        cells = [summaries.get((option, c)) for c in columns]
        ari_rows.append([option, *("–" if s is None else f"{s['ari_mean']:.3f} ± {s['ari_std']:.3f}" for s in cells)])
        fg_rows.append(
            [option, *("–" if s is None or s["ari_fg_mean"] is None else f"{s['ari_fg_mean']:.3f}" for s in cells)]
        )
        speed_rows.append(
            [
                option,
                *("–" if s is None or s.get("seconds_per_image") is None else s["seconds_per_image"] for s in cells),
            ]
        )
    means = []
    for column in columns:
        values = [summaries[o, column]["ari_mean"] for o in datasets if (o, column) in summaries]
        means.append(f"{sum(values) / len(values):.3f} (n={len(values)})" if values else "–")
    ari_rows.append(["mean over datasets", *means])

    report = write_report(report_dirs, out=args.out / args.recipe / "report", data_dir=args.data_dir)
    headers = ["dataset", *(c.replace("noise", "LNS") for c in columns)]
    table = [
        "ARI (mean ± population std over test images) per dataset and method; `_random`: the run's architecture "
        "at a fresh seeded initialisation (weights=random, seed 0).",
        "",
        *markdown_table(headers, ari_rows),
        "",
        "ARI-FG (the same over the pixels whose mask label is not background), mean over test images:",
        "",
        *markdown_table(headers, fg_rows),
        "",
        "Seconds per image (run_segment.py's segmentation loop: encoding, features, clustering; model loading, "
        "figures and process start excluded), on this shared machine:",
        "",
        *markdown_table(headers, speed_rows),
        "",
        baselines_markdown(report.table).replace("## ", "### "),
        "",
        trained_vs_random_markdown(report.table).replace("## ", "### "),
    ]
    runs = sorted(
        {
            f"{option}: {summary['checkpoint']}"
            for (option, _), summary in summaries.items()
            if summary.get("method", {}).get("uses_model", True)
        }
    )
    if any("checkpoint-step" in run for run in runs):
        runs.append("checkpoint-step<N>.ckpt: a copy of an unfinished run's last.ckpt at training step N")
    settings = {
        "checkpoints of the network methods": "; ".join(runs) or "none (no usable run)",
        "models loaded for the network-free methods": borrowed_models(summaries, args.presets / args.recipe),
        "segmentation": f"first {args.test_num} images of test.npz, clusters = each mask's label count, exact ward, "
        "LNS with T=40, sigma=0.001, noise seed 0; float32, channels_last",
        "method parameters": "the defaults of conf/features/*.yaml (rgbxy position_weight 1; slic n_segments 100, "
        "compactness 10; felzenszwalb scale 1, sigma 0.8, min_size 20; activations at decoder.14, bilinear)",
        "outputs": f"{args.out / args.recipe} (report: {args.out / args.recipe / 'report'})",
    }
    write_results("baselines", "Baselines and controls against latent noise segmentation", settings, table)


if __name__ == "__main__":
    main()
