"""Dataset generation speed: images per second for each Good Gestalt dataset.

    python bench/generate_speed.py            # full default size: 30,000 / 300 / 100 / 100 per dataset
    python bench/generate_speed.py --n 3000   # 3,000 training images per dataset (the reference's size)

For each dataset it times the drawing alone (sampling, rasterising and composing every split in memory, no
files) and the whole generation (the same plus compressed npz writing, SHA-256, sample grids and the
manifest) into a temporary folder that is deleted afterwards. It prints a table and writes
bench/results/generate_speed.md with the machine and the settings.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from common import cpu_model

from data_gen.generate import MODULES, Request, generate_gg, plan_splits, render
from lns.data.catalog import GG_DATASETS

RESULTS = Path(__file__).resolve().parent / "results" / "generate_speed.md"
# The authors' PIL generator on this 2-core machine: 3,400 images of each of the six datasets in about 44 s,
# of which dKanizsa alone took about 23 s.
REFERENCE = {"images_per_dataset": 3400, "all_six_s": 44.0, "kanizsa_s": 23.0}


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _draw_only(name: str, request: Request) -> float:
    module = MODULES[name]
    started = time.perf_counter()
    for split, params in plan_splits(module, request).items():
        for chunk in render(module, params, split, request.image_size):
            np.asarray(chunk.images)
    return time.perf_counter() - started


def _end_to_end(name: str, request: Request) -> float:
    data_dir = Path(tempfile.mkdtemp(prefix="lns-bench-"))
    try:
        started = time.perf_counter()
        generate_gg(name, replace(request, data_dir=data_dir), progress=False)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30000, help="training images per dataset (default 30000)")
    parser.add_argument("--n-valid", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=100, help="images of test_1 and of test")
    parser.add_argument("--image-size", type=int, default=64, choices=(64, 256))
    parser.add_argument("--datasets", nargs="+", default=list(GG_DATASETS), choices=GG_DATASETS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    request = Request(
        datasets=tuple(args.datasets),
        data_dir=Path("unused"),
        n_train=args.n,
        n_valid=args.n_valid,
        n_test=args.n_test,
        image_size=args.image_size,
    )
    images = sum(request.counts().values())
    load_before = _load()
    rows = []
    for name in args.datasets:
        draw, total = _draw_only(name, request), _end_to_end(name, request)
        rows.append((name, draw, total))
        rates = f"draw {images / draw:9.0f} img/s   end-to-end {images / total:9.0f} img/s"
        print(f"{name:20s} {rates} ({total:.1f} s)")

    total_s = sum(r[2] for r in rows)
    reference_rate = REFERENCE["images_per_dataset"] * 6 / REFERENCE["all_six_s"]
    lines = [
        "# Dataset generation speed",
        "",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
        f"- software: Python {platform.python_version()}, NumPy {np.__version__}",
        f"- load average before / after the run: {load_before} / {_load()} (other processes share the CPUs)",
        f"- settings: image_size={args.image_size}, per dataset n_train={args.n}, n_valid={args.n_valid}, "
        f"test_1={args.n_test}, test={args.n_test} ({images} images)",
        "- draw: sampling + rasterising + composing every split in memory; end-to-end: `generate_gg` "
        "(draw + compressed npz + SHA-256 + sample grids + manifest), written to a temporary folder",
        "",
        "| dataset | draw img/s | end-to-end img/s | end-to-end s |",
        "|---|---:|---:|---:|",
    ]
    for name, draw, total in rows:
        lines.append(f"| {name} | {images / draw:.0f} | {images / total:.0f} | {total:.1f} |")
    lines.append(
        f"| **all** | {len(rows) * images / sum(r[1] for r in rows):.0f} | "
        f"{len(rows) * images / total_s:.0f} | {total_s:.1f} |"
    )
    per_dataset, all_six, kanizsa = (
        REFERENCE["images_per_dataset"],
        REFERENCE["all_six_s"],
        REFERENCE["kanizsa_s"],
    )
    speedup = len(rows) * images / total_s / reference_rate
    lines += [
        "",
        f"Reference (the authors' PIL generator on this 2-core machine): {per_dataset:.0f} images of each "
        f"of the six datasets in about {all_six:.0f} s ({reference_rate:.0f} img/s overall), dKanizsa alone "
        f"about {kanizsa:.0f} s ({per_dataset / kanizsa:.0f} img/s).",
        f"End-to-end speed-up over that reference: {speedup:.1f}x overall.",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"all: {total_s:.1f} s end-to-end; wrote {args.output}")


if __name__ == "__main__":
    main()
