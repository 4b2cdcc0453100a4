"""Training speed: steps/s of a plain PyTorch loop and of the real Lightning path, AE and VAE with GECO.

    python bench/train_speed.py                                  # CPU (the GPU when there is one)
    python bench/train_speed.py --device cuda --precision bf16-mixed --channels-last --compile

Both paths do the same work per step: a batch sampled from the training images held in memory on the
device, forward, reconstruction error (+ KL), the GECO loss, backward, Adam, GECO's beta update. The plain
loop is written out here; the Lightning path is ``lns.train.train`` itself (NpzDataModule, TrainingModule,
default callbacks, CSV logger every 50 steps, no progress bar) with a timing callback added, on a dKanizsa
training set generated into a temporary folder. Warm-up steps are excluded; the paths alternate over
``--repeats`` rounds and each reports its fastest round, which shields the ratio from other load on the
machine. On a GPU a profiled window after the timed one gives the share of wall time the GPU runs kernels.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from common import REPO, markdown_table, pick_device, synchronize, write_results
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from torch import Tensor

from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.models import Autoencoder
from lns.objectives import GecoObjective, kl_divergence, reconstruction_error
from lns.train import train

PRECISIONS = ("32-true", "bf16-mixed")


@dataclass(frozen=True)
class StepTiming:
    seconds_per_step: float
    gpu_busy: float | None


RECORDS: list[StepTiming] = []
"""Timings that StepTimer callbacks hand back from inside ``train``."""


def gpu_kernel_seconds(profiler: torch.profiler.profile) -> float:
    """Seconds in which at least one GPU kernel or copy ran (union of their intervals) in a profiled window."""
    spans = sorted(
        (event.time_range.start, event.time_range.end)
        for event in profiler.events()
        if event.device_type == torch.autograd.DeviceType.CUDA
    )
    busy, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy / 1e6


class StepTimer(pl.Callback):
    """Times steps ``warmup .. warmup + steps`` of a Lightning fit, then profiles ``profile_steps`` more."""

    def __init__(self, warmup: int, steps: int, profile_steps: int = 0) -> None:
        self.warmup = warmup
        self.steps = steps
        self.profile_steps = profile_steps
        self.started = 0.0
        self.seconds_per_step = 0.0
        self.profiler: torch.profiler.profile | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        step = trainer.global_step
        if step not in (self.warmup, self.warmup + self.steps, self.warmup + self.steps + self.profile_steps):
            return
        synchronize(pl_module.device)
        now = time.perf_counter()
        if step == self.warmup:
            self.started = now
            return
        if step == self.warmup + self.steps:
            self.seconds_per_step = (now - self.started) / self.steps
            if self.profile_steps:
                self.profiler = start_profiler()
                return
        self._finish()

    def _finish(self) -> None:
        busy = None
        if self.profiler is not None:
            self.profiler.stop()
            busy = gpu_kernel_seconds(self.profiler) / self.profile_steps / self.seconds_per_step
        RECORDS.append(StepTiming(self.seconds_per_step, busy))


def start_profiler() -> torch.profiler.profile:
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    profiler = torch.profiler.profile(activities=activities)
    profiler.start()
    return profiler


def step_batches(images: Tensor, batch_size: int) -> Iterator[Tensor]:
    """Shuffled batches of ``images`` on their own device, a new permutation every epoch, forever."""
    epoch = 0
    while True:
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(epoch)).to(images.device)
        for start in range(0, len(images) - batch_size + 1, batch_size):
            yield images[order[start : start + batch_size]]
        epoch += 1


def plain_loop(images: Tensor, variational: bool, args: argparse.Namespace) -> StepTiming:
    """The same training work written as a bare PyTorch loop; timed like the Lightning path."""
    device = images.device
    torch.manual_seed(0)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = Autoencoder(z_dim=args.z_dim, variational=variational).to(device, memory_format=memory_format)
    objective = GecoObjective(image_shape=tuple(images.shape[1:])).to(device)
    if args.compile:
        model.compile()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-5, betas=(0.9, 0.999))
    bf16 = args.precision == "bf16-mixed"
    batches = step_batches(images, args.batch_size)

    def step(index: int) -> None:
        batch = next(batches)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits, mu, logvar = model(batch.contiguous(memory_format=memory_format))
            recon = reconstruction_error(logits, batch)
            kl = kl_divergence(mu, logvar) if logvar is not None else None
            loss = objective(recon, kl, index)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        objective.update(recon.detach())

    return time_steps(step, device, args)


def time_steps(step: Callable[[int], None], device: torch.device, args: argparse.Namespace) -> StepTiming:
    for index in range(args.warmup):
        step(index)
    synchronize(device)
    started = time.perf_counter()
    for index in range(args.warmup, args.warmup + args.steps):
        step(index)
    synchronize(device)
    seconds_per_step = (time.perf_counter() - started) / args.steps
    busy = None
    if args.profile_steps:
        profiler = start_profiler()
        for index in range(args.profile_steps):
            step(args.warmup + args.steps + index)
        synchronize(device)
        profiler.stop()
        busy = gpu_kernel_seconds(profiler) / args.profile_steps / seconds_per_step
    return StepTiming(seconds_per_step, busy)


def lightning_path(data_dir: Path, variational: bool, args: argparse.Namespace, device: torch.device) -> StepTiming:
    """``lns.train.train`` with the default callbacks and CSV logger, plus a StepTimer."""
    overrides = [
        "data=kanizsa",
        f"model={'vae' if variational else 'ae'}",
        "objective=geco",
        "logger=csv",
        f"trainer={'gpu' if device.type == 'cuda' else 'cpu'}",
        f"trainer.max_steps={args.warmup + args.steps + args.profile_steps + 1}",
        f"trainer.precision={args.precision}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.limit_val_batches=0",
        f"data.batch_size={args.batch_size}",
        f"model.z_dim={args.z_dim}",
        f"paths.data_dir={data_dir}",
        f"speed.channels_last={args.channels_last}",
        f"speed.compile={args.compile}",
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with tempfile.TemporaryDirectory(prefix="lns-train-speed-") as run_dir, open_dict(cfg):
        cfg.paths.root_dir = str(REPO)
        cfg.paths.output_dir = run_dir
        cfg.callbacks.step_timer = {
            "_target_": f"{StepTimer.__module__}.StepTimer",
            "warmup": args.warmup,
            "steps": args.steps,
            "profile_steps": args.profile_steps,
        }
        before = len(RECORDS)
        train(cfg)
        if len(RECORDS) != before + 1:
            sys.exit("The Lightning run ended before the timed window was complete.")
        return RECORDS[-1]


def make_dataset(data_dir: Path, n_train: int) -> None:
    command = [
        sys.executable,
        "-m",
        "data_gen",
        "dataset=kanizsa",
        f"n_train={n_train}",
        "n_valid=8",
        "n_test=4",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={data_dir / 'hydra'}",
    ]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 60 CPU, 1000 GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 5 CPU, 50 GPU)")
    parser.add_argument("--profile-steps", type=int, default=None, help="GPU busy window (default 0 CPU, 50 GPU)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds; the fastest counts")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--z-dim", type=int, default=15)
    parser.add_argument("--train-images", type=int, default=2048, help="training images in memory")
    parser.add_argument("--models", nargs="+", default=["ae", "vae"], choices=["ae", "vae"])
    parser.add_argument("--precision", default="32-true", choices=PRECISIONS)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="results file (default bench/results/...)")
    args = parser.parse_args()
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    args.steps = args.steps or (1000 if gpu else 60)
    args.warmup = args.warmup if args.warmup is not None else (50 if gpu else 5)
    args.profile_steps = args.profile_steps if args.profile_steps is not None else (50 if gpu else 0)
    if args.train_images < args.batch_size:
        sys.exit("--train-images must be at least --batch-size.")

    rows = []
    with tempfile.TemporaryDirectory(prefix="lns-train-data-") as tmp:
        data_dir = Path(tmp)
        make_dataset(data_dir, args.train_images)
        images = torch.from_numpy(load_split(dataset_dir(data_dir, "kanizsa"), "train").images).to(device)
        for name in args.models:
            variational = name == "vae"
            plain, lightning = [], []
            for _ in range(args.repeats):
                plain.append(plain_loop(images, variational, args))
                lightning.append(lightning_path(data_dir, variational, args, device))
                print(
                    f"{name}: plain {1 / plain[-1].seconds_per_step:.2f} steps/s, "
                    f"lightning {1 / lightning[-1].seconds_per_step:.2f} steps/s",
                    flush=True,
                )
            best_plain = min(plain, key=lambda t: t.seconds_per_step)
            best_lightning = min(lightning, key=lambda t: t.seconds_per_step)
            overhead = best_lightning.seconds_per_step / best_plain.seconds_per_step - 1
            for path, timing in (("plain PyTorch loop", best_plain), ("Lightning (lns.train)", best_lightning)):
                rows.append(
                    (
                        name.upper(),
                        path,
                        1 / timing.seconds_per_step,
                        1000 * timing.seconds_per_step,
                        f"{100 * overhead:+.1f}%" if timing is best_lightning else "",
                        f"{100 * timing.gpu_busy:.0f}%" if timing.gpu_busy is not None else "n/a",
                    )
                )

    headers = ["model", "path", "steps/s", "ms/step", "Lightning overhead", "GPU busy"]
    table = markdown_table(headers, rows)
    settings = {
        "device": f"{device} ({torch.cuda.get_device_name(device) if gpu else 'CPU'})",
        "settings": f"batch {args.batch_size}, 64x64, z_dim {args.z_dim}, GECO, Adam; precision "
        f"{args.precision}, channels_last {args.channels_last}, compile {args.compile}",
        "timing": f"{args.steps} timed steps after {args.warmup} warm-up steps, fastest of {args.repeats} "
        f"alternating rounds; {args.train_images} dKanizsa training images held on the device",
    }
    notes = [
        "Lightning overhead = Lightning time per step / plain time per step - 1 (goal on CPU: below 5%).",
        "GPU busy = time some GPU kernel runs (torch.profiler, union of kernel intervals) over a window of "
        f"{args.profile_steps} steps after the timed ones / their unprofiled wall time.",
    ]
    write_results("train_speed", "Training speed", settings, table, notes, args.output)


if __name__ == "__main__":
    main()
