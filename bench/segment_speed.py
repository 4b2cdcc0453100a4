"""Segmentation speed: the authors' one-image-at-a-time loop against our batched path and run_segment.py.

    python bench/segment_speed.py                       # 100 dKanizsa test images, T=40, ward, untrained AE
    python bench/segment_speed.py --run-dir outputs/train/<run> --data-dir data
    python bench/segment_speed.py --large               # adds the 256x256 lean-ward memory line (~20 s)

Rows, all on the same images, noise draws (one generator per image, lns.segmentation.features) and
cluster counts (each mask's label count):
- baseline: the authors' tester, one image at a time, each of the T perturbations decoded alone, then
  scikit-learn's AgglomerativeClustering(linkage="ward");
- ours, one at a time: noise_features on a batch of one image, WardClustering(workers=1);
- ours, batched: noise_features over --batch-size images at once, WardClustering(workers=--workers), timed
  after one untimed warm-up batch (steady state: worker processes started, kernels warm);
- run_segment.py: the whole entry point as a subprocess (interpreter, imports, Lightning, outputs, figures);
- floor: encoder + decoder FLOPs at this machine's measured float32 matmul rate, plus the single-thread
  clustering time of every image divided by the usable CPUs.
Label maps are compared after renumbering (same partition = identical).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import REPO, Stopwatch, markdown_table, pick_device, usable_cpus, write_results
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

from lns.data.catalog import dataset_dir
from lns.data.npz import load_split
from lns.models import Autoencoder, write_authors_checkpoint
from lns.segmentation.clustering import LeanWardClustering, WardClustering, canonical_labels
from lns.segmentation.features import image_generators, noise_features
from lns.segmentation.module import FeatureSettings
from lns.segmentation.source import load_source


@dataclass
class PathResult:
    """Label maps (B, N) and where the seconds went; ``ours_on_same_features``: WardClustering's maps on the
    baseline's own features (baseline only, untimed)."""

    labels: np.ndarray
    decode_s: float
    cluster_s: float
    ours_on_same_features: np.ndarray | None = None

    @property
    def total_s(self) -> float:
        return self.decode_s + self.cluster_s


@dataclass(frozen=True)
class Workload:
    images: Tensor  # (B, C, H, W) on the device
    counts: list[int]
    std: float
    perturb_num: int
    seed: int


def baseline(model: Autoencoder, work: Workload) -> PathResult:
    """The authors' tester: per image, T single-latent decodes, then scikit-learn's ward."""
    decode, cluster = Stopwatch(work.images.device), Stopwatch()
    labels, ours_labels = [], []
    ward = WardClustering(workers=1)
    for i, k in enumerate(work.counts):
        generator = image_generators([i], work.seed, work.images.device)[0]
        with decode.running(), torch.no_grad():
            mean = model.latent_mean(work.images[i : i + 1])
            noise = torch.randn(work.perturb_num, mean.shape[1], generator=generator, device=mean.device)
            decodings = torch.cat(
                [torch.sigmoid(model.decode(mean + work.std * noise[t : t + 1])) for t in range(work.perturb_num)]
            )
            differences = decodings[:-1] - decodings[1:]
            differences = differences / differences.norm(dim=0, keepdim=True).clamp_min(1e-12)
            features = differences.permute(2, 3, 1, 0).flatten(2).flatten(0, 1).cpu().numpy()
        with cluster.running():
            labels.append(AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(features))
        ours_labels.append(ward(torch.from_numpy(features)[None], [k])[0])
    return PathResult(np.stack(labels), decode.seconds, cluster.seconds, np.stack(ours_labels))


def ours(model: Autoencoder, work: Workload, batch_size: int, workers: int, warm_up: bool) -> PathResult:
    """lns.segmentation as SegmentationModule runs it: per-image encoding, noise_features over batches of images
    (fixed-shape decoder calls), then WardClustering."""
    clusterer = WardClustering(workers=workers)
    device = work.images.device
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)  # as run_segment.py (channels_last: true)

    def run(start: int, decode: Stopwatch, cluster: Stopwatch) -> np.ndarray:
        index = list(range(start, min(start + batch_size, len(work.counts))))
        with decode.running(), torch.no_grad():
            means = torch.cat([model.latent_mean(work.images[i : i + 1]) for i in index])
            features = noise_features(
                model.decode,
                means,
                std=work.std,
                perturb_num=work.perturb_num,
                generators=image_generators(index, work.seed, device),
                chunk_size=FeatureSettings.chunk_size,
            )
        with cluster.running():
            if workers == 1:
                with threadpool_limits(limits=1):
                    return clusterer(features, work.counts[index[0] : index[-1] + 1])
            return clusterer(features, work.counts[index[0] : index[-1] + 1])

    if warm_up:
        run(0, Stopwatch(device), Stopwatch())
    decode, cluster = Stopwatch(device), Stopwatch()
    labels = [run(start, decode, cluster) for start in range(0, len(work.counts), batch_size)]
    clusterer.close()
    return PathResult(np.concatenate(labels), decode.seconds, cluster.seconds)


def encoder_batch_gap(model: Autoencoder, images: Tensor, batch_size: int) -> float:
    """Largest difference between latent means encoded in batches and one image at a time."""
    with torch.no_grad():
        batched = torch.cat([model.latent_mean(chunk) for chunk in images.split(batch_size)])
        single = torch.cat([model.latent_mean(image[None]) for image in images])
    return float((batched - single).abs().max())


def decoder_batch_gap(model: Autoencoder, work: Workload, batch_size: int) -> float:
    """Largest difference between the first batch's features decoded together and image by image (same means)."""
    index = list(range(min(batch_size, len(work.counts))))
    device = work.images.device

    def features(rows: list[int], means: Tensor) -> Tensor:
        generators = image_generators(rows, work.seed, device)
        return noise_features(
            model.decode,
            means,
            std=work.std,
            perturb_num=work.perturb_num,
            generators=generators,
            chunk_size=FeatureSettings.chunk_size,
        )

    with torch.no_grad():
        means = torch.cat([model.latent_mean(work.images[i : i + 1]) for i in index])
        together = features(index, means)
        alone = torch.cat([features([i], means[i : i + 1]) for i in index])
    return float((together - alone).abs().max())


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """How many label maps are the same partition, and the mean ARI between them."""
    same = sum(np.array_equal(canonical_labels(x), canonical_labels(y)) for x, y in zip(a, b, strict=True))
    return same, float(np.mean([adjusted_rand_score(x, y) for x, y in zip(a, b, strict=True)]))


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul rate of this device, in GFLOP/s."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    watch, best = Stopwatch(device), float("inf")
    a @ b
    for _ in range(repeats):
        before = watch.seconds
        with watch.running():
            a @ b
        best = min(best, watch.seconds - before)
    return 2 * size**3 / best / 1e9


def forward_flops(module: nn.Module, inputs: Tensor) -> int:
    """FLOPs (2 x multiply-adds) of the Linear, Conv2d and ConvTranspose2d layers in one forward pass."""
    macs = 0

    def count(layer: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal macs
        if isinstance(layer, nn.Linear):
            macs += output.numel() * layer.in_features
        elif isinstance(layer, nn.Conv2d):
            macs += output.numel() * layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, nn.ConvTranspose2d):
            taps = layer.out_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            macs += args[0].numel() * taps

    handles = [layer.register_forward_hook(count) for layer in module.modules()]
    with torch.no_grad():
        module(inputs)
    for handle in handles:
        handle.remove()
    return 2 * macs


def load_model(args: argparse.Namespace, tmp: Path) -> tuple[Autoencoder, list[str]]:
    """The model to time and the run_segment.py overrides that load the same weights."""
    if args.run_dir or args.ckpt:
        source = load_source(args.run_dir, args.ckpt)
        overrides = [f"run_dir={args.run_dir}"] if args.run_dir else []
        overrides += [f"ckpt_path={args.ckpt}"] if args.ckpt else []
        return source.model, [*overrides, "data=kanizsa"]
    torch.manual_seed(args.seed)
    model = Autoencoder(z_dim=15)
    checkpoint = tmp / "untrained_ae.pth"
    write_authors_checkpoint(checkpoint, model, step=0, flags={"dataset": "dKanizsa"})
    return model, [f"ckpt_path={checkpoint}", "data=kanizsa"]


def make_test_set(data_dir: Path, n_test: int) -> None:
    command = [
        sys.executable,
        "-m",
        "data_gen",
        "dataset=kanizsa",
        "n_train=64",
        "n_valid=8",
        f"n_test={n_test}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={data_dir / 'hydra'}",
    ]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)


def timed_process(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def run_segment_process(args: argparse.Namespace, data_dir: Path, model_overrides: list[str], out: Path) -> float:
    """Wall seconds of ``python run_segment.py`` on the same images and settings."""
    command = [
        sys.executable,
        "run_segment.py",
        *model_overrides,
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
        f"test_num={args.images}",
        f"noise.std={args.std}",
        f"noise.perturb_num={args.perturb_num}",
        f"seed={args.seed}",
        f"batch_size={args.batch_size}",
        f"clustering.backend.workers={args.workers}",
    ]
    return timed_process(command)


def large_child(image_size: int, perturb_num: int, n_clusters: int) -> None:
    """In a fresh process: one image through noise_features + LeanWardClustering; print peak RSS."""
    torch.manual_seed(0)
    model = Autoencoder(z_dim=15, image_size=image_size).eval()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    means = torch.randn(1, 15)
    generators = image_generators([0], 0, "cpu")
    features = noise_features(
        model.decode, means, std=1e-3, perturb_num=perturb_num, generators=generators, chunk_size=perturb_num
    )
    labels = LeanWardClustering(workers=1)(features, [n_clusters])
    record = {
        "pixels": features.shape[1],
        "dim": features.shape[2],
        "seconds": time.perf_counter() - started,
        "rss_before_mib": base / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "clusters": int(labels.max()) + 1,
    }
    print(json.dumps(record))


def large_line(image_size: int, perturb_num: int) -> list[str]:
    command = [sys.executable, __file__, "--large-child", f"--large-size={image_size}", f"--perturb-num={perturb_num}"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    record = json.loads(result.stdout.strip().splitlines()[-1])
    n = record["pixels"]
    matrix_gib = n * (n - 1) / 2 * 8 / 2**30
    return [
        f"{image_size}x{image_size} (lean ward, fastcluster.linkage_vector): one image, {n} pixels x "
        f"{record['dim']} features (T={perturb_num}), {record['clusters']} clusters in {record['seconds']:.0f} s; "
        f"peak RSS {record['peak_rss_mib']:.0f} MiB (model and libraries loaded: {record['rss_before_mib']:.0f} "
        f"MiB); a condensed float64 distance matrix would need {matrix_gib:.1f} GiB."
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="holds dKanizsa/test.npz (default: generate)")
    parser.add_argument("--run-dir", default=None, help="a training run (default: an untrained, seeded AE)")
    parser.add_argument("--ckpt", default=None, help="a checkpoint file (ours or the authors')")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--perturb-num", type=int, default=40)
    parser.add_argument("--std", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=10, help="images per batch (segment.yaml: 10)")
    parser.add_argument("--workers", type=int, default=0, help="clustering processes (0 = one per CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="for encoding/decoding (default: cuda if present)")
    parser.add_argument("--skip-process", action="store_true", help="do not time run_segment.py")
    parser.add_argument("--large", action="store_true", help="add the 256x256 lean-ward memory line (~20 s)")
    parser.add_argument("--large-perturb-num", type=int, default=4, help="T of the --large line")
    parser.add_argument("--large-size", type=int, default=256, choices=[64, 256], help="image size of --large")
    parser.add_argument("--large-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=None, help="results file (default bench/results/...)")
    args = parser.parse_args()
    if args.large_child:
        large_child(args.large_size, args.perturb_num, n_clusters=4)
        return
    args.device = pick_device(args.device)

    with tempfile.TemporaryDirectory(prefix="lns-segment-speed-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = tmp / "data"
            make_test_set(data_dir, max(args.images, 1))
        test = load_split(dataset_dir(data_dir, "kanizsa"), "test")
        if not 0 < args.images <= len(test.images):
            sys.exit(f"--images must be 1..{len(test.images)} for {data_dir}.")
        model, model_overrides = load_model(args, tmp)
        model = model.to(args.device).eval()
        work = Workload(
            images=torch.from_numpy(test.images[: args.images]).to(args.device),
            counts=[len(np.unique(mask)) for mask in test.masks[: args.images]],
            std=args.std,
            perturb_num=args.perturb_num,
            seed=args.seed,
        )
        print("baseline (authors' loop) ...", flush=True)
        base = baseline(model, work)
        print("ours, one image at a time ...", flush=True)
        single = ours(model, work, batch_size=1, workers=1, warm_up=False)
        print("ours, batched ...", flush=True)
        batched = ours(model, work, batch_size=args.batch_size, workers=args.workers, warm_up=True)
        process_s = startup_s = None
        process_labels = np.empty(0)
        if not args.skip_process:
            print("run_segment.py ...", flush=True)
            process_s = run_segment_process(args, data_dir, model_overrides, tmp / "segment")
            startup_s = timed_process([sys.executable, "-c", "import lns.segment"])
            process_labels = np.load(tmp / "segment" / "predictions.npz")["labels"].reshape(args.images, -1)

    n = args.images
    rate = matmul_gflops(args.device, size=4096 if args.device.type == "cuda" else 2048)
    size = model.image_size
    decoder_flops = forward_flops(model.decoder, torch.zeros(1, model.z_dim, device=args.device))
    encoder_flops = forward_flops(model.encoder, torch.zeros(1, 3, size, size, device=args.device))
    floor_decode = n * (args.perturb_num * decoder_flops + encoder_flops) / (rate * 1e9)
    floor_cluster = single.cluster_s / usable_cpus()
    floor = floor_decode + floor_cluster

    def row(name: str, decode_s: float | str, cluster_s: float | str, total_s: float, same: str) -> list:
        return [name, decode_s, cluster_s, total_s, n / total_s, base.total_s / total_s, same]

    same_single, _ = agreement(batched.labels, single.labels)
    gap = encoder_batch_gap(model, work.images, args.batch_size)
    decoder_gap = decoder_batch_gap(model, work, args.batch_size)
    same_base, ari_base = agreement(batched.labels, base.labels)
    same_clustering, _ = agreement(base.ours_on_same_features, base.labels)
    rows = [
        row("baseline: authors' loop + sklearn ward", base.decode_s, base.cluster_s, base.total_s, "-"),
        row("ours, one image at a time (workers=1)", single.decode_s, single.cluster_s, single.total_s, "-"),
        row(
            f"ours, batched ({args.batch_size} images, workers={args.workers or usable_cpus()})",
            batched.decode_s,
            batched.cluster_s,
            batched.total_s,
            f"{same_single}/{n} vs one-at-a-time; {same_base}/{n} vs baseline",
        ),
    ]
    if process_s is not None:
        same_process, _ = agreement(process_labels, batched.labels)
        rows.append(row("run_segment.py, whole process", "-", "-", process_s, f"{same_process}/{n} vs batched"))
    rows.append(row("floor: FLOPs at matmul rate + clustering / CPUs", floor_decode, floor_cluster, floor, "-"))
    headers = ["path", "decode s", "cluster s", "total s", "images/s", "speed-up", "identical label maps"]
    table = markdown_table(headers, rows)
    settings = {
        "device": str(args.device),
        "settings": f"{n} dKanizsa test images, {size}x{size}, T={args.perturb_num}, sigma={args.std:g}, ward, "
        f"clusters = each mask's label count, noise seed {args.seed}",
        "model": args.run_dir or args.ckpt or "untrained Autoencoder(z_dim=15), torch.manual_seed(seed)",
    }
    notes = [
        f"Speed-up = baseline total / row total. Batched: {batched.total_s / floor:.2f}x the floor "
        f"(decode {batched.decode_s / floor_decode:.2f}x its floor, cluster {batched.cluster_s / floor_cluster:.2f}x).",
        f"Floor: float32 matmul {rate:.0f} GFLOP/s on {args.device}; decoder {decoder_flops / 1e6:.1f} MFLOP per "
        f"latent, encoder {encoder_flops / 1e6:.1f} MFLOP per image; clustering = one-at-a-time cluster time "
        f"(one BLAS thread) / {usable_cpus()} CPUs.",
        f"Ours vs the scikit-learn baseline: {same_base}/{n} identical partitions, mean ARI {ari_base:.4f} "
        f"(float32 decodings of single latents and of batches differ in the last bits); on the baseline's own "
        f"features WardClustering and scikit-learn give {same_clustering}/{n} identical partitions.",
        f"Latent means encoded {args.batch_size} at a time differ from one-at-a-time encoding by up to {gap:.1e} "
        "(float32 convolutions depend on the batch size); with sigma=1e-3 that alone can move ward's near-ties. "
        f"From the same means, the first batch's features decoded together and image by image differ by up to "
        f"{decoder_gap:.1e}.",
    ]
    if startup_s is not None:
        notes.append(
            f"run_segment.py includes interpreter and library start-up (`python -c 'import lns.segment'` alone: "
            f"{startup_s:.1f} s), Lightning, writing outputs and figures."
        )
    if args.large:
        print(f"{args.large_size}x{args.large_size} lean ward ...", flush=True)
        notes += large_line(args.large_size, args.large_perturb_num)
    write_results("segment_speed", "Segmentation speed", settings, table, notes, args.output)


if __name__ == "__main__":
    main()
