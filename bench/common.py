"""Shared helpers of the benchmarks: the machine, a device-aware timer, segmentation scoring, the results file."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lns.data.catalog import dataset_dir
from lns.data.npz import SplitArrays, load_split
from lns.metrics.ari import adjusted_rand_index
from lns.segmentation.source import ModelSource, load_source

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what the platform module knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cpus() -> int:
    """CPUs this process may run on (affinity), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine() -> str:
    """One line naming the CPU, cores, GPU (if any) and the software versions."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu_model()}, {usable_cpus()} usable CPUs; {gpu}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def pick_device(name: str | None) -> torch.device:
    """``name`` as a device; None = the first GPU when there is one, else the CPU."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {name} asked for, but torch sees no CUDA GPU.")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock times include it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Accumulates seconds over ``with watch.running():`` blocks, synchronising the device at both ends."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        synchronize(self.device)
        started = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.seconds += time.perf_counter() - started


def add_model_and_split_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose a trained model and the test images (read by :func:`model_and_split`)."""
    parser.add_argument("--run-dir", default=None, help="a training run directory")
    parser.add_argument("--ckpt", default=None, help="a checkpoint (ours or the authors')")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="folder holding the datasets")
    parser.add_argument("--dataset", default=None, help="default: the one the model was trained on")
    parser.add_argument("--split", default="test", choices=["test", "test_1"])
    parser.add_argument("--images", type=int, default=100)


def model_and_split(args: argparse.Namespace) -> tuple[ModelSource, str, SplitArrays]:
    """From the options of :func:`add_model_and_split_arguments`: the model of a training run (or checkpoint), its
    dataset's name (``--dataset`` overrides it) and that dataset's ``--split``, checked to hold at least
    ``--images`` images; a bad argument exits with its message."""
    run_dir, ckpt, data_dir, split, images = args.run_dir, args.ckpt, args.data_dir, args.split, args.images
    if not (run_dir or ckpt):
        sys.exit("Pass --run-dir <training run> or --ckpt <checkpoint> of a trained model.")
    source = load_source(run_dir, ckpt)
    dataset = args.dataset or source.dataset
    if dataset is None:
        sys.exit(f"Cannot tell which dataset {source.checkpoint} was trained on; pass --dataset.")
    arrays = load_split(dataset_dir(data_dir, dataset, source.image_size), split, name=dataset, data_dir=data_dir)
    if not 0 < images <= len(arrays.images):
        sys.exit(f"--images must be 1..{len(arrays.images)} for {dataset} {split}.")
    return source, dataset, arrays


@dataclass(frozen=True)
class Score:
    """Mean ARI and foreground ARI over the images, and seconds per image for the features and the clustering."""

    ari: float
    ari_fg: float
    feature_s: float
    cluster_s: float


def score_in_batches(
    features_of: Callable[[list[int]], Tensor],
    masks: Tensor,
    clusterer: Callable[[Tensor, list[int]], np.ndarray],
    batch_size: int,
    device: torch.device,
) -> Score:
    """Segment images ``0..len(masks)-1`` in batches of indices (``features_of(index)`` gives their pixel features,
    clustered into each mask's label count) and score them against ``masks``."""
    features_watch, cluster_watch = Stopwatch(device), Stopwatch()
    ari, ari_fg = [], []
    for start in range(0, len(masks), batch_size):
        index = list(range(start, min(start + batch_size, len(masks))))
        target = masks[index].flatten(1)
        counts = [int(torch.unique(row).numel()) for row in target]
        with features_watch.running():
            features = features_of(index)
        with cluster_watch.running():
            labels = torch.from_numpy(clusterer(features, counts))
        ari.append(adjusted_rand_index(labels, target))
        ari_fg.append(adjusted_rand_index(labels, target, foreground_only=True))
    n = len(masks)
    return Score(
        ari=float(torch.cat(ari).mean()),
        ari_fg=float(np.nanmean(torch.cat(ari_fg).numpy())),
        feature_s=features_watch.seconds / n,
        cluster_s=cluster_watch.seconds / n,
    )


def git_revision() -> str:
    """The checkout's commit (``+dirty`` when code has local changes: results files do not count), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":(exclude)bench/results"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        return commit + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table; text columns left-aligned, numeric ones right-aligned."""
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if right else "---" for right in numeric) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return lines


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def write_results(
    name: str,
    title: str,
    settings: dict[str, object],
    table: Sequence[str],
    notes: Sequence[str] = (),
    output: Path | None = None,
) -> Path:
    """Print ``table`` (and notes) and write them with the machine and settings to ``bench/results/<name>.md``."""
    path = output or RESULTS_DIR / f"{name}.md"
    lines = [
        f"# {title}",
        "",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- machine: {machine()}",
        f"- code: {git_revision()}",
        f"- command: `python {' '.join(sys.argv)}`",
        *(f"- {key}: {value}" for key, value in settings.items()),
        "",
        *table,
    ]
    if notes:
        lines += ["", *notes]
    print("\n".join([*table, *([""] if notes else []), *notes]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")
    return path
