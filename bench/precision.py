"""Training precision: speed of float32 and bf16-mixed (plain loop and ``lns.train``, AE and VAE), the headroom
against the machine's matmul rates, ``torch.compile`` on top, and the segmentation quality of models trained at
each precision.

    python bench/precision.py speed                  # -> bench/results/precision.md
    python bench/precision.py quality <sweep dir>... # -> bench/results/precision_quality.md

The quality part reads a training sweep (each job trained with ``segment=paper`` and one explicit
``trainer.precision``), made by

    python run_train.py -m experiment=quickstart data=kanizsa,illusory_occlusion seed=1,2,3 \\
        trainer.precision=bf16-mixed,32-true segment=paper segment.test_num=100 paths.data_dir=<data> \\
        hydra.sweep.dir=<sweep dir>

and states that sweep's command as recorded in its ``multirun.yaml``. Several sweep directories may be given (a
sweep finished in parts, one seed range each); their jobs are pooled. ``auto`` may pick bf16 only when the bf16
mean ARI lies within the float32 seed spread (one standard deviation over seeds) on every dataset; the table says
whether it does. Jobs of the sweep that have not finished are left out (the seeds column counts the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from common import markdown_table, pick_device, write_results
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode
from train_speed import lightning_path, make_dataset, plain_loop

from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.models import Autoencoder
from lns.objectives import kl_divergence, reconstruction_error
from lns.runs.run_layout import RUN_CONFIG, SEGMENTATION_SUMMARY

PRECISIONS = ("32-true", "bf16-mixed")
QUICKSTART_STEPS = 1400


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """The best GFLOP/s of ``repeats`` size x size matrix products in ``dtype`` on the CPU."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def flops_per_step(variational: bool, batch_size: int, z_dim: int) -> int:
    """Floating-point operations of one training step's forward and backward pass (torch's FLOP counter)."""
    model = Autoencoder(z_dim=z_dim, variational=variational)
    images = torch.rand(batch_size, 3, 64, 64)
    with FlopCounterMode(display=False) as counter:
        logits, mu, logvar = model(images)
        loss = reconstruction_error(logits, images)
        if logvar is not None:
            loss = loss + kl_divergence(mu, logvar)
        loss.backward()
    return counter.get_total_flops()


def speed_args(args: argparse.Namespace, precision: str, compile_model: bool) -> argparse.Namespace:
    """The settings ``bench/train_speed.py``'s timing functions read."""
    return argparse.Namespace(
        channels_last=True,
        compile=compile_model,
        precision=precision,
        batch_size=args.batch_size,
        z_dim=args.z_dim,
        warmup=args.warmup,
        steps=args.steps,
        profile_steps=0,
    )


def speed_rows(args: argparse.Namespace, data_dir: Path, device: torch.device) -> tuple[list[list[object]], dict]:
    """Steps/s and achieved GFLOP/s of every (model, precision, path), fastest of ``args.repeats`` rounds."""
    images = torch.from_numpy(load_split(dataset_dir(data_dir, "kanizsa"), "train").images).to(device)
    rates = {}
    rows = []
    for name in ("ae", "vae"):
        variational = name == "vae"
        flops = flops_per_step(variational, args.batch_size, args.z_dim)
        for precision in PRECISIONS:
            settings = speed_args(args, precision, compile_model=False)
            plain = min(plain_loop(images, variational, settings).seconds_per_step for _ in range(args.repeats))
            light = min(
                lightning_path(data_dir, variational, settings, device).seconds_per_step for _ in range(args.repeats)
            )
            for path, seconds in (("plain loop", plain), ("lns.train", light)):
                rates[(name, precision, path)] = 1 / seconds
                rows.append([name.upper(), precision, path, 1 / seconds, flops / seconds / 1e9])
    return rows, rates


def compile_rows(args: argparse.Namespace, data_dir: Path, device: torch.device, rates: dict) -> list[list[object]]:
    """``torch.compile`` (inductor) on the plain loop: steps/s, compile time, and whether it pays off in a
    quick-start run (saved step time x 1,400 steps > compile time)."""
    images = torch.from_numpy(load_split(dataset_dir(data_dir, "kanizsa"), "train").images).to(device)
    rows = []
    for precision in PRECISIONS:
        torch._dynamo.reset()
        # An empty inductor cache for each precision: the compile time of a first run, not of a cache hit.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="lns-inductor-", dir=data_dir)
        settings = speed_args(args, precision, compile_model=True)
        settings.warmup = 1
        started = time.perf_counter()
        plain_loop(images, False, argparse.Namespace(**{**vars(settings), "steps": 1}))
        first_call = time.perf_counter() - started
        compiled = min(plain_loop(images, False, settings).seconds_per_step for _ in range(args.repeats))
        eager = 1 / rates[("ae", precision, "plain loop")]
        compile_seconds = max(first_call - 2 * compiled, 0.0)
        saved = QUICKSTART_STEPS * (eager - compiled)
        pays = "yes" if saved > compile_seconds else "no"
        rows.append(["AE", precision, 1 / eager, 1 / compiled, compile_seconds, saved, pays])
    return rows


def sweep_command(sweep_dir: Path) -> str:
    """The training sweep's command line as its ``multirun.yaml`` recorded it."""
    overrides = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.overrides.task
    return "python run_train.py -m " + " ".join(str(o) for o in overrides) + f" hydra.sweep.dir={sweep_dir}"


def quality_rows(sweep_dirs: list[Path]) -> tuple[list[list[object]], list[str]]:
    """Mean ARI ± std over seeds per (dataset, precision), and whether bf16 is within float32's seed spread."""
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    settings: set[str] = set()
    summaries = [path for sweep in sweep_dirs for path in sorted(sweep.glob(f"*/segment/*/{SEGMENTATION_SUMMARY}"))]
    for summary_path in summaries:
        run_dir = summary_path.parents[2]
        record = OmegaConf.load(run_dir / RUN_CONFIG)
        summary = json.loads(summary_path.read_text())
        scores[(str(record.data.name), str(record.training_precision.used))].append(summary["ari_mean"])
        noise = summary["noise"]
        settings.add(
            f"{summary['n_images']} {summary['split']} images, {noise['site']} sigma={noise['std']:g} "
            f"T={noise['perturb_num']}, {summary['clustering']}"
        )
    rows, verdicts = [], [f"Segmentation: {'; '.join(sorted(settings))}.", ""]
    for dataset in sorted({dataset for dataset, _ in scores}):
        stats = {}
        for precision in PRECISIONS:
            values = scores.get((dataset, precision), [])
            mean = statistics.mean(values) if values else float("nan")
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            stats[precision] = (mean, std)
            rows.append([dataset, precision, len(values), mean, std, " ".join(f"{v:.3f}" for v in values)])
        (mean32, std32), (mean16, _) = stats["32-true"], stats["bf16-mixed"]
        if std32 != std32 or mean16 != mean16:
            verdict = "too few seeds to compare"
        else:
            verdict = "within the spread" if abs(mean16 - mean32) <= std32 else "outside the spread"
        verdicts.append(
            f"{dataset}: bf16 - float32 = {mean16 - mean32:+.3f} ARI; float32 seed std {std32:.3f}: {verdict}."
        )
    return rows, verdicts


def speed(args: argparse.Namespace) -> None:
    """Write ``bench/results/precision.md``: steps/s, GFLOP/s against the matmul peaks, torch.compile."""
    device = pick_device("cpu")
    fp32, bf16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    with tempfile.TemporaryDirectory(prefix="lns-precision-") as tmp:
        data_dir = Path(tmp)
        make_dataset(data_dir, args.train_images)
        rows, rates = speed_rows(args, data_dir, device)
        compiled = compile_rows(args, data_dir, device, rates)
    for row in rows:
        peak = fp32 if row[1] == "32-true" else bf16
        row.append(f"{100 * row[4] / peak:.0f}%")
    table = [
        "## Speed (steps/s, achieved GFLOP/s of the forward and backward pass)",
        "",
        *markdown_table(["model", "precision", "path", "steps/s", "GFLOP/s", "of matmul peak"], rows),
        "",
        f"2048x2048 matmul on this CPU: float32 {fp32:.0f} GFLOP/s, bfloat16 {bf16:.0f} GFLOP/s.",
        "",
        "## torch.compile (inductor, plain loop, AE)",
        "",
        *markdown_table(
            ["model", "precision", "eager steps/s", "compiled steps/s", "compile s", "saved s in 1,400 steps", "pays"],
            compiled,
        ),
    ]
    settings = {
        "settings": f"batch {args.batch_size}, 64x64, z_dim {args.z_dim}, GECO, Adam, channels_last; "
        f"{args.steps} timed steps after {args.warmup} warm-up steps, fastest of {args.repeats} rounds",
    }
    notes = [
        "GFLOP/s = torch.utils.flop_counter's count of one step's forward and backward pass x steps/s; the "
        "optimizer and GECO update are not counted.",
        "Compile s = the first compiled step's wall time minus two compiled steps, with an empty inductor cache; "
        "pays = the time it saves over a 1,400-step quick-start run exceeds it.",
    ]
    write_results("precision", "Training precision: speed", settings, table, notes, args.output)


def quality(args: argparse.Namespace) -> None:
    """Write ``bench/results/precision_quality.md``: ARI over seeds per dataset and precision."""
    rows, verdicts = quality_rows(args.sweeps)
    if not rows:
        raise SystemExit(f"{args.sweeps} hold no finished segmentations (*/segment/*/summary.json).")
    table = [
        *(f"Sweep: `{sweep_command(sweep)}`" for sweep in args.sweeps),
        "",
        *markdown_table(["dataset", "precision", "seeds", "mean ARI", "std over seeds", "per seed"], rows),
        "",
        *verdicts,
    ]
    write_results("precision_quality", "Training precision: segmentation quality", {}, table, (), args.output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    timing = parts.add_parser("speed", help="steps/s, matmul headroom, torch.compile -> precision.md")
    timing.add_argument("--steps", type=int, default=40, help="timed steps per round")
    timing.add_argument("--warmup", type=int, default=5)
    timing.add_argument("--repeats", type=int, default=2, help="rounds; the fastest counts")
    timing.add_argument("--batch-size", type=int, default=64)
    timing.add_argument("--z-dim", type=int, default=15)
    timing.add_argument("--train-images", type=int, default=2048)
    timing.add_argument("--output", type=Path, default=None)
    scores = parts.add_parser("quality", help="ARI over seeds from a training sweep -> precision_quality.md")
    scores.add_argument("sweeps", type=Path, nargs="+", help="the sweep directories (see above)")
    scores.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.part == "speed":
        speed(args)
    else:
        quality(args)


if __name__ == "__main__":
    main()
