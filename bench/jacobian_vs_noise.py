"""Jacobian features against latent noise: ARI and seconds per image on one trained model.

    python bench/jacobian_vs_noise.py --run-dir outputs/train/<run> --data-dir data
    python bench/jacobian_vs_noise.py --ckpt authors.pth --dataset kanizsa --data-dir data --images 20

For method=jacobian (decoder Jacobian at the latent mean, the noise-free limit of LNS) and for
method=noise at each T in --perturb-nums (one row per T, --seeds noise seeds each), every test image is
segmented with exact ward into as many clusters as its mask has labels. Feature and clustering seconds are
measured separately; ARI is averaged over images, then its mean and spread over the seeds are reported.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import (
    Score,
    add_model_and_split_arguments,
    markdown_table,
    model_and_split,
    pick_device,
    score_in_batches,
    write_results,
)
from torch import Tensor

from lns.segmentation.clustering import WardClustering
from lns.segmentation.features import image_generators, jacobian_features, noise_features

FeatureFn = Callable[[Tensor, list[int]], Tensor]
"""(latent means (B, z), image indices) -> pixel features (B, N, D)."""


def evaluate(features_of: FeatureFn, means: Tensor, masks: Tensor, clusterer: WardClustering, batch_size: int) -> Score:
    """Segment every image in batches; mean ARI (and foreground ARI) and seconds per image."""
    return score_in_batches(lambda index: features_of(means[index], index), masks, clusterer, batch_size, means.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_and_split_arguments(parser)
    parser.add_argument("--perturb-nums", type=int, nargs="+", default=[5, 10, 20, 40, 100, 200])
    parser.add_argument("--seeds", type=int, default=3, help="noise seeds per T (0 .. seeds-1)")
    parser.add_argument("--std", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--jacobian-chunk", type=int, default=16, help="images per Jacobian batch")
    parser.add_argument("--workers", type=int, default=0, help="clustering processes (0 = one per CPU)")
    parser.add_argument("--device", default=None, help="default: cuda if present")
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "float64"], help="model and feature precision"
    )
    parser.add_argument("--output", type=Path, default=None, help="results file (default bench/results/...)")
    args = parser.parse_args()
    device = pick_device(args.device)
    source, dataset, arrays = model_and_split(args)
    dtype = getattr(torch, args.dtype)
    model = source.model.to(device, dtype).eval()
    images = torch.from_numpy(arrays.images[: args.images]).to(device, dtype)
    masks = torch.from_numpy(arrays.masks[: args.images])
    with torch.no_grad():
        means = torch.cat([model.latent_mean(chunk) for chunk in images.split(args.batch_size)])
    clusterer = WardClustering(workers=args.workers)

    def jacobian(batch: Tensor, index: list[int]) -> Tensor:
        return jacobian_features(model.decode, batch, chunk_size=args.jacobian_chunk)

    def noise(perturb_num: int, seed: int) -> FeatureFn:
        def features(batch: Tensor, index: list[int]) -> Tensor:
            generators = image_generators(index, seed, device)
            return noise_features(
                model.decode, batch, std=args.std, perturb_num=perturb_num, generators=generators, chunk_size=1024
            )

        return features

    evaluate(jacobian, means[:2], masks[:2], clusterer, 2)  # warm-up: worker processes, kernels
    runs: list[tuple[str, str, list[Score]]] = []
    print("jacobian ...", flush=True)
    runs.append(("jacobian", "-", [evaluate(jacobian, means, masks, clusterer, args.batch_size)]))
    for perturb_num in args.perturb_nums:
        print(f"noise T={perturb_num} ...", flush=True)
        scores = [
            evaluate(noise(perturb_num, seed), means, masks, clusterer, args.batch_size) for seed in range(args.seeds)
        ]
        runs.append(("noise (latent)", str(perturb_num), scores))
    clusterer.close()

    rows = []
    for name, perturb_num, scores in runs:
        ari = np.array([s.ari for s in scores])
        spread = f" ± {ari.std():.3f}" if len(scores) > 1 else ""
        feature_s = float(np.mean([s.feature_s for s in scores]))
        cluster_s = float(np.mean([s.cluster_s for s in scores]))
        rows.append(
            [
                name,
                perturb_num,
                len(scores),
                f"{ari.mean():.3f}{spread}",
                f"{np.mean([s.ari_fg for s in scores]):.3f}",
                feature_s,
                cluster_s,
                feature_s + cluster_s,
            ]
        )
    headers = ["features", "T", "seeds", "ARI", "ARI-FG", "feature s/img", "cluster s/img", "total s/img"]
    settings = {
        "model": f"{source.kind.upper()} z_dim={model.z_dim}, {source.run_dir or source.checkpoint}",
        "data": f"{dataset} {args.split}, first {args.images} images, {source.image_size}x{source.image_size}",
        "settings": f"sigma={args.std:g} (latent noise), exact ward (WardClustering, workers={args.workers}), "
        f"clusters = each mask's label count, batch {args.batch_size} images, device {device}, {args.dtype}",
    }
    notes = [
        "ARI: mean over images, then mean ± std over the noise seeds (population std). ARI-FG: foreground "
        "pixels only (mask label 0 dropped). Seconds per image: feature extraction (encoding excluded) and "
        "clustering, separately.",
        "Reference (an independent prototype, AE trained ~3,000 steps on dKanizsa, 100 illusion test images): "
        "sigma=1e-3 mean ARI 0.49 at T=5, 0.57 at T=10, 0.67 at T=40, 0.69 at T=200; Jacobian 0.70.",
    ]
    write_results(
        "jacobian_vs_noise",
        "Jacobian features vs latent noise",
        settings,
        markdown_table(headers, rows),
        notes,
        args.output,
    )


if __name__ == "__main__":
    main()
