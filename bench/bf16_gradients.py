"""Where bf16-mixed training departs from float32: the gradient error of each layer under bfloat16 autocast, set
against the minibatch noise that float32 training lives with anyway.

    python bench/bf16_gradients.py --data-dir <data> --dataset illusory_occlusion   # -> bench/results/bf16_gradients.md

The script trains the quick-start recipe in float32 (plain loop: AE, Adam, batch 64, decoder started at the mean
colour) and, at each step of ``--at``, takes the reconstruction gradient of a fixed set of training batches twice
on the same weights: in float32, and under ``torch.autocast(bfloat16)`` as ``trainer.precision=bf16-mixed`` runs
it. Per layer it reports

- ``bf16 error``: mean over batches of |g_bf16 - g_32| / |g_32|;
- ``along``: mean of <g_bf16 - g_32, g_32> / |g_32|^2, the part of the error along the true gradient (negative:
  bf16 shrinks the step, a systematic slow-down; near 0: the error is noise);
- ``batch noise``: mean over batches of |g_32(batch) - mean g_32| / |mean g_32|, the spread between minibatches.

A bf16 error far below the batch noise and an ``along`` near zero mean the bf16 gradients are as good as float32's
for stochastic training; a layer where either is not so is where bfloat16 loses precision that matters.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import markdown_table, pick_device, write_results
from torch import Tensor, nn

from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.models import Autoencoder
from lns.objectives import reconstruction_error
from lns.training.output_bias import mean_colour_logits, output_layer

FLOAT32_CHOICES = ("none", "linear", "output", "input-output")


def float32_modules(model: Autoencoder, which: str) -> list[nn.Module]:
    """The layers ``--float32-layers`` names: none, the linear bottleneck, the decoder's output layer, or the
    encoder's input layer and the decoder's output layer."""
    if which == "linear":
        return [module for module in model.modules() if isinstance(module, nn.Linear)]
    if which == "output":
        return [output_layer(model)]
    if which == "input-output":
        return [model.encoder[0], output_layer(model)]
    return []


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


def keep_in_float32(modules: list[nn.Module]) -> None:
    """Run ``modules`` in float32 under autocast (the input cast up, autocast off inside)."""
    for module in modules:
        forward = module.forward

        def float32_forward(x: Tensor, forward=forward) -> Tensor:
            with torch.autocast(x.device.type, enabled=False):
                return forward(x.float())

        module.forward = float32_forward


def with_total(gradients: dict[str, Tensor]) -> dict[str, Tensor]:
    """``gradients`` plus an ``all parameters`` entry."""
    return {**gradients, "all parameters": torch.cat(list(gradients.values()))}


def gradient_rows(model: nn.Module, batches: list[Tensor], step: int) -> list[list[object]]:
    """bf16 error, its part along the gradient, and the minibatch noise of every layer at the model's weights."""
    full = [with_total(layer_gradients(model, batch, bf16=False)) for batch in batches]
    half = [with_total(layer_gradients(model, batch, bf16=True)) for batch in batches]
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
    parser.add_argument(
        "--float32-layers",
        choices=FLOAT32_CHOICES,
        default="none",
        help="layers kept in float32 under autocast (to test where bfloat16 loses precision)",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    device = pick_device(args.device)
    images = torch.from_numpy(load_split(dataset_dir(args.data_dir, args.dataset), "train").images).to(device)
    torch.manual_seed(args.seed)
    model = Autoencoder().to(device)
    keep_in_float32(float32_modules(model, args.float32_layers))
    with torch.no_grad():
        output_layer(model).bias.copy_(mean_colour_logits(images))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    held = torch.randperm(len(images), device=device)[: args.batches * args.batch_size]
    batches = list(images[held].split(args.batch_size))

    rows, done, recon_at = [], 0, {}
    for step in sorted(int(s) for s in args.at.split(",")):
        recon_at[step] = train_steps(model, optimizer, images, range(done, step), args.batch_size)
        done = step
        rows += gradient_rows(model, batches, step)
        print(f"step {step}: compared", flush=True)

    table = markdown_table(["step", "layer", "bf16 error", "along", "batch noise"], rows)
    recon = ", ".join(f"{step}: {value:.1f}" for step, value in recon_at.items() if step)
    write_results(
        "bf16_gradients",
        "bf16-mixed against float32: gradient error per layer",
        {
            "training": f"float32 quick-start recipe on {args.dataset} (AE, Adam lr {args.lr}, batch "
            f"{args.batch_size}, mean-colour start, seed {args.seed}); train recon at the steps: {recon}",
            "gradients": f"reconstruction error, {args.batches} fixed training batches of {args.batch_size}",
            "layers kept in float32 under bf16": args.float32_layers,
        },
        table,
        output=args.output,
    )


if __name__ == "__main__":
    main()
