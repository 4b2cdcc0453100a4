"""Do the jobs of a ``launcher=local`` sweep share the machine's cores well? Training steps/s, all jobs together.

    python bench/oversubscription.py --jobs 6 --steps 40

Runs real sweeps, ``run_train.py -m launcher=local experiment=quickstart seed=1..N trainer.max_steps=S`` on a small
generated dKanizsa, in these settings:

- ``alone``: one job, every core (``hydra.launcher.cpus_per_task=null``: torch's default threads);
- ``all cores each``: N jobs at once, each with every core (``cpus_per_task=null``; the launcher before jobs were
  given their share);
- ``one thread each``: N jobs at once, one thread each (``cpus_per_task=null``, ``OMP_NUM_THREADS=1``);
- ``default``: the launcher's defaults (``cpus_per_task=1``: one thread per job, as many jobs at once as cores).

A callback records when each training step ends. Throughput: all jobs' steps after the first ``--warmup`` of each,
divided by the time during which at least one job was past its warm-up; the sweep's wall time includes start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from common import REPO, markdown_table, usable_cpus, write_results

CLOCK_FILE = "step_clock.json"


class StepClock(pl.Callback):
    """Writes the wall-clock time at which every training step ended, and the thread count, to the run directory."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        self.ends.append(time.time())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        record = {"ends": self.ends, "threads": torch.get_num_threads()}
        (Path(trainer.default_root_dir) / CLOCK_FILE).write_text(json.dumps(record))


SCENARIOS = {
    "alone": (1, ["hydra.launcher.cpus_per_task=null"], {}),
    "all cores each": (None, ["hydra.launcher.cpus_per_task=null"], {}),
    "one thread each": (None, ["hydra.launcher.cpus_per_task=null"], {"OMP_NUM_THREADS": "1"}),
    "default": (None, [], {}),
}


def make_data(data_dir: Path) -> None:
    """A small dKanizsa (512 training images) unless ``data_dir`` holds it already."""
    if (data_dir / "dKanizsa" / "train.npz").is_file():
        return
    command = [sys.executable, "-m", "data_gen", "dataset=kanizsa", "n_train=512", "n_valid=64", "n_test=8"]
    subprocess.run([*command, f"paths.data_dir={data_dir}"], cwd=REPO, check=True)


def busy_elsewhere(samples: int = 10, interval_s: float = 0.5) -> float:
    """Runnable threads of other processes (``/proc/loadavg``'s running count, less this one), mean of samples."""
    counts = []
    for _ in range(samples):
        counts.append(int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1)
        time.sleep(interval_s)
    return sum(counts) / len(counts)


def run_sweep(sweep_dir: Path, jobs: int, steps: int, data_dir: Path, overrides: list[str], env: dict) -> float:
    """One ``launcher=local`` training sweep of ``jobs`` seeds into ``sweep_dir``; its wall-clock seconds."""
    command = [
        sys.executable,
        "run_train.py",
        "-m",
        "launcher=local",
        "experiment=quickstart",
        f"seed={','.join(str(seed) for seed in range(1, jobs + 1))}",
        f"trainer.max_steps={steps}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "+callbacks.step_clock._target_=oversubscription.StepClock",
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    pythonpath = os.pathsep.join(filter(None, [str(REPO / "bench"), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": pythonpath, **env}
    print(" ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=full_env, check=True)
    return time.perf_counter() - started


def throughput(clocks: list[dict], warmup: int) -> tuple[float, float]:
    """(steps/s of all jobs together, median steps/s of one job), counting steps after each job's warm-up."""
    spans = sorted((clock["ends"][warmup - 1], clock["ends"][-1]) for clock in clocks)
    busy, current_start, current_end = 0.0, *spans[0]
    for start, end in spans[1:]:
        if start > current_end:
            busy += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    busy += current_end - current_start
    steps = sum(len(clock["ends"]) - warmup for clock in clocks)
    per_job = [(len(clock["ends"]) - warmup) / (clock["ends"][-1] - clock["ends"][warmup - 1]) for clock in clocks]
    return steps / busy, statistics.median(per_job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5, help="steps of each job left out (first calls are slow)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/lns_oversubscription"))
    args = parser.parse_args()
    out = args.out.resolve()
    data_dir = out / "data"
    make_data(data_dir)
    loads, rows, alone = [], [], None
    for name, (jobs, overrides, env) in SCENARIOS.items():
        jobs = jobs or args.jobs
        sweep_dir = out / name.replace(" ", "_") / time.strftime("%Y%m%d-%H%M%S")
        loads.append(f"{name} {busy_elsewhere():.1f} (1-min load average {os.getloadavg()[0]:.2f})")
        wall = run_sweep(sweep_dir, jobs, args.steps, data_dir, overrides, env)
        clocks = [json.loads(path.read_text()) for path in sorted(sweep_dir.glob(f"*/{CLOCK_FILE}"))]
        if len(clocks) != jobs:
            sys.exit(f"{sweep_dir}: {len(clocks)} of {jobs} jobs recorded their steps; see its .submitit logs.")
        total, per_job = throughput(clocks, args.warmup)
        alone = alone or total
        threads = sorted({clock["threads"] for clock in clocks})
        rows.append(
            [
                name,
                jobs,
                "/".join(map(str, threads)),
                round(total, 2),
                f"{total / alone:.2f}",
                round(per_job, 2),
                round(wall, 1),
            ]
        )
    headers = ["setting", "jobs", "threads per job", "steps/s, all jobs", "vs alone", "steps/s per job", "sweep s"]
    write_results(
        "oversubscription",
        "Jobs of a launcher=local sweep sharing the machine's cores",
        {
            "sweeps": f"run_train.py -m launcher=local experiment=quickstart seed=1..N trainer.max_steps={args.steps} "
            f"logger=none, dKanizsa with 512 training images (batch 64); usable CPUs: {usable_cpus()}",
            "steps/s": f"all jobs' steps after the first {args.warmup} of each, over the time at least one job was "
            "past them; per job: median; sweep s: the whole command, start-up included",
            "other processes' runnable threads just before each setting (mean of 10 samples over 5 s; the load "
            "average still holds the previous setting's jobs)": "; ".join(loads),
        },
        markdown_table(headers, rows),
    )


if __name__ == "__main__":
    main()
