"""Exact segmentation on a GPU: the same checkpoint segmented on the device and on the CPU, with TF32 on and off.

    python bench/gpu_exact.py --device cuda                       # trains the quick start on the GPU first
    python bench/gpu_exact.py --device cpu --run-dir <run> --data-dir <data> --images 30

Without ``--run-dir`` it generates dKanizsa into a temporary folder (or uses ``--data-dir``) and trains the quick-start
preset on ``--device`` (``run_train.py experiment=quickstart``). Then it segments the first ``--images`` test
images of that checkpoint with latent noise (sigma=1e-3, T=40, ward, the paper's settings):

- on the device through ``lns.segment_images`` (lns's own path: IEEE float32, whatever the caller set);
- on the device with real TF32 inside every decode (a model wrapper that switches TF32 on around ``decode``, the
  way a GPU runs float32 convolutions by default; on a CPU TF32 does not exist and the row is left out);
- on the device with TF32 simulated (every convolution's and linear layer's inputs and weights rounded to 10 mantissa
  bits, lns.models.float32.tf32_rounding), which runs anywhere;
- on the CPU through ``lns.segment_images``.

Each row gives the mean ARI against the masks, ``health.resolution`` on the first 16 images (1 = the arithmetic
resolves the noise), whether ``lns.PrecisionWarning`` fired, and the ARI between its labels and the CPU's. Writes
``bench/results/gpu_exact.md`` (``gpu_exact_cpu.md`` for ``--device cpu``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch
from common import REPO, RESULTS_DIR, markdown_table, pick_device, write_results
from torch import Tensor, nn

import lns
from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.models.float32 import apply_float32_settings, float32_settings, set_tf32, tf32_rounding
from lns.segmentation.health import measure_signal
from lns.segmentation.source import load_source

NOISE_STD = 1e-3
PERTURBATIONS = 40
HEALTH_IMAGES = 16


class TF32Inside(nn.Module):
    """``model`` with TF32 switched on around every ``decode``: what a GPU does to float32 unless told otherwise."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.decodes_logits = getattr(model, "decodes_logits", False)

    def encode(self, images: Tensor) -> Tensor | tuple[Tensor, Tensor | None]:
        return self.model.encode(images)

    def decode(self, latent: Tensor) -> Tensor:
        saved = float32_settings()
        set_tf32(True)
        try:
            return self.model.decode(latent)
        finally:
            apply_float32_settings(saved)


def train_quickstart(device: torch.device, data_dir: Path, out_dir: Path, steps: int) -> Path:
    """Train the quick-start preset on ``device`` (``run_train.py``, as a user would) and return its run directory."""
    trainer = "gpu" if device.type == "cuda" else "cpu"
    run_dir = out_dir / "train"
    command = [
        sys.executable,
        str(REPO / "run_train.py"),
        "experiment=quickstart",
        f"trainer={trainer}",
        f"trainer.max_steps={steps}",
        f"paths.data_dir={data_dir}",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    subprocess.run(command, cwd=REPO, check=True)
    return run_dir


def generate_kanizsa(data_dir: Path) -> None:
    """dKanizsa with the quick start's sizes, into ``data_dir``."""
    command = [sys.executable, "-m", "data_gen", "dataset=kanizsa", f"paths.data_dir={data_dir}"]
    sizes = ["n_train=3000", "n_valid=300", "n_test=100", f"hydra.run.dir={data_dir / 'generate'}"]
    subprocess.run([*command, *sizes], cwd=REPO, check=True)


def segment_row(
    name: str,
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    around: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> tuple[str, Tensor, float, float, bool]:
    """(name, labels, mean ARI, resolution, warned) of ``model`` on ``images``, inside ``around()``."""
    counts = [int(torch.unique(mask).numel()) for mask in masks]
    with warnings.catch_warnings(record=True) as caught, around():
        warnings.simplefilter("always", lns.PrecisionWarning)
        labels = lns.segment_images(
            model, images, n_clusters=counts, noise_std=NOISE_STD, perturbations=PERTURBATIONS
        ).labels
        stats = measure_signal(model, images[:HEALTH_IMAGES], std=NOISE_STD, perturb_num=4, seed=0, zero_atol=0.0)
    warned = any(issubclass(w.category, lns.PrecisionWarning) for w in caught)
    ari = float(lns.adjusted_rand_index(labels, masks).mean())
    print(f"{name}: ARI {ari:.3f}, resolution {stats['resolution']:.3f}, PrecisionWarning {warned}", flush=True)
    return name, labels, ari, stats["resolution"], warned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda where there is one)")
    parser.add_argument("--run-dir", type=Path, default=None, help="a trained run (default: train the quick start)")
    parser.add_argument("--data-dir", type=Path, default=None, help="datasets folder (default: generate dKanizsa)")
    parser.add_argument("--steps", type=int, default=1400, help="training steps when training here")
    parser.add_argument("--images", type=int, default=100, help="test images to segment")
    parser.add_argument("--out", type=Path, default=None, help="results file")
    args = parser.parse_args()
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or Path(scratch) / "data"
        if args.data_dir is None:
            generate_kanizsa(data_dir)
        run_dir = args.run_dir or train_quickstart(device, data_dir, Path(scratch), args.steps)
        model = lns.load_model(run_dir)
        dataset = load_source(run_dir, None).dataset
        split = load_split(dataset_dir(data_dir, dataset, model.image_size), "test", name=dataset, data_dir=data_dir)
        if not 0 < args.images <= len(split.images):
            sys.exit(f"--images must be 1..{len(split.images)} for {dataset}.")
        images = torch.from_numpy(split.images[: args.images])
        masks = torch.from_numpy(split.masks[: args.images]).long()

        rows = [segment_row("CPU, lns (IEEE float32)", model, images, masks)]
        on_device = model.to(device)
        if device.type != "cpu":
            rows.append(segment_row(f"{device.type}, lns (IEEE float32)", on_device, images, masks))
            rows.append(segment_row(f"{device.type}, TF32 inside decode", TF32Inside(on_device), images, masks))
        rows.append(
            segment_row(
                f"{device.type}, TF32 simulated (10-bit rounding)",
                on_device,
                images,
                masks,
                lambda: tf32_rounding(on_device),
            )
        )
    reference = rows[0][1]
    table = markdown_table(
        ["segmentation", "ARI", "health.resolution", "PrecisionWarning", "ARI to the CPU's labels"],
        [
            [name, ari, resolution, "yes" if warned else "no", float(lns.adjusted_rand_index(labels, reference).mean())]
            for name, labels, ari, resolution, warned in rows
        ],
    )
    name = "gpu_exact" if device.type == "cuda" else f"gpu_exact_{device.type}"
    write_results(
        name,
        "Exact segmentation on every device: one checkpoint on the device and on the CPU, TF32 on and off",
        {
            "model": f"{run_dir}" + (" (trained here)" if args.run_dir is None else ""),
            "dataset": f"{dataset}, first {len(images)} test images",
            "segmentation": f"latent noise sigma={NOISE_STD:g}, T={PERTURBATIONS}, ward, n_clusters from the masks",
            "health.resolution": f"median over the first {min(HEALTH_IMAGES, len(images))} images, 1 = exact",
        },
        table,
        notes=[
            "ARI to the CPU's labels: the mean ARI between a row's label maps and the CPU row's (1 = the same "
            "partition of every image). The TF32 rows bypass lns's own float32 switch to show what it prevents.",
            f"Label sets identical to the CPU's: {sum(bool(np.array_equal(r[1], reference)) for r in rows)} of "
            f"{len(rows)} rows.",
        ],
        output=args.out or RESULTS_DIR / f"{name}.md",
    )


if __name__ == "__main__":
    main()
