"""Noise anywhere in the network: ARI and seconds per image for every noise site of one trained model.

    python bench/noise_sites.py --run-dir outputs/train/<run> --data-dir data
    python bench/noise_sites.py --run-dir <run> --data-dir data --images 20 --sites latent decoder.9 output

For each site (default: every site from encoder.0 through the latent to the output), the first --images test
images are segmented with exact ward into as many clusters as each mask has labels, from noise features
(noise.std --std, T = --perturb-num, the production path lns.segmentation.sites.noise_at_site) and from Jacobian
features (jacobian_at_site: exact where the site has at most --directions units, else a random projection onto
--directions directions). Feature seconds per image (encoding to the latent mean excluded, the layers up to the
site included) are shown beside the share of the model's FLOPs after the site. The results file is rewritten after
every site (rows in depth order whatever the order of --sites), so an interrupted run leaves the sites it finished.
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
from lns.segmentation.features import image_generators
from lns.segmentation.sites import (
    jacobian_at_site,
    noise_at_site,
    site_activations,
    site_names,
    split_model,
    tail_flop_shares,
)

FeatureFn = Callable[[Tensor, Tensor, list[int]], Tensor]
"""(images (B, C, H, W), their latent means (B, z), image indices) -> pixel features (B, N, D)."""


def evaluate(
    features_of: FeatureFn, images: Tensor, means: Tensor, masks: Tensor, clusterer: WardClustering, batch_size: int
) -> Score:
    """Segment every image in batches; mean ARI (and foreground ARI) and seconds per image."""
    return score_in_batches(
        lambda index: features_of(images[index], means[index], index), masks, clusterer, batch_size, means.device
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_and_split_arguments(parser)
    parser.add_argument("--sites", nargs="+", default=None, help="default: every site, input side first")
    parser.add_argument("--features", nargs="+", default=["noise", "jacobian"], choices=["noise", "jacobian"])
    parser.add_argument("--std", type=float, default=1e-3)
    parser.add_argument("--relative", action="store_true", help="noise std times each image's RMS at the site")
    parser.add_argument("--perturb-num", type=int, default=40)
    parser.add_argument("--directions", type=int, default=64, help="Jacobian directions (method.directions)")
    parser.add_argument("--seed", type=int, default=0, help="noise and projection seed")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=200, help="noisy copies per call (method.chunk_size)")
    parser.add_argument("--jacobian-chunk", type=int, default=4, help="images per Jacobian batch")
    parser.add_argument("--workers", type=int, default=0, help="clustering processes (0 = one per CPU)")
    parser.add_argument("--device", default=None, help="default: cuda if present")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--output", type=Path, default=None, help="results file (default bench/results/...)")
    args = parser.parse_args()
    device = pick_device(args.device)
    source, dataset, arrays = model_and_split(args)
    dtype = getattr(torch, args.dtype)
    model = source.model.to(device, dtype).eval()
    shares = tail_flop_shares(model)  # before channels_last: the hooks only count
    model = model.to(memory_format=torch.channels_last)  # the segmentation default (channels_last: true)
    sites = args.sites or site_names(model)
    for site in sites:
        split_model(model, site)  # fail on a bad name before any work
    images = torch.from_numpy(arrays.images[: args.images]).to(device, dtype)
    masks = torch.from_numpy(arrays.masks[: args.images])
    with torch.no_grad():  # one image per encoder call, as the segmentation module does
        means = torch.cat([model.latent_mean(image[None]) for image in images])
    clusterer = WardClustering(workers=args.workers)

    def noise(site: str) -> FeatureFn:
        def features(batch: Tensor, batch_means: Tensor, index: list[int]) -> Tensor:
            return noise_at_site(
                model,
                batch,
                batch_means,
                site=site,
                std=args.std,
                perturb_num=args.perturb_num,
                generators=image_generators(index, args.seed, device),
                relative=args.relative,
                chunk_size=args.chunk_size,
            )

        return features

    def jacobian(site: str) -> FeatureFn:
        def features(batch: Tensor, batch_means: Tensor, index: list[int]) -> Tensor:
            return jacobian_at_site(
                model,
                batch,
                batch_means,
                site=site,
                directions=args.directions,
                seed=args.seed,
                chunk_size=args.jacobian_chunk,
            )

        return features

    makers = {"noise": noise, "jacobian": jacobian}
    evaluate(noise("latent"), images[:2], means[:2], masks[:2], clusterer, 2)  # warm-up: workers, kernels
    headers = ["site", "units", "FLOPs after site", *_feature_headers(args.features)]
    rows: dict[str, list[object]] = {}
    depth = {site: i for i, site in enumerate(site_names(model))}
    cluster_seconds: list[float] = []
    settings = {
        "model": f"{source.kind.upper()} z_dim={model.z_dim}, run {source.run_dir}, checkpoint {source.checkpoint}",
        "data": f"{dataset} {args.split}, first {args.images} images, {source.image_size}x{source.image_size}",
        "settings": f"noise std={args.std:g}{' x RMS at the site' if args.relative else ''}, T={args.perturb_num}, "
        f"chunk {args.chunk_size} copies; Jacobian directions={args.directions} (exact where the site has at most "
        f"that many units), {args.jacobian_chunk} images per Jacobian batch; seed {args.seed}; exact ward "
        f"(WardClustering, workers={args.workers}), clusters = each mask's label count; batch {args.batch_size} "
        f"images; device {device}, {args.dtype}, channels_last",
    }
    for done, site in enumerate(sites, start=1):
        print(f"[{done}/{len(sites)}] {site} ...", flush=True)
        units = int(site_activations(split_model(model, site), images[:1], means[:1])[0].numel())
        row: list[object] = [site, units, f"{shares[site]:.1%}"]
        for name in args.features:
            score = evaluate(makers[name](site), images, means, masks, clusterer, args.batch_size)
            cluster_seconds.append(score.cluster_s)
            row += [f"{score.ari:.3f}", f"{score.ari_fg:.3f}", score.feature_s]
        rows[site] = row
        table = [rows[name] for name in sorted(rows, key=lambda name: (depth.get(name, len(depth)), name))]
        notes = [
            f"Sites finished: {done} of {len(sites)}.",
            "ARI: mean over images (one noise seed); ARI-FG: foreground pixels only (mask label 0 dropped). "
            "s/img: feature seconds per image (the layers up to the site once per image, those after it T times "
            "or once per direction; encoding to the latent mean excluded). Ward clustering took "
            f"{np.mean(cluster_seconds):.3f} s per image on average (not in s/img). FLOPs after site: share of one "
            "image's encoder + decoder multiply-adds (x2) in the layers after the site. units: activations per "
            "image at the site; the Jacobian is exact where units <= directions.",
        ]
        write_results(
            "noise_sites",
            "Noise sites: ARI and speed per site",
            settings,
            markdown_table(headers, table),
            notes,
            args.output,
        )
    clusterer.close()


def _feature_headers(features: list[str]) -> list[str]:
    headers = []
    for name in features:
        headers += [f"{name} ARI", f"{name} ARI-FG", f"{name} s/img"]
    return headers


if __name__ == "__main__":
    main()
