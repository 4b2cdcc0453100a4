"""Noise anywhere in the network (noise.site): model cuts, LNS and Jacobian features at a site, FLOP shares."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import Tensor, nn

from lns.errors import LNSError
from lns.models import Autoencoder
from lns.report import collect_runs, write_report
from lns.report.depth import depth_lines, site_depth
from lns.segmentation.clustering import WardClustering
from lns.segmentation.features import (
    difference_features,
    image_generators,
    jacobian_directions,
    noise_scales,
    site_jacobian_features,
)
from lns.segmentation.sites import (
    jacobian_at_site,
    layer_flops,
    noise_at_site,
    site_activations,
    site_names,
    split_model,
    tail_flop_shares,
)
from tests.helpers import CONF


def legacy_noise_features(decode, means, *, std, perturb_num, site, generators, chunk_size):
    """LNS features as lns.segmentation.features computed them before noise sites existed (commit 90c8b3e)."""
    batch, z_dim = means.shape
    with torch.no_grad():
        if site == "latent":
            noise = torch.stack([torch.randn(perturb_num, z_dim, generator=g, dtype=means.dtype) for g in generators])
            latents = (means[:, None, :] + std * noise).reshape(batch * perturb_num, z_dim)
            count = latents.shape[0]
            padded = latents.new_zeros((-(-count // chunk_size) * chunk_size, z_dim))
            padded[:count] = latents
            decodings = torch.cat([torch.sigmoid(decode(chunk)) for chunk in padded.split(chunk_size)])[:count]
            decodings = decodings.reshape(batch, perturb_num, *decodings.shape[1:])
        else:
            clean = torch.cat([torch.sigmoid(decode(mean[None])) for mean in means])
            noise = torch.stack(
                [torch.randn((perturb_num, *clean.shape[1:]), generator=g, dtype=clean.dtype) for g in generators]
            )
            decodings = clean[:, None] + std * noise
        return difference_features(decodings)


def legacy_jacobian_features(decode, means, *, chunk_size):
    """Jacobian features as lns.segmentation.features computed them before noise sites existed (commit 90c8b3e)."""
    z_dim = means.shape[1]
    basis = torch.eye(z_dim, dtype=means.dtype)
    parts = []
    with torch.no_grad():
        for chunk in means.split(chunk_size):
            tangents = basis[:, None, :].expand(z_dim, len(chunk), z_dim)

            def directional(tangent, chunk=chunk):
                return torch.func.jvp(lambda z: torch.sigmoid(decode(z)), (chunk,), (tangent,))[1]

            rows = torch.func.vmap(directional)(tangents).permute(1, 3, 4, 2, 0)
            rows = rows / torch.linalg.vector_norm(rows, dim=-1, keepdim=True).clamp_min(torch.finfo(rows.dtype).tiny)
            parts.append(rows.reshape(len(chunk), rows.shape[1] * rows.shape[2], -1))
    return torch.cat(parts)


def production_model(variational: bool = False, dtype: torch.dtype = torch.float32) -> Autoencoder:
    """A seeded 64x64 model in eval mode, in the dtype and (channels_last) layout segmentation uses."""
    torch.manual_seed(3)
    model = Autoencoder(z_dim=4, variational=variational).to(dtype).eval()
    return model.to(memory_format=torch.channels_last)


def float64_model() -> Autoencoder:
    """A seeded float64 VAE (z_dim=3): far from float rounding, so a by-hand recomputation must agree to 1e-7."""
    torch.manual_seed(5)
    return Autoencoder(z_dim=3, variational=True).double().eval()


def batch_of(model: Autoencoder, count: int) -> tuple[Tensor, Tensor]:
    dtype = next(model.parameters()).dtype
    images = torch.rand(count, 3, 64, 64, generator=torch.Generator().manual_seed(4)).to(dtype)
    with torch.no_grad():
        means = torch.cat([model.latent_mean(image[None]) for image in images])
    return images, means


def test_sites_run_from_input_to_output():
    names = site_names(Autoencoder(z_dim=2))
    assert names[:2] == ["encoder.0", "encoder.1"]
    assert names[15:19] == ["encoder.15", "latent", "decoder.0", "decoder.1"]
    assert names[-2:] == ["decoder.15", "output"] and len(names) == 34
    assert len(site_names(Autoencoder(z_dim=2, image_size=256))) == 42


@pytest.mark.parametrize("site", ["encoder.4", "decoder.9"])
def test_noise_at_a_site_equals_adding_it_by_hand(site):
    model = float64_model()
    images, means = batch_of(model, 2)
    part, index = site.split(".")
    layers = getattr(model, part)
    perturb_num, std = 3, 1e-2
    expected = []
    with torch.no_grad():
        for image, mean, generator in zip(images, means, image_generators([5, 9], 1, "cpu"), strict=True):
            hidden = layers[: int(index) + 1](image[None] if part == "encoder" else mean[None])
            copies = []
            for _ in range(perturb_num):
                noisy = hidden + std * torch.randn(hidden.shape[1:], generator=generator, dtype=torch.float64)
                if part == "encoder":
                    logits = model.decoder(layers[int(index) + 1 :](noisy)[:, :3])
                else:
                    logits = layers[int(index) + 1 :](noisy)
                copies.append(torch.sigmoid(logits))
            expected.append(torch.cat(copies))
    features = noise_at_site(
        model,
        images,
        means,
        site=site,
        std=std,
        perturb_num=perturb_num,
        generators=image_generators([5, 9], 1, "cpu"),
        chunk_size=4,
    )
    assert features.abs().sum() > 0  # the noise reaches the output
    torch.testing.assert_close(features, difference_features(torch.stack(expected)), rtol=0, atol=1e-7)


@pytest.mark.parametrize("site", ["latent", "output"])
def test_latent_and_output_sites_are_bit_identical_to_the_previous_implementation(site):
    model = production_model(variational=True)
    images, means = batch_of(model, 3)
    options = {"std": 1e-3, "perturb_num": 6, "chunk_size": 7}
    new = noise_at_site(model, images, means, site=site, generators=image_generators([2, 0, 7], 0, "cpu"), **options)
    old = legacy_noise_features(
        model.decode, means, site=site, generators=image_generators([2, 0, 7], 0, "cpu"), **options
    )
    assert torch.equal(new, old)
    ward = WardClustering(workers=1)  # deterministic, so equal features give equal label maps; one image shows it
    assert np.array_equal(ward(new[:1], [3]), ward(old[:1], [3]))


def test_jacobian_at_the_latent_is_bit_identical_to_the_previous_implementation():
    model = production_model()
    images, means = batch_of(model, 3)
    new = jacobian_at_site(model, images, means, site="latent", directions=4, seed=0, chunk_size=2)
    assert torch.equal(new, legacy_jacobian_features(model.decode, means, chunk_size=2))


def test_features_at_an_inner_site_do_not_depend_on_the_batch_size():
    model = production_model()
    images, means = batch_of(model, 3)
    indices = [4, 1, 8]
    options = {"site": "decoder.7", "std": 1e-3, "perturb_num": 5, "chunk_size": 4}
    batched = noise_at_site(model, images, means, generators=image_generators(indices, 0, "cpu"), **options)
    for i, index in enumerate(indices):
        single = noise_at_site(
            model, images[i : i + 1], means[i : i + 1], generators=image_generators([index], 0, "cpu"), **options
        )
        assert torch.equal(batched[i : i + 1], single)


@pytest.mark.parametrize(("site", "directions"), [("encoder.15", 8), ("encoder.13", 3)])
def test_jacobian_at_a_site_matches_finite_differences(site, directions):
    model = float64_model()
    images, means = batch_of(model, 2)
    split = split_model(model, site)
    activations = site_activations(split, images, means)
    tangents = jacobian_directions(activations.shape[1:], directions, seed=3, dtype=torch.float64, device="cpu")
    assert len(tangents) == min(directions, activations[0].numel())
    step = 1e-6
    with torch.no_grad():
        columns = [
            (split.tail(activations + step * v[None]) - split.tail(activations - step * v[None])) / (2 * step)
            for v in tangents
        ]
    rows = torch.stack(columns, dim=-1).permute(0, 2, 3, 1, 4)  # (B, H, W, C, D)
    rows = rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    features = jacobian_at_site(model, images, means, site=site, directions=directions, seed=3)
    torch.testing.assert_close(features, rows.reshape(2, 64 * 64, -1), rtol=0, atol=1e-4)
    if site == "encoder.15":  # the exact basis of (mean, logvar); the logvar half never reaches the output
        assert torch.equal(features.reshape(2, 64 * 64, 3, 6)[..., 3:], torch.zeros(2, 64 * 64, 3, 3))


def test_random_directions_are_reproducible_and_small_sites_get_the_exact_basis():
    exact = jacobian_directions((2, 2), 4, seed=0, dtype=torch.float32, device="cpu")
    assert torch.equal(exact.reshape(4, 4), torch.eye(4))
    first = jacobian_directions((8,), 3, seed=5, dtype=torch.float32, device="cpu")
    assert first.shape == (3, 8)
    assert torch.equal(first, jacobian_directions((8,), 3, seed=5, dtype=torch.float32, device="cpu"))
    assert not torch.equal(first, jacobian_directions((8,), 3, seed=6, dtype=torch.float32, device="cpu"))


def test_relative_noise_is_scaled_by_each_images_rms():
    activations = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    assert noise_scales(activations, 0.1, relative=False) == [0.1, 0.1]
    assert noise_scales(activations, 0.1, relative=True) == pytest.approx([0.1 * 12.5**0.5, 0.1 * 2**0.5])
    model = float64_model()
    images, means = batch_of(model, 1)
    rms = float(site_activations(split_model(model, "decoder.5"), images, means).pow(2).mean().sqrt())
    options = {"site": "decoder.5", "perturb_num": 4, "chunk_size": 4}
    relative = noise_at_site(
        model, images, means, std=1e-2, relative=True, generators=image_generators([0], 0, "cpu"), **options
    )
    absolute = noise_at_site(
        model, images, means, std=1e-2 * rms, generators=image_generators([0], 0, "cpu"), **options
    )
    torch.testing.assert_close(relative, absolute)


def test_flops_of_single_layers_and_tail_shares():
    assert layer_flops(nn.Conv2d(2, 3, 3), torch.zeros(1, 2, 5, 5), torch.zeros(1, 3, 3, 3)) == 2 * 27 * 2 * 9
    assert layer_flops(nn.ConvTranspose2d(2, 3, 2, 2), torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 4, 4)) == 192
    assert layer_flops(nn.Linear(4, 5), torch.zeros(2, 4), torch.zeros(2, 5)) == 2 * 2 * 5 * 4
    assert layer_flops(nn.ReLU(), torch.zeros(3), torch.zeros(3)) == 0
    model = Autoencoder(z_dim=2)
    shares = tail_flop_shares(model)
    assert list(shares) == site_names(model)
    values = list(shares.values())
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert 0.9 < shares["encoder.0"] < 1 and shares["output"] == 0
    assert shares["latent"] == shares["encoder.15"] and shares["decoder.0"] == shares["decoder.1"]
    # Hand count for z_dim=2: encoder and decoder mirror each other (134,021,632 FLOPs each); after decoder.14
    # only the last transposed convolution runs: 32 -> 3 channels, 3x3 kernel, 64x64 inputs.
    assert shares["latent"] == pytest.approx(0.5)
    assert shares["decoder.14"] == pytest.approx(2 * 32 * 64 * 64 * 3 * 9 / (2 * 134_021_632))


def test_unknown_sites_and_too_few_directions_fail_with_clear_messages():
    model = Autoencoder(z_dim=2)
    with pytest.raises(LNSError, match=r"noise\.site=decoder\.99 .*decoder\.15.*latent .*output"):
        split_model(model, "decoder.99")
    images, means = batch_of(model, 1)
    with pytest.raises(LNSError, match=r"method\.directions=0 must be at least 1"):
        jacobian_at_site(model, images, means, site="decoder.5", directions=0, seed=0)
    with pytest.raises(LNSError, match="do not fit"):
        site_jacobian_features(torch.sigmoid, torch.zeros(1, 3, 2, 2), directions=torch.eye(3))


def test_the_noise_site_sweep_runs_every_site_of_a_64x64_model():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("segment", overrides=["sweep=noise_site"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params["noise.site"].split(",") == site_names(Autoencoder(z_dim=2))
    assert cfg.noise.relative is False and cfg.experiment_name == "noise_site"


def write_summary(folder: Path, features: str, site: str, ari: float, model: str = "ae") -> None:
    folder.mkdir(parents=True)
    summary = {
        "dataset": "kanizsa",
        "model": model,
        "features": features,
        "ari_mean": ari,
        "noise": {"std": 0.001, "perturb_num": 40, "site": site, "relative": False},
    }
    (folder / "summary.json").write_text(json.dumps(summary))


def test_report_draws_ari_against_depth_and_keeps_inner_sites_out_of_the_table(tmp_path: Path):
    runs = [
        ("noise", "decoder.5", 0.4),
        ("noise", "latent", 0.6),
        ("noise", "encoder.3", 0.2),
        ("noise", "output", 0.0),
        ("jacobian", "latent", 0.7),
        ("jacobian", "decoder.5", 0.5),
    ]
    for i, (features, site, ari) in enumerate(runs):
        write_summary(tmp_path / "runs" / str(i), features, site, ari)
    write_summary(tmp_path / "runs" / "seed2", "noise", "decoder.5", 0.6)
    collected = collect_runs([tmp_path / "runs"])
    lines = depth_lines(collected)
    noise = lines["kanizsa", "AE noise σ=0.001 T=40"]
    assert [p.site for p in noise] == ["encoder.3", "latent", "decoder.5", "output"]
    assert [p.n for p in noise] == [1, 1, 2, 1]
    assert noise[2].mean == pytest.approx(0.5) and noise[2].std == pytest.approx(0.1)
    assert [p.site for p in lines["kanizsa", "AE jacobian"]] == ["latent", "decoder.5"]

    report = write_report([tmp_path / "runs"], out=tmp_path / "report")
    assert (tmp_path / "report" / "ari_vs_depth.png") in report.files
    assert report.table.columns == ["AE", "AE (output noise)", "AE (jacobian)"]
    assert report.table.get("kanizsa", "AE").mean == pytest.approx(0.6)


def test_sites_sort_from_input_to_output():
    sites = ["output", "decoder.10", "decoder", "latent", "decoder.2", "encoder.11", "encoder.3"]
    ordered = sorted(sites, key=site_depth)
    assert ordered == ["encoder.3", "encoder.11", "latent", "decoder.2", "decoder.10", "decoder", "output"]
