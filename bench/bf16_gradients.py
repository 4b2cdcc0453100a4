"""Where bf16-mixed training departs from float32: the gradient error of each layer under bfloat16 autocast, set
against the minibatch noise that float32 training lives with anyway.

    python bench/bf16_gradients.py --data-dir <data> --dataset illusory_occlusion   # -> bench/results/bf16_gradients.md

The script trains the quick-start recipe in float32 (plain loop: AE, Adam, batch 64, decoder started at the mean
colour) and, at each step of ``--at``, takes the reconstruction gradient of a fixed set of training batches twice
on the same weights: in float32, and under ``torch.autocast(bfloat16)`` as ``trainer.precision=bf16-mixed`` runs
it. Per layer it reports

- ``bf16 error``: mean over batches of |g_bf16 - g_32| / |g_32|;
- ``along``: mean of <g_bf16 - g_32, g_32> / |g_32|^2, the part of the error along the true gradient (negative:
  bf16 shortens the gradient, a bias; near 0: the error is noise);
- ``batch noise``: mean over batches of |g_32(batch) - mean g_32| / |mean g_32|, the spread between minibatches.

A bf16 error far below the batch noise and an ``along`` near zero mean the bf16 gradients are as good as float32's
for stochastic training; a layer where either is not so is where bfloat16 loses precision that matters. At step
``--ablate-at`` one part of the network at a time is run in float32 under autocast: the part whose float32 run
removes the error is where bfloat16 loses it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from common import markdown_table, pick_device, write_results
from torch import Tensor, nn

from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.models import Autoencoder
from lns.objectives import reconstruction_error
from lns.training.output_bias import output_layer, start_at_mean_colour

LATENT_LAYER = "encoder.15"


def float32_parts(model: Autoencoder) -> dict[str, list[nn.Module]]:
    """The parts of the network the ablation runs in float32 under autocast, one at a time."""
    linear = [module for module in model.modules() if isinstance(module, nn.Linear)]
    entry = model.decoder[5]
    return {
        "none (plain bf16-mixed)": [],
        "the encoder": [model.encoder],
        "the decoder": [model.decoder],
        "the 1x1 bottleneck (4x4 -> 1x1 conv, linears, 1x1 -> 4x4 convT)": [model.encoder[10], *linear, entry],
        "the linear layers": linear,
        "the decoder's output layer": [output_layer(model)],
        "the encoder's input layer and the decoder's output layer": [model.encoder[0], output_layer(model)],
    }


@contextmanager
def float32_inside(modules: list[nn.Module]) -> Iterator[None]:
    """Run ``modules`` in float32 under autocast (input cast up, autocast off inside) while the context lasts."""
    for module in modules:

        def float32_forward(x: Tensor, forward: Callable[[Tensor], Tensor] = module.forward) -> Tensor:
            with torch.autocast(x.device.type, enabled=False):
                return forward(x.float())

        module.forward = float32_forward
    try:
        yield
    finally:
        for module in modules:
            del module.forward


def layer_gradients(model: nn.Module, images: Tensor, bf16: bool) -> dict[str, Tensor]:
    """The reconstruction error's gradient, flattened per layer (weight and bias together), in float32."""
    model.zero_grad(set_to_none=True)
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits, _, _ = model(images)
        recon = reconstruction_error(logits, images)
    recon.backward()
    grouped: dict[str, list[Tensor]] = {}
    for name, parameter in model.named_parameters():
        grouped.setdefault(name.rsplit(".", 1)[0], []).append(parameter.grad.detach().float().flatten())
    return {layer: torch.cat(parts) for layer, parts in grouped.items()}


def with_total(gradients: dict[str, Tensor]) -> dict[str, Tensor]:
    """``gradients`` plus an ``all parameters`` entry."""
    return {**gradients, "all parameters": torch.cat(list(gradients.values()))}


def batch_gradients(model: nn.Module, batches: list[Tensor], bf16: bool) -> list[dict[str, Tensor]]:
    """Each batch's per-layer gradients (with the ``all parameters`` entry), in float32 or under bf16 autocast."""
    return [with_total(layer_gradients(model, batch, bf16=bf16)) for batch in batches]


def comparison_rows(full: list[dict[str, Tensor]], half: list[dict[str, Tensor]], step: int) -> list[list[object]]:
    """Per layer: mean bf16 error, mean error along the gradient, mean minibatch noise."""
    rows = []
    for layer in full[0]:
        exact = [g[layer] for g in full]
        errors = [h[layer] - g for h, g in zip(half, exact, strict=True)]
        relative = torch.stack([e.norm() / g.norm() for e, g in zip(errors, exact, strict=True)])
        along = torch.stack([(e @ g) / (g @ g) for e, g in zip(errors, exact, strict=True)])
        mean = torch.stack(exact).mean(dim=0)
        noise = torch.stack([(g - mean).norm() / mean.norm() for g in exact])
        rows.append([step, layer, float(relative.mean()), float(along.mean()), float(noise.mean())])
    return rows


def ablation_rows(model: Autoencoder, batches: list[Tensor], full: list[dict[str, Tensor]]) -> list[list[object]]:
    """For each part of the network kept in float32: the bf16 error and its part along the gradient (against the
    float32 gradients ``full``), for the encoder's last layer (the latent) and for all parameters."""
    rows = []
    for part, modules in float32_parts(model).items():
        with float32_inside(modules):
            half = batch_gradients(model, batches, bf16=True)
        compared = {row[1]: row for row in comparison_rows(full, half, 0)}
        latent, everything = compared[LATENT_LAYER], compared["all parameters"]
        rows.append([part, latent[2], latent[3], everything[2], everything[3]])
    return rows


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, steps: range, batch: int) -> float:
    """Float32 quick-start steps on shuffled batches; the last step's reconstruction error."""
    recon = torch.tensor(float("nan"))
    for _ in steps:
        index = torch.randint(len(images), (batch,), device=images.device)
        logits, _, _ = model(images[index])
        recon = reconstruction_error(logits, images[index])
        optimizer.zero_grad(set_to_none=True)
        recon.backward()
        optimizer.step()
    return float(recon.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--dataset", default="illusory_occlusion")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--at", default="0,100,300,500,700,1400", help="steps at which to compare the gradients")
    parser.add_argument("--batches", type=int, default=8, help="fixed training batches the gradients are taken on")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4, help="the quick-start rate")
    parser.add_argument("--ablate-at", type=int, default=100, help="step of the float32-part ablation")
    parser.add_argument("--device", default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    device = pick_device(args.device)
    images = torch.from_numpy(load_split(dataset_dir(args.data_dir, args.dataset), "train").images).to(device)
    torch.manual_seed(args.seed)
    model = Autoencoder().to(device)
    start_at_mean_colour(model, images)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    held = torch.randperm(len(images), device=device)[: args.batches * args.batch_size]
    batches = list(images[held].split(args.batch_size))

    rows, ablation, done, recon_at = [], [], 0, {}
    for step in sorted({*(int(s) for s in args.at.split(",")), args.ablate_at}):
        recon_at[step] = train_steps(model, optimizer, images, range(done, step), args.batch_size)
        done = step
        full = batch_gradients(model, batches, bf16=False)
        rows += comparison_rows(full, batch_gradients(model, batches, bf16=True), step)
        if step == args.ablate_at:
            ablation = ablation_rows(model, batches, full)
        print(f"step {step}: compared", flush=True)

    table = [
        "## Per layer, along training",
        "",
        *markdown_table(["step", "layer", "bf16 error", "along", "batch noise"], rows),
        "",
        f"## Step {args.ablate_at}: one part of the network kept in float32 under bf16-mixed",
        "",
        *markdown_table(
            ["kept in float32", "latent layer: bf16 error", "along", "all parameters: bf16 error", "along"],
            ablation,
        ),
    ]
    recon = ", ".join(f"{step}: {value:.1f}" for step, value in recon_at.items() if step)
    write_results(
        "bf16_gradients",
        "bf16-mixed against float32: gradient error per layer",
        {
            "training": f"float32 quick-start recipe on {args.dataset} (AE, Adam lr {args.lr}, batch "
            f"{args.batch_size}, mean-colour start, seed {args.seed}); train recon at the steps: {recon}",
            "gradients": f"reconstruction error, {args.batches} fixed training batches of {args.batch_size}",
        },
        table,
        output=args.output,
    )


if __name__ == "__main__":
    main()
