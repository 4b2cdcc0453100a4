"""Segmentation features in IEEE float32 on every path, and a resolution check that says when rounding hides the noise.

TF32 (the default of float32 convolutions on Ampere and later GPUs) is simulated on the CPU by rounding every
convolution's and linear layer's inputs and weights to 10 mantissa bits (tests/helpers/rounding.py).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

import lns
from lns.models import Autoencoder
from lns.models.float32 import (
    apply_float32_settings,
    float32_settings,
    ieee_float32,
    is_ieee_float32,
    round_to_tf32,
    set_tf32,
)
from lns.report import write_report
from lns.segment import segment
from lns.segmentation.health import SignalThresholds, measure_signal, no_signal_message
from lns.segmentation.resolution import image_resolutions, resolution
from tests.helpers import TINY_SEGMENT, compose_config
from tests.helpers.rounding import TF32Autoencoder


@pytest.fixture
def tf32_switched_on():
    """A caller who allowed TF32 everywhere, as many training scripts do; its settings come back afterwards."""
    saved = float32_settings()
    set_tf32(True)
    yield float32_settings()
    apply_float32_settings(saved)


class RecordingModel(nn.Module):
    """A tiny linear autoencoder that records, at every decode, whether float32 arithmetic was IEEE."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(3, 16 * 3)
        self.seen: list[tuple[bool, torch.dtype]] = []

    def encode(self, images: Tensor) -> Tensor:
        return images.mean(dim=(2, 3))

    def decode(self, latent: Tensor) -> Tensor:
        output = torch.sigmoid(self.up(latent))
        self.seen.append((is_ieee_float32(), output.dtype))
        return output.reshape(len(latent), 3, 4, 4)


def test_round_to_tf32_keeps_ten_mantissa_bits() -> None:
    values = torch.tensor([1.0, 1 + 2**-10, 1 + 2**-11 + 2**-13, 1 + 2**-12, -3.0e-3])
    rounded = round_to_tf32(values)
    assert rounded[0] == 1 and rounded[1] == 1 + 2**-10  # representable: unchanged
    assert rounded[2] == 1 + 2**-10 and rounded[3] == 1  # rounded to the nearest 10-bit mantissa
    assert torch.allclose(rounded[4], values[4], rtol=2**-11) and rounded[4] != values[4]


def test_ieee_float32_switches_tf32_and_autocast_off_and_restores_the_callers_settings(tf32_switched_on) -> None:
    assert not is_ieee_float32()
    with torch.autocast("cpu", dtype=torch.bfloat16), ieee_float32():
        assert is_ieee_float32()
        assert nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float32
    assert float32_settings() == tf32_switched_on


@pytest.mark.parametrize("method", ["noise", "jacobian"])
def test_every_decode_of_segment_images_runs_in_ieee_float32(tf32_switched_on, method: str) -> None:
    model = RecordingModel()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lns.segment_images(model, torch.rand(3, 3, 4, 4), n_clusters=2, perturbations=4, method=method)
    assert model.seen and all(seen == (True, torch.float32) for seen in model.seen)
    assert float32_settings() == tf32_switched_on


def test_the_health_probe_decodes_in_ieee_float32(tf32_switched_on) -> None:
    model = RecordingModel()
    stats = measure_signal(model, torch.rand(2, 3, 4, 4), std=1e-3, perturb_num=3, seed=0, zero_atol=0.0)
    assert model.seen and all(seen == (True, torch.float32) for seen in model.seen)
    assert 0.9 < stats["resolution"] <= 1  # a linear layer and a sigmoid: the response scales with the noise
    assert float32_settings() == tf32_switched_on


def test_resolution_is_one_for_exact_arithmetic_low_for_rounding_and_none_without_a_response() -> None:
    means = torch.full((2, 3), 0.3, dtype=torch.float64)
    noise = torch.randn(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(3, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def linear(latent: Tensor) -> Tensor:
        return (latent @ weights).reshape(len(latent), 3, 2, 2)

    def half(latent: Tensor) -> Tensor:  # the same decoder, its output read with 10 mantissa bits
        return linear(latent).half().double()

    def dead(latent: Tensor) -> Tensor:
        return torch.zeros(len(latent), 3, 2, 2, dtype=torch.float64)

    assert np.allclose(image_resolutions(linear, means, noise, 1e-4), 1)
    assert resolution(half, means, noise, 1e-4) < 0.5
    assert np.isnan(image_resolutions(dead, means, noise, 1e-4)).all() and resolution(dead, means, noise, 1e-4) is None


def test_tf32_rounding_draws_a_precision_warning_and_exact_float32_none() -> None:
    torch.manual_seed(0)
    images = torch.rand(3, 3, 64, 64)
    exact = Autoencoder(z_dim=5).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", lns.PrecisionWarning)
        lns.segment_images(exact, images, n_clusters=3, perturbations=4)
    rounded = TF32Autoencoder(z_dim=5).eval()
    rounded.load_state_dict(exact.state_dict())
    with pytest.warns(lns.PrecisionWarning, match=r"health.resolution 0\.\d+.*TF32.*raise noise.std"):
        lns.segment_images(rounded, images, n_clusters=3, perturbations=4)
    assert issubclass(lns.PrecisionWarning, UserWarning)


def test_a_half_precision_model_draws_a_precision_warning() -> None:
    torch.manual_seed(0)
    model = Autoencoder(z_dim=5).eval().to(torch.bfloat16)
    with pytest.warns(lns.PrecisionWarning, match="bfloat16"):
        lns.segment_images(model, torch.rand(2, 3, 64, 64), n_clusters=3, perturbations=4)


def _with_model_class(run_dir: Path, target: str) -> None:
    config = OmegaConf.load(run_dir / "run_config.yaml")
    config.model._target_ = target
    (run_dir / "run_config.yaml").write_text(OmegaConf.to_yaml(config))


@pytest.mark.e2e
def test_a_rounding_decoder_is_unresolved_in_summary_console_and_report(
    trained_run: Path, tiny_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exact_seg, rounded_seg = tmp_path / "segs" / "exact", tmp_path / "segs" / "rounded"
    settings = [f"paths.data_dir={tiny_data_dir}", *TINY_SEGMENT, "health.num_images=2"]
    exact = segment(compose_config("segment", [f"run_dir={trained_run}", *settings], exact_seg))["summary"]
    assert exact["health"]["resolved"] is True and exact["health"]["resolution"] > 0.5

    rounded_run = tmp_path / "rounded_run"
    shutil.copytree(trained_run, rounded_run)
    _with_model_class(rounded_run, "tests.helpers.rounding.TF32Autoencoder")
    caplog.clear()
    summary = segment(compose_config("segment", [f"run_dir={rounded_run}", *settings], rounded_seg))["summary"]
    assert summary["health"]["resolved"] is False and summary["health"]["resolution"] < 0.5
    assert json.loads((rounded_seg / "summary.json").read_text())["health"]["resolved"] is False
    warned = [record.getMessage() for record in caplog.records if "Numerical resolution" in record.getMessage()]
    assert len(warned) == 1 and "TF32" in warned[0] and "optimizer.lr" not in warned[0]

    report = write_report([tmp_path / "segs"], out=tmp_path / "report")
    assert "not resolved" in report.markdown
    assert "1 run left out of every comparison" in (tmp_path / "report" / "claims.md").read_text()


def test_a_raw_diffusers_autoencoder_segments_without_an_adapter() -> None:
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=2,
        norm_num_groups=4,
        sample_size=16,
    ).eval()
    images = torch.rand(2, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", lns.PrecisionWarning)
        result = lns.segment_images(vae, images, n_clusters=3, perturbations=5)
    assert result.labels.shape == (2, 16, 16) and not vae.training
    expected = ((vae.decode(vae.encode(images * 2 - 1).latent_dist.mean).sample + 1) / 2).clamp(0, 1)
    assert torch.allclose(result.reconstructions, expected.detach(), atol=1e-6)  # its [-1, 1] range, read as such


def test_a_diffusers_output_object_from_a_wrapped_model_names_the_adapter() -> None:
    class Output:
        latent_dist = None

    class Wrapper(nn.Module):
        def encode(self, images: Tensor) -> Output:
            return Output()

        def decode(self, latent: Tensor) -> Tensor:
            return latent

    with pytest.raises(lns.LNSError, match=r"lns\.models\.DiffusersAutoencoder"):
        lns.segment_images(Wrapper(), torch.rand(1, 3, 4, 4), n_clusters=2)


def test_the_random_weights_control_is_told_what_it_is_not_to_retrain() -> None:
    stats = {"noise_response": 1e-6, "zero_pixel_fraction": 0.95, "resolution": 0.9}
    control = no_signal_message(stats, SignalThresholds(), random_weights=True)
    trained = no_signal_message(stats, SignalThresholds())
    assert "weights=random" in control and "optimizer.lr" not in control and "weights=random" not in trained
    assert "optimizer.lr" in trained
