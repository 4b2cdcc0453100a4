"""model=diffusers_kl: diffusers' AutoencoderKL trains with GECO and its KL term, and segments like our models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lns
from lns.data.npz import load_split
from lns.models import DiffusersKL
from lns.segment import segment
from lns.train import train
from tests.helpers import TINY_SEGMENT, TINY_TRAIN, compose_config

pytest.importorskip("diffusers")

# A smaller network than the config's default: the test is about the wiring, not the model's quality.
SMALL = ["model.block_out_channels=[8,8,8,8]", "model.norm_num_groups=4"]


def test_the_latent_is_a_grid_with_a_mean_and_a_log_variance() -> None:
    model = DiffusersKL(block_out_channels=(8, 8, 8, 8), norm_num_groups=4).eval()
    mean, log_variance = model.encode(torch.rand(2, 3, 64, 64))
    assert mean.shape == log_variance.shape == (2, 4, 8, 8)
    assert model.decode(mean).shape == (2, 3, 64, 64) and model.decodes_logits
    assert model.output_layer is model.net.decoder.conv_out


@pytest.mark.e2e
def test_diffusers_kl_trains_a_few_steps_and_segments(tiny_data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    overrides = [option for option in TINY_TRAIN if not option.startswith("model.")]
    result = train(
        compose_config(
            "train",
            [*overrides, "model=diffusers_kl", *SMALL, f"paths.data_dir={tiny_data_dir}", "logger=none"],
            run,
        )
    )
    assert result["global_step"] == 4
    assert {"train/kl", "train/geco_beta", "train/latent_std/03"} <= set(result["metrics"])  # GECO with its KL term

    seg = tmp_path / "seg"
    fast = ["test_num=2", "noise.perturb_num=4", "method.chunk_size=8", "health.num_images=2", "figures_num=1"]
    segment(compose_config("segment", [f"run_dir={run}", *TINY_SEGMENT, *fast], seg))
    summary = json.loads((seg / "summary.json").read_text())
    assert (summary["model"], summary["n_images"], summary["z_dim"]) == ("DiffusersKL", 2, None)
    assert summary["health"]["resolved"] is True  # float32 resolves sigma=1e-3 in diffusers' decoder: no false alarm

    model = lns.load_model(run)
    images = torch.from_numpy(load_split(tiny_data_dir / "dKanizsa", "test").images[:1])
    for options in ({"method": "jacobian"}, {"site": "net.decoder.up_blocks.2.resnets.0"}):
        labels = lns.segment_images(model, images, n_clusters=3, perturbations=4, **options).labels
        assert labels.shape == (1, 64, 64) and len(labels.unique()) == 3
