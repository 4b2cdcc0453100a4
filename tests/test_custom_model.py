"""model=custom: a class defined outside lns (here, in this test module) trains with run_train.py's code and
segments with run_segment.py run_dir=<run>, which rebuilds it from what the run recorded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from lns.errors import LNSError
from lns.segment import segment
from lns.train import train
from tests.helpers import REPO, TINY_SEGMENT, TINY_TRAIN, compose_config

TARGET = f"{__name__}.TinyConvAutoencoder"


class TinyConvAutoencoder(nn.Module):
    """3x64x64 images <-> a (latent_channels)x4x4 grid; decode returns images in [0, 1] (no logits)."""

    def __init__(self, latent_channels: int = 2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 4, 4), nn.ReLU(), nn.Conv2d(8, latent_channels, 4, 4))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(latent_channels, 8, 4, 4), nn.ReLU(), nn.ConvTranspose2d(8, 3, 4, 4)
        )

    def encode(self, images: Tensor) -> Tensor:
        return self.encoder(images)

    def decode(self, latent: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(latent))


def custom_training(data_dir: Path, *overrides: str) -> list[str]:
    kept = [option for option in TINY_TRAIN if not option.startswith("model.")]
    return [*kept, "model=custom", f"paths.data_dir={data_dir}", "logger=none", *overrides]


@pytest.mark.e2e
def test_a_class_outside_lns_trains_and_segments_through_its_target(tiny_data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = custom_training(tiny_data_dir, f"model._target_={TARGET}", "+model.latent_channels=3")
    assert train(compose_config("train", config, run))["global_step"] == 4
    out = tmp_path / "seg"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    command = [sys.executable, str(REPO / "run_segment.py"), f"run_dir={run}", f"hydra.run.dir={out}", *TINY_SEGMENT]
    done = subprocess.run(command, cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["model"], summary["n_images"]) == ("TinyConvAutoencoder", 4)
    assert (out / "figures" / "segmentations.png").is_file()


def test_a_target_that_cannot_be_imported_is_named(tiny_data_dir: Path, tmp_path: Path) -> None:
    config = custom_training(tiny_data_dir, "model._target_=no_such_package.Model")
    with pytest.raises(LNSError, match=r"The model class no_such_package.Model cannot be imported \(ModuleNotFound"):
        train(compose_config("train", config, tmp_path / "run"))
    with pytest.raises(LNSError, match=r"model._target_ is unset"):
        train(compose_config("train", custom_training(tiny_data_dir), tmp_path / "unset"))


def test_segmenting_a_run_whose_class_is_gone_names_the_class(trained_run: Path, tmp_path: Path) -> None:
    moved = tmp_path / "run"
    shutil.copytree(trained_run, moved)
    config = moved / "run_config.yaml"
    config.write_text(config.read_text().replace("lns.models.Autoencoder", "gone_package.Autoencoder"))
    with pytest.raises(LNSError, match=r"The model class gone_package.Autoencoder cannot be imported"):
        segment(compose_config("segment", [f"run_dir={moved}", *TINY_SEGMENT], tmp_path / "seg"))


@pytest.mark.e2e
def test_the_entry_point_prints_the_import_error_as_one_paragraph(tiny_data_dir: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(REPO / "run_train.py"),
        *custom_training(tiny_data_dir, "model._target_=no_such_package.Model"),
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "error: The model class no_such_package.Model cannot be imported" in done.stderr
    assert "Traceback" not in done.stderr
