"""One GPU benchmark: steps/s of the plain loop, of lns.train and each speed lever, of runs at once; projections.

    python bench/gpu.py                        # the GPU, within 8 minutes: bench/results/gpu_<device>.md
    python bench/gpu.py --device cpu           # small sizes on the CPU, a minute or two: bench/results/gpu_cpu.md

Everything runs on a dKanizsa training set generated into a temporary folder. Measured, in this order:

- the plain PyTorch loop of ``train_speed.py`` (AE, GECO, Adam, batch 64) in float32 and under bf16 autocast;
- ``run_train.py`` processes (the default config: the paper's AE, GECO, batch 64; no progress bar): as configured,
  then with one lever each (``speed.steps_per_call=K`` with every step interval rounded up to a multiple of K,
  ``trainer.precision=bf16-mixed``, ``speed.compile=true``, the other ``speed.channels_last``), then the levers that
  beat the default together;
- N processes of the fastest setting at once on the one device, for each N of ``--runs-per-gpu``.

A callback in each process (:class:`WindowClock`) appends the wall time and the optimizer steps done so far to a
file every half second, after a device sync. Once every process of a measurement is past its warm-up the timed
window starts; its steps are interpolated from those records. On a GPU a window after the timed one counts CUDA
kernels (torch.profiler) and host syncs (torch.cuda's sync debug mode) per step. Each measurement is its own
process(es): one that fails becomes "failed: <its error>" in the table and the bench goes on. The windows are sized
so that the whole bench ends within ``--budget-min``; a measurement that no longer fits is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from common import REPO, cpu_model, markdown_table, pick_device, synchronize, usable_cpus, write_results
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch.utils.flop_counter import FlopCounterMode
from train_speed import gpu_kernel_seconds, make_dataset, plain_loop, start_profiler

from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.models import Autoencoder
from lns.models.float32 import set_tf32
from lns.objectives import reconstruction_error
from lns.train import step_intervals

PAPER_STEPS = 1_100_000
TABLE_RUNS = 36  # 6 datasets x AE/VAE x 3 seeds
LEVERS = ("steps_per_call", "bf16", "compile", "channels_last")
RECORD_EVERY_S = 0.5
POLL_S = 0.2
HYDRA_HINT = "Set the environment variable HYDRA_FULL_ERROR"
RESERVE_S = 10.0  # kept free at the end of the budget for the results file
PLAIN_OVERHEAD_S = 5.0  # a plain-loop measurement besides its window: model, probe run, warm-up
PLAIN_COUNT_STEPS = 20  # the plain loop's kernels and host syncs per step: runs of this many steps and twice as many


@dataclass(frozen=True)
class Sizes:
    """How big the bench is on one kind of device."""

    train_images: int
    min_window_s: float
    max_window_s: float
    plain_warmup: int
    warmup_steps: int
    overhead_s: float  # first guess of a training process's start-up, warm-up and shut-down
    teardown_s: float
    profile_steps: int
    matmul_size: int
    matmul_dtype: torch.dtype
    steps_per_call: str
    runs_per_gpu: str
    levers: str


SIZES = {
    "cuda": Sizes(4096, 5, 20, 50, 200, 20, 30, 100, 8192, torch.bfloat16, "8,32", "1,4,8,12", ",".join(LEVERS)),
    "cpu": Sizes(256, 2, 4, 1, 1, 15, 15, 0, 2048, torch.float32, "4", "1,2", "steps_per_call,bf16,channels_last"),
}


@contextmanager
def counting_syncs() -> Iterator[list[warnings.WarningMessage]]:
    """Within: torch.cuda warns at every host sync (its sync debug mode); yields the list of caught warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield caught
        finally:
            torch.cuda.set_sync_debug_mode(0)


def sync_count(caught: list[warnings.WarningMessage]) -> int:
    return sum("synchroniz" in str(warning.message) for warning in caught)


def kernel_launches(profiler: torch.profiler.profile) -> int:
    """CUDA kernels in a profiled window: the device's events less memory copies, memsets and annotations (told apart
    by the event's activity type where torch records it, else by name)."""
    count = 0
    for event in profiler.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            kind = getattr(event, "activity_type", None)
            count += kind == "kernel" if kind else not event.name.startswith(("Memcpy", "Memset"))
    return count


class WindowClock(pl.Callback):
    """In a training process: every ``every_s`` seconds, after a device sync, appends the wall time and the optimizer
    steps done so far to ``record``; once ``stop_file`` exists (or after ``deadline``), on a GPU, profiles
    ``profile_steps`` more steps while counting their host syncs, records per step the GPU's busy seconds, kernels
    and syncs, then stops the run. The window runs from one ``on_train_batch_end`` to a later one, so it holds whole
    Lightning steps (each ``speed.steps_per_call`` optimizer steps); a failure in it only loses its records."""

    def __init__(
        self, record: str, stop_file: str, deadline: float, profile_steps: int = 0, every_s: float = RECORD_EVERY_S
    ) -> None:
        self.record = Path(record)
        self.stop_file = Path(stop_file)
        self.deadline = deadline
        self.profile_steps = profile_steps
        self.every_s = every_s
        self.steps = 0
        self.last = 0.0
        self.window_from: int | None = None  # optimizer steps done when the profiled window began
        self.window = ExitStack()
        self.profiler: torch.profiler.profile | None = None
        self.caught: list[warnings.WarningMessage] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for optimizer in trainer.optimizers:
            optimizer.register_step_post_hook(self._count)
        self._mark(pl_module.device)

    def _count(self, *args: object) -> None:
        self.steps += 1

    def _write(self, **values: float) -> None:
        with self.record.open("a") as file:
            file.write(json.dumps(values) + "\n")

    def _mark(self, device: torch.device) -> None:
        synchronize(device)
        self.last = time.time()
        self._write(t=self.last, steps=self.steps)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if self.window_from is not None:
            if self.steps >= self.window_from + self.profile_steps:
                self._close_window()
                trainer.should_stop = True
            return
        if time.time() - self.last < self.every_s:
            return
        self._mark(pl_module.device)
        if not (self.stop_file.exists() or self.last > self.deadline):
            return
        if self.profile_steps and pl_module.device.type == "cuda" and self._guarded(self._open_window, pl_module):
            self.window_from = self.steps
        else:
            trainer.should_stop = True

    def _open_window(self, pl_module: pl.LightningModule) -> None:
        """Start the profiler, then the sync count; closing the window ends the count before the device sync that
        completes the profile."""
        self.profiler = start_profiler()
        self.window.callback(self.profiler.stop)
        self.window.callback(synchronize, pl_module.device)
        self.caught = self.window.enter_context(counting_syncs())

    def _close_window(self) -> None:
        steps = self.steps - (self.window_from or 0)
        if self._guarded(self.window.close):
            self._guarded(lambda: self._write(kernel_s=gpu_kernel_seconds(self.profiler) / steps))
            self._guarded(lambda: self._write(kernels=kernel_launches(self.profiler) / steps))
            self._guarded(lambda: self._write(syncs=sync_count(self.caught) / steps))

    def _guarded(self, action: Callable[..., None], *args: object) -> bool:
        """Run ``action``; on an error close the window, record the error and say False (the tables say n/a)."""
        try:
            action(*args)
        except Exception as error:
            with suppress(Exception):
                self.window.close()
            self._write(window_error=f"{type(error).__name__}: {error}")
            return False
        return True


@dataclass(frozen=True)
class Setting:
    """A ``run_train.py`` setting: its overrides of the default config and its optimizer steps per Lightning step."""

    overrides: tuple[str, ...] = ()
    steps_per_call: int = 1

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "as configured"


@dataclass(frozen=True)
class Measured:
    """Steps/s of each process of a measurement; where profiled, the GPU busy share and the CUDA kernels and host
    syncs per optimizer step."""

    per_run: list[float]
    busy: float | None = None
    kernels: float | None = None
    syncs: float | None = None

    @property
    def total(self) -> float:
        return sum(self.per_run)


Outcome = Measured | str  # a str says why there is no number: "failed: ..." or "skipped: ..."


@dataclass
class Budget:
    """The bench's deadline and the timed window each remaining measurement gets."""

    sizes: Sizes
    minutes: float
    started: float = field(default_factory=time.time)
    overheads: list[float] = field(default_factory=list)

    @property
    def deadline(self) -> float:
        return self.started + 60 * self.minutes

    def overhead(self, runs: int) -> float:
        """Expected seconds besides the window of a measurement of ``runs`` processes (0: the plain loop)."""
        if runs == 0:
            return PLAIN_OVERHEAD_S
        base = statistics.mean(self.overheads) if self.overheads else self.sizes.overhead_s
        return base * (1 + (runs - 1) / usable_cpus())

    def window(self, plan: list[int]) -> float | None:
        """The window of the next measurement, ``plan`` holding its process count and every later one's: an equal
        share of the time their expected overheads leave, within the sizes' limits; None when even the shortest
        window no longer fits before the deadline."""
        left = self.deadline - time.time() - RESERVE_S
        if left < self.overhead(plan[0]) + self.sizes.min_window_s:
            return None
        share = (left - sum(self.overhead(runs) for runs in plan)) / len(plan)
        return min(max(share, self.sizes.min_window_s), self.sizes.max_window_s)

    def observed(self, runs: int, seconds: float) -> None:
        """A measurement of ``runs`` processes took ``seconds`` besides its window."""
        self.overheads.append(seconds / (1 + (runs - 1) / usable_cpus()))


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def interval_overrides(cfg: DictConfig, k: int) -> list[str]:
    """Every step interval of ``cfg`` (those ``lns.train`` checks against ``speed.steps_per_call``) rounded up to a
    multiple of ``k``. ``check_finite_every_n_steps`` is named too: its default (null) means
    ``trainer.log_every_n_steps``."""
    counted = {
        key: value
        for key, value in step_intervals(cfg).items()
        if isinstance(value, int) and not isinstance(value, bool) and value > 0
    }
    return [f"{key}={round_up(value, k)}" for key, value in counted.items()]


@dataclass(frozen=True)
class Run:
    """One ``run_train.py`` process of a measurement and its folder (run directory, records, console output)."""

    process: subprocess.Popen
    folder: Path

    def records(self) -> list[dict]:
        path = self.folder / "clock.jsonl"
        lines = path.read_text().split("\n")[:-1] if path.is_file() else []
        return [json.loads(line) for line in lines]

    def steps(self) -> int:
        marks = [record for record in self.records() if "steps" in record]
        return marks[-1]["steps"] if marks else -1

    def steps_between(self, start: float, end: float) -> float | None:
        """Optimizer steps done between wall times ``start`` and ``end``, interpolated; None without a record after
        ``end``."""
        marks = [record for record in self.records() if "steps" in record]
        times, steps = [mark["t"] for mark in marks], [mark["steps"] for mark in marks]
        if not times or times[-1] < end:
            return None
        return float(np.interp(end, times, steps) - np.interp(start, times, steps))

    def per_step(self, key: str) -> float | None:
        """The last value recorded under ``key`` (per optimizer step of the profiled window), None without one."""
        values = [record[key] for record in self.records() if key in record]
        return values[-1] if values else None

    def failure(self) -> str:
        """'failed: ' and the last line of the console output naming an error (else the first line of its last
        paragraph), leaving out Hydra's hint about HYDRA_FULL_ERROR."""
        text = (self.folder / "output.log").read_text(errors="replace")
        blocks = [block.strip().splitlines() for block in re.split(r"\n\s*\n", text) if block.strip()]
        blocks = [block for block in blocks if not block[0].startswith(HYDRA_HINT)]
        errors = [line.strip() for block in blocks for line in block if "error" in line.lower()]
        line = errors[-1] if errors else blocks[-1][0] if blocks else f"exit status {self.process.returncode}"
        return "failed: " + line[:200].replace("|", "/")


class Launcher:
    """Starts and times ``run_train.py`` processes on the generated data."""

    def __init__(self, cfg: DictConfig, device: torch.device, data_dir: Path, work: Path, budget: Budget) -> None:
        self.cfg = cfg
        self.device = device
        self.data_dir = data_dir
        self.work = work
        self.budget = budget
        self.count = 0

    def command(self, setting: Setting, folder: Path, seed: int, stop: Path, profile_steps: int) -> list[str]:
        clock = "+callbacks.window_clock"
        return [
            sys.executable,
            "run_train.py",
            "data=kanizsa",
            "model=ae",
            "objective=geco",
            f"trainer={'gpu' if self.device.type == 'cuda' else 'cpu'}",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            f"seed={seed}",
            f"paths.data_dir={self.data_dir}",
            f"hydra.run.dir={folder / 'run'}",
            *interval_overrides(self.cfg, setting.steps_per_call),
            *setting.overrides,
            f"{clock}._target_={Path(__file__).stem}.WindowClock",
            f"{clock}.record={folder / 'clock.jsonl'}",
            f"{clock}.stop_file={stop}",
            f"{clock}.deadline={self.budget.deadline}",
            f"{clock}.profile_steps={profile_steps}",
        ]

    def start(self, setting: Setting, folder: Path, seed: int, stop: Path, threads: int | None, profile: int) -> Run:
        folder.mkdir(parents=True)
        pythonpath = os.pathsep.join(filter(None, [str(REPO / "bench"), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": pythonpath}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        with (folder / "output.log").open("w") as output:
            process = subprocess.Popen(
                self.command(setting, folder, seed, stop, profile),
                cwd=REPO,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        return Run(process, folder)

    def measure(self, setting: Setting, n: int, window: float, profile_steps: int = 0) -> Outcome:
        """``n`` processes of ``setting`` at once, timed over ``window`` seconds after all of them warmed up."""
        self.count += 1
        phase = self.work / f"{self.count:02d}"
        stop = phase / "stop"
        threads = max(1, usable_cpus() // n) if n > 1 else None
        started = time.time()
        runs = [self.start(setting, phase / f"run{i}", i, stop, threads, profile_steps) for i in range(n)]
        try:
            outcome = self._time(runs, setting, window, stop)
        finally:
            for run in runs:
                if run.process.poll() is None:
                    run.process.kill()
                    run.process.wait()
        wall = time.time() - started
        if isinstance(outcome, Measured):
            self.budget.observed(n, wall - window)
        print(f"  {n} x run_train.py {setting.label}: {wall:.0f} s in all", flush=True)
        return outcome

    def _time(self, runs: list[Run], setting: Setting, window: float, stop: Path) -> Outcome:
        k = setting.steps_per_call
        warmup = round_up(max(self.budget.sizes.warmup_steps, k), k)
        warm_by = self.budget.deadline - RESERVE_S - window - self.budget.sizes.teardown_s
        while min(run.steps() for run in runs) < warmup:
            if ended := next((run for run in runs if run.process.poll() is not None), None):
                return ended.failure()
            if time.time() > warm_by:
                return f"failed: not past {warmup} warm-up steps within the time left by --budget-min"
            time.sleep(POLL_S)
        start = time.time()
        while time.time() < start + window:
            if ended := next((run for run in runs if run.process.poll() is not None), None):
                return ended.failure()
            time.sleep(POLL_S)
        end = time.time()
        stop.touch()
        shut_by = min(end + self.budget.sizes.teardown_s, self.budget.deadline)
        for run in runs:
            try:
                run.process.wait(timeout=max(1.0, shut_by - time.time()))
            except subprocess.TimeoutExpired:
                continue  # still shutting down: killed by the caller; its window is complete
            if run.process.returncode != 0:
                return run.failure()
        steps = [run.steps_between(start, end) for run in runs]
        if any(count is None for count in steps):
            return "failed: a process left no record after its timed window"
        per_run = [count / (end - start) for count in steps]
        if len(runs) > 1:
            return Measured(per_run)
        kernel_s = runs[0].per_step("kernel_s")
        busy = kernel_s * per_run[0] if kernel_s is not None else None
        return Measured(per_run, busy, runs[0].per_step("kernels"), runs[0].per_step("syncs"))


def matmul_tflops(device: torch.device, sizes: Sizes) -> float:
    """TFLOP/s of an n x n by n x n matrix product in the sizes' dtype, the best of three timed batches."""
    n = sizes.matmul_size
    a, b = (torch.randn(n, n, device=device, dtype=sizes.matmul_dtype) for _ in range(2))
    repeats = 20 if device.type == "cuda" else 3
    best = math.inf
    for _ in range(3):
        synchronize(device)
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
        best = min(best, (time.perf_counter() - started) / repeats)
    return 2 * n**3 / best / 1e12


def step_flops(images: torch.Tensor, z_dim: int, batch_size: int) -> int:
    """FLOPs of one training step's forward and backward pass of the AE (torch.utils.flop_counter)."""
    model = Autoencoder(z_dim=z_dim).to(images.device)
    batch = images[:batch_size]
    with FlopCounterMode(display=False) as counter:
        logits, _, _ = model(batch)
        reconstruction_error(logits, batch).backward()
    return counter.get_total_flops()


def measure_plain(images: torch.Tensor, cfg: DictConfig, precision: str, sizes: Sizes, window: float) -> Outcome:
    """The plain loop's steps/s over about ``window`` seconds: a short probe run, and unless it took half the window
    already (or a GPU profile is asked for), a run as long as the window."""
    args = argparse.Namespace(
        z_dim=cfg.model.z_dim,
        batch_size=cfg.data.batch_size,
        channels_last=cfg.speed.channels_last,
        compile=False,
        precision=precision,
        warmup=sizes.plain_warmup,
        steps=2 * sizes.plain_warmup,
        profile_steps=0,
    )
    try:
        timing = plain_loop(images, False, args)
        if args.steps * timing.seconds_per_step < window / 2 or sizes.profile_steps:
            args.steps = max(args.steps, round(window / timing.seconds_per_step))
            args.profile_steps = sizes.profile_steps
            timing = plain_loop(images, False, args)
    except Exception as error:  # reported in the table; the other measurements go on
        return f"failed: {type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
    kernels = syncs = None
    if images.device.type == "cuda":
        try:
            kernels, syncs = plain_counts(images, args)
        except Exception as error:  # the table says n/a
            print(f"  plain loop, kernel and host sync counts failed: {type(error).__name__}: {error}", flush=True)
    return Measured([1 / timing.seconds_per_step], timing.gpu_busy, kernels, syncs)


def plain_counts(images: torch.Tensor, args: argparse.Namespace) -> tuple[float, float]:
    """CUDA kernels and host syncs per step of the plain loop: the difference between a profiled run of
    ``PLAIN_COUNT_STEPS`` steps and one of twice as many, so that the model's set-up, the warm-up step and the
    timing's syncs, in both, cancel."""
    totals = []
    for steps in (PLAIN_COUNT_STEPS, 2 * PLAIN_COUNT_STEPS):
        short = argparse.Namespace(**{**vars(args), "warmup": 1, "steps": steps, "profile_steps": 0})
        activities = [torch.profiler.ProfilerActivity.CUDA]
        with torch.profiler.profile(activities=activities) as profiler, counting_syncs() as caught:
            plain_loop(images, False, short)
        totals.append((kernel_launches(profiler), sync_count(caught)))
    (kernels, syncs), (more_kernels, more_syncs) = totals
    return (more_kernels - kernels) / PLAIN_COUNT_STEPS, (more_syncs - syncs) / PLAIN_COUNT_STEPS


def lever_settings(cfg: DictConfig, levers: list[str], ks: list[int]) -> list[tuple[str, Setting]]:
    """(lever, setting) for each lever asked for: one setting per K of steps_per_call."""
    settings = []
    if "steps_per_call" in levers:
        settings += [("steps_per_call", Setting((f"speed.steps_per_call={k}",), k)) for k in ks]
    if "bf16" in levers:
        settings.append(("bf16", Setting(("trainer.precision=bf16-mixed",))))
    if "compile" in levers:
        settings.append(("compile", Setting(("speed.compile=true",))))
    if "channels_last" in levers:
        settings.append(
            ("channels_last", Setting((f"speed.channels_last={str(not cfg.speed.channels_last).lower()}",)))
        )
    return settings


def combined(default: Outcome, results: list[tuple[str, Setting, Outcome]]) -> Setting | None:
    """The levers that beat the default config together (of steps_per_call the fastest K); None unless two did."""
    floor = default.total if isinstance(default, Measured) else 0.0
    best: dict[str, tuple[Setting, float]] = {}
    for lever, setting, outcome in results:
        if isinstance(outcome, Measured) and outcome.total > max(floor, best.get(lever, (None, 0.0))[1]):
            best[lever] = (setting, outcome.total)
    if len(best) < 2:
        return None
    chosen = [setting for setting, _ in best.values()]
    overrides = tuple(override for setting in chosen for override in setting.overrides)
    return Setting(overrides, max(setting.steps_per_call for setting in chosen))


def timed(plan: list[int], budget: Budget, measure: Callable[[float], Outcome]) -> tuple[Outcome, float | None]:
    """Measure with the window the budget leaves for ``plan``'s first measurement (which it takes off the plan)."""
    window = budget.window(plan)
    plan.pop(0)
    if window is None:
        return f"skipped: no time left within --budget-min {budget.minutes:g}", None
    return measure(window), window


def duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours:.0f} h ({hours / 24:.1f} days)"


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def results_name(device: torch.device) -> str:
    """``gpu_<short device name>``: gpu_h200, gpu_a100_sxm4_80gb, ...; gpu_cpu on the CPU."""
    if device.type != "cuda":
        return "gpu_cpu"
    return "gpu_" + re.sub(r"[^a-z0-9]+", "_", device_name(device).lower().replace("nvidia", "")).strip("_")


def counts(text: str, flag: str) -> list[int]:
    """Positive whole numbers separated by commas; a bad value exits naming ``flag``."""
    try:
        values = [int(value) for value in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        sys.exit(f"{flag} takes positive whole numbers separated by commas, not {text!r}.")
    return values


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda where there is one")
    parser.add_argument("--budget-min", type=float, default=8.0, help="the whole bench ends within this (minutes)")
    parser.add_argument("--runs-per-gpu", default=None, help="N of the runs-at-once rows (default 1,4,8,12; CPU 1,2)")
    parser.add_argument("--steps-per-call", default=None, help="K of the steps_per_call rows (default 8,32; CPU 4)")
    parser.add_argument(
        "--levers",
        default=None,
        help=f"levers to time, of {','.join(LEVERS)} (default all; on the CPU all but compile, which takes minutes)",
    )
    parser.add_argument("--output", type=Path, default=None, help="default bench/results/gpu_<device>.md")
    return parser.parse_args()


Row = tuple[str, Outcome, float | None]  # name, outcome, timed window (s)


def busy_text(busy: float | None) -> str:
    return f"{100 * busy:.0f}%" if busy is not None else "n/a"


def count_text(per_step: float | None) -> str:
    return f"{per_step:.3g}" if per_step is not None else "n/a"


def single_table(rows: list[Row], reference: float | None, flops: int, matmul: float) -> list[str]:
    headers = ["measurement", "steps/s", "ms/step", "vs as configured", "TFLOP/s", "of matmul", "GPU busy"]
    headers += ["kernels per step", "host syncs per step", "window s"]
    cells = []
    for name, outcome, window in rows:
        if isinstance(outcome, str):
            cells.append([name, outcome, *[""] * 8])
            continue
        rate = outcome.total
        achieved = flops * rate / 1e12
        cells.append(
            [
                name,
                rate,
                1000 / rate,
                f"{rate / reference:.2f}x" if reference else "n/a",
                achieved,
                f"{100 * achieved / matmul:.2f}%",
                busy_text(outcome.busy),
                count_text(outcome.kernels),
                count_text(outcome.syncs),
                round(window or 0.0, 1),
            ]
        )
    return markdown_table(headers, cells)


def table_seconds(n: int, outcome: Measured) -> float:
    """Seconds for the 36-run table in rounds of ``n`` runs at once, each run at the measured mean rate."""
    return math.ceil(TABLE_RUNS / n) * PAPER_STEPS / (outcome.total / n)


def group_table(groups: list[Row], alone: float | None) -> list[str]:
    """The runs-at-once table; ``alone``: the steps/s of one run that the totals are compared with."""
    headers = ["runs at once", "steps/s per run", "slowest run", "total steps/s", "total vs one run", "GPU busy"]
    headers += [f"{TABLE_RUNS} runs take", "window s"]
    cells = []
    for name, outcome, window in groups:
        if isinstance(outcome, str):
            cells.append([name, outcome, *[""] * 6])
            continue
        cells.append(
            [
                name,
                outcome.total / len(outcome.per_run),
                min(outcome.per_run),
                outcome.total,
                f"{outcome.total / alone:.2f}x" if alone else "n/a",
                busy_text(outcome.busy),
                duration(table_seconds(len(outcome.per_run), outcome)),
                round(window or 0.0, 1),
            ]
        )
    return markdown_table(headers, cells)


def projections(default: Outcome, best: tuple[Setting, Measured] | None, groups: list[Row]) -> list[str]:
    """Paper-length run and 36-run table times at the measured rates."""
    if best is None:
        return ["No lns.train setting was measured, so nothing is projected."]
    setting, outcome = best
    configured = ""
    if isinstance(default, Measured):
        configured = f"; as configured ({default.total:.4g} steps/s): {duration(PAPER_STEPS / default.total)}"
    lines = [
        f"- One paper-length run ({PAPER_STEPS:,} steps) at the best single-run rate ({outcome.total:.4g} steps/s, "
        f"lns.train {setting.label}): {duration(PAPER_STEPS / outcome.total)}{configured}.",
        f"- The {TABLE_RUNS}-run table (6 datasets x AE/VAE x 3 seeds) one run at a time at that rate: "
        f"{duration(TABLE_RUNS * PAPER_STEPS / outcome.total)}.",
    ]
    measured = [(len(o.per_run), o) for _, o, _ in groups if isinstance(o, Measured)]
    if measured:
        n, fastest = min(measured, key=lambda item: table_seconds(*item))
        lines.append(
            f"- The {TABLE_RUNS}-run table at the best rate of runs at once ({n} at once, {fastest.total:.4g} steps/s "
            f"in total; {math.ceil(TABLE_RUNS / n)} rounds of {n}): {duration(table_seconds(n, fastest))}."
        )
    lines.append("- Only the AE was timed; the VAE's step does the same convolutions plus the KL term.")
    return lines


@dataclass
class Measurements:
    """Everything the results file reports."""

    flops: int
    matmul: float
    rows: list[Row] = field(default_factory=list)  # one run each
    groups: list[Row] = field(default_factory=list)  # runs at once
    default: Outcome = "skipped"
    best: tuple[Setting, Measured] | None = None


def record(rows: list[Row], name: str, outcome: Outcome, window: float | None) -> Outcome:
    """Append a row, say it on the console and hand back the outcome."""
    rows.append((name, outcome, window))
    number = f"{outcome.total:.4g} steps/s" if isinstance(outcome, Measured) else outcome
    print(f"{name}: {number}", flush=True)
    return outcome


def measure_all(
    device: torch.device, cfg: DictConfig, budget: Budget, levers: list[str], ks: list[int], ns: list[int], work: Path
) -> Measurements:
    """Generate the data into ``work``, then measure in the order of the module's docstring."""
    sizes = budget.sizes
    singles = lever_settings(cfg, levers, ks)
    together = len({lever for lever, _ in singles}) > 1
    # The process count of every measurement to come (0: the plain loop, in this process), for the budget.
    plan = [0, 0, 1, *[1] * len(singles), *[1] * together, *ns]
    data_dir = work / "data"
    make_dataset(data_dir, sizes.train_images)
    images = torch.from_numpy(load_split(dataset_dir(data_dir, "kanizsa"), "train").images).to(device)
    if device.type == "cuda":
        set_tf32(bool(cfg.speed.tf32))  # the plain loop's float32 arithmetic is lns.train's
    found = Measurements(step_flops(images, cfg.model.z_dim, cfg.data.batch_size), matmul_tflops(device, sizes))
    for precision, name in (("32-true", "float32"), ("bf16-mixed", "bf16 autocast")):
        outcome, window = timed(plan, budget, partial(measure_plain, images, cfg, precision, sizes))
        record(found.rows, f"plain PyTorch loop, {name}", outcome, window)

    launcher = Launcher(cfg, device, data_dir, work / "runs", budget)
    settings: list[tuple[Setting, Outcome]] = []

    def one_run(name: str, setting: Setting) -> Outcome:
        measure = partial(launcher.measure, setting, 1, profile_steps=sizes.profile_steps)
        outcome = record(found.rows, name, *timed(plan, budget, measure))
        settings.append((setting, outcome))
        return outcome

    found.default = one_run("lns.train, as configured", Setting())
    results = [(lever, setting, one_run(f"lns.train, {setting.label}", setting)) for lever, setting in singles]
    if together and (levers_together := combined(found.default, results)):
        one_run(f"lns.train, levers together: {levers_together.label}", levers_together)
    elif together:
        plan.pop(0)
    measured = [(setting, outcome) for setting, outcome in settings if isinstance(outcome, Measured)]
    found.best = max(measured, key=lambda item: item[1].total, default=None)

    for n in ns:
        if found.best is None:
            plan.pop(0)
            record(found.groups, str(n), "skipped: no lns.train setting was measured", None)
            continue
        profile = sizes.profile_steps if n == 1 else 0
        measure = partial(launcher.measure, found.best[0], n, profile_steps=profile)
        record(found.groups, str(n), *timed(plan, budget, measure))
    return found


def what_was_measured(sizes: Sizes, where: str) -> list[str]:
    busy = (
        "GPU busy = the time some GPU kernel runs (torch.profiler, union of kernel intervals) per step, over "
        f"{sizes.profile_steps} steps (whole Lightning steps) after the timed window, divided by the unprofiled time "
        "per step; measured for the plain loops and for each lns.train process run alone. Kernels per step = the "
        "CUDA kernels (not memory copies or memsets) that torch.profiler saw in that window per optimizer step; for "
        f"the plain loops the difference between profiled runs of {PLAIN_COUNT_STEPS} and "
        f"{2 * PLAIN_COUNT_STEPS} steps, over {PLAIN_COUNT_STEPS}. Host syncs per step = the warnings of "
        '`torch.cuda.set_sync_debug_mode("warn")` (each a CUDA operation that made the host wait for the GPU: '
        "`.item()`, a copy to the CPU, ...) over the same window, inside the training process (Lightning's loop, "
        "lns's TrainingModule and callbacks), per optimizer step; for the plain loops over the same two runs."
        if where == "GPU"
        else "GPU busy, kernels per step and host syncs per step are not measured on the CPU (n/a). With --device "
        "cpu the sizes are small (windows of a few "
        "seconds, a few steps each): the file checks the command end to end, it does not measure the CPU "
        "(bench/train_speed.py and bench/precision.py do)."
    )
    return [
        "Training steps per second of the paper's AE on 64x64 images. The plain PyTorch loop is "
        "`bench/train_speed.py`'s, run in this process without Lightning, with the config's channels_last and "
        "float32 arithmetic (speed.tf32). Every lns.train row is a `run_train.py` process of the default config (CSV "
        "logger, validation, checkpoints, figures and the health probe at their intervals; no progress bar) with the "
        "overrides it names; a `speed.steps_per_call=K` row also rounds every step interval (logging, validation, "
        'checkpoints, figures, health, finite-loss check) up to a multiple of K. "levers together" sets every '
        "lever that beat the default config (of steps_per_call the fastest K).",
        "",
        "A callback in each process counts optimizer steps (a hook on the optimizer) and every half second, after a "
        "device sync, records them with the time. The timed window starts once every process of a measurement is "
        f"past its warm-up (max({sizes.warmup_steps}, K) steps, rounded up to a multiple of K) and lasts what the "
        "budget leaves (window s); its steps are interpolated from the records. Runs at once: N processes of the "
        f"fastest setting on one {where}, each with 1/N of the CPU threads, over one common window; total = the sum "
        "of their steps/s.",
        "",
        "TFLOP/s = the counted FLOPs of one step (convolutions and matrix products of the forward and backward pass; "
        'Adam and GECO\'s update not counted) x steps/s; "of matmul" compares it with the matrix product rate '
        f"above. {busy}",
    ]


def report(
    found: Measurements, device: torch.device, cfg: DictConfig, args: argparse.Namespace, budget: Budget
) -> None:
    """Write the results file."""
    sizes = budget.sizes
    where = "GPU" if device.type == "cuda" else "CPU"
    default_rate = found.default.total if isinstance(found.default, Measured) else None
    best = found.best
    one = [outcome for name, outcome, _ in found.groups if name == "1" and isinstance(outcome, Measured)]
    alone = (one or [best[1] if best else None])[0]
    sections = [
        "## What was measured",
        "",
        *what_was_measured(sizes, where),
        "",
        "## One run",
        "",
        *single_table(found.rows, default_rate, found.flops, found.matmul),
        "",
        f"## Runs at once on one {where}",
        "",
        f"N processes of the fastest lns.train setting above ({best[0].label if best else 'none'}) at once; total vs "
        "one run: against N = 1 (or, without it, that setting's row above).",
        "",
        *group_table(found.groups, alone.total if alone else None),
        "",
        "## Projections",
        "",
        *projections(found.default, best, found.groups),
    ]
    matmul_note = "" if device.type == "cuda" else " (float32: the CPU's own rate, not a GPU's bfloat16 one)"
    dtype = str(sizes.matmul_dtype).removeprefix("torch.")
    settings = {
        "device": f"{device_name(device)} ({device.type})",
        "software": f"torch {torch.__version__}, PyTorch Lightning {pl.__version__}",
        "data": f"{sizes.train_images} dKanizsa training images (64x64) and 8 validation images, generated into a "
        "temporary folder",
        "model": f"AE, z_dim {cfg.model.z_dim}, GECO, Adam, batch {cfg.data.batch_size}; one step's forward and "
        f"backward pass: {found.flops / 1e9:.1f} GFLOP (torch.utils.flop_counter)",
        "matmul rate": f"{sizes.matmul_size}x{sizes.matmul_size} {dtype} matrix product: {found.matmul:.3g} TFLOP/s"
        + matmul_note,
        "budget": f"--budget-min {args.budget_min:g}; the bench took {time.time() - budget.started:.0f} s",
    }
    title = "Training speed on one device: plain loop, lns.train and its levers, runs at once"
    write_results(results_name(device), title, settings, sections, output=args.output)


def main() -> None:
    args = parse_args()
    device = pick_device(args.device)
    sizes = SIZES[device.type]
    budget = Budget(sizes, args.budget_min)
    ks = counts(args.steps_per_call or sizes.steps_per_call, "--steps-per-call")
    ns = counts(args.runs_per_gpu or sizes.runs_per_gpu, "--runs-per-gpu")
    levers = (args.levers or sizes.levers).split(",")
    if unknown := set(levers) - set(LEVERS):
        sys.exit(f"--levers: unknown {', '.join(sorted(unknown))}; choose from {','.join(LEVERS)}.")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"trainer={'gpu' if device.type == 'cuda' else 'cpu'}"])
    with tempfile.TemporaryDirectory(prefix="lns-gpu-bench-") as work:
        found = measure_all(device, cfg, budget, levers, ks, ns, Path(work))
    report(found, device, cfg, args, budget)


if __name__ == "__main__":
    main()
