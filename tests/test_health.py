"""Training and segmentation health: plain checks on known inputs, then tiny runs through train/segment/report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from lns.errors import LNSError
from lns.models import Autoencoder
from lns.objectives import reconstruction_error
from lns.report import write_report
from lns.segment import segment
from lns.segmentation.health import SignalThresholds, has_signal, measure_signal, pixel_changes, signal_stats
from lns.train import train
from lns.training.monitoring.health import (
    HEALTH_FILE,
    HealthHistory,
    HealthThresholds,
    ProbeRecord,
    ignores_input,
    loss_flat,
    probe_record,
    read_health,
    window_records,
)
from lns.training.monitoring.health_callback import TrainingHealth
from lns.training.output_bias import MeanColourOutputBias, mean_colour_logits
from tests.helpers import TINY_SEGMENT, TINY_TRAIN, compose_config

QUICK = HealthThresholds(start_step=2, window=4, min_improvement=0.05, stuck_loss_ratio=0.9, min_variance_ratio=0.1)


def records(recons: list[float], *, output_variance: float = 5.0, input_variance: float = 10.0) -> list[ProbeRecord]:
    return [ProbeRecord(step, recon, output_variance, input_variance) for step, recon in enumerate(recons)]


# --- plain functions ---------------------------------------------------------------------------------------------


def test_probe_record_of_a_constant_reconstruction():
    images = torch.zeros(2, 1, 2, 2)
    images[1] = 1.0  # per-pixel variance across the two images: 0.25, over 4 pixels: 1.0
    constant = torch.full_like(images, 0.5)
    record = probe_record(7, constant, images)
    assert record.step == 7 and record.output_variance == 0.0
    assert record.input_variance == pytest.approx(1.0)
    assert record.recon == pytest.approx(4 * 0.25)  # (0.5)^2 per pixel, 4 pixels, mean over 2 images
    assert record.variance_ratio == 0.0 and record.loss_ratio == pytest.approx(1.0)
    assert probe_record(0, images, images).variance_ratio == pytest.approx(1.0)


def test_probe_needs_two_images_of_one_shape():
    with pytest.raises(LNSError, match="num_images"):
        probe_record(0, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))


def test_flat_loss_at_the_constant_image_level_is_flagged_once_the_window_is_covered():
    stuck = records([10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.1, 10.0])
    assert not loss_flat(stuck[:6], QUICK)  # steps 2..5 cover 3 < window steps
    assert loss_flat(stuck[:7], QUICK)  # steps 2..6: fell 2% at most, 0.98-1.01 x the mean image's error


def test_window_spans_whole_steps_when_the_probe_interval_does_not_divide_it():
    every_50 = [ProbeRecord(step, 10.0, 0.0, 10.0) for step in range(0, 601, 50)]
    thresholds = HealthThresholds(start_step=200, window=320)
    assert window_records(every_50[:11], thresholds) is None  # up to step 500: 300 steps from 200
    assert [r.step for r in window_records(every_50, thresholds)] == [250, 300, 350, 400, 450, 500, 550, 600]
    assert loss_flat(every_50, thresholds) and ignores_input(every_50, thresholds)


def test_improving_or_converged_losses_are_not_flagged():
    improving = records([10.0, 9.5, 9.0, 8.6, 8.2, 7.8, 7.4, 7.0])
    converged = records([3.0, 3.01, 2.99, 3.0, 3.02, 2.98, 3.0, 3.0])  # flat, but far below the mean image's 10
    assert not loss_flat(improving, QUICK) and not loss_flat(converged, QUICK)


def test_ignoring_the_input_is_flagged_only_when_it_lasts_the_whole_window():
    collapsed = records([5.0] * 8, output_variance=0.2)
    assert ignores_input(collapsed, QUICK)
    recovered = collapsed[:6] + records([5.0] * 8, output_variance=3.0)[6:]
    assert not ignores_input(recovered, QUICK)


def test_history_raises_each_problem_once_and_redoes_steps_after_a_resume():
    history = HealthHistory()
    raised = [history.add(record, QUICK, lr=5e-4) for record in records([10.0] * 8, output_variance=0.1)]
    assert [[flag["kind"] for flag in new] for new in raised] == [[]] * 6 + [["loss_flat", "ignores_input"], []]
    message = history.flags[0]["message"]
    assert "step 6" in message and "optimizer.lr=0.000125" in message and "trainer.max_steps" in message
    assert history.active == ["loss_flat", "ignores_input"]
    history.add(ProbeRecord(3, 2.0, 9.0, 10.0), QUICK, lr=5e-4)  # a resume from step 2 redoes step 3
    assert [r.step for r in history.records] == [0, 1, 2, 3] and history.active == []
    assert HealthHistory.from_dict(json.loads(json.dumps(history.to_dict(QUICK)))) == history


def test_thresholds_are_checked():
    with pytest.raises(LNSError, match="window"):
        HealthThresholds(window=0)
    with pytest.raises(LNSError, match="min_variance_ratio"):
        HealthThresholds(min_variance_ratio=-1)


def test_unreadable_health_file_is_explained(tmp_path: Path):
    assert read_health(tmp_path) is None
    (tmp_path / HEALTH_FILE).write_text("[1, 2")
    with pytest.raises(LNSError, match="delete it"):
        read_health(tmp_path)


def test_mean_colour_logits_and_the_output_bias_set_only_at_step_zero():
    images = torch.stack([torch.full((3, 2, 2), 0.5), torch.full((3, 2, 2), 1.0)])
    images[:, 2] = 0.0  # channel means 0.75, 0.75, 0 (clamped to 1e-3)
    expected = torch.logit(torch.tensor([0.75, 0.75, 1e-3]))
    assert torch.allclose(mean_colour_logits(images), expected)
    model = Autoencoder(z_dim=2)
    data = SimpleNamespace(train_images=images)
    MeanColourOutputBias().on_train_start(SimpleNamespace(global_step=3, datamodule=data), SimpleNamespace(model=model))
    assert not torch.allclose(model.decoder[-1].bias, expected)  # a resumed run keeps its trained bias
    MeanColourOutputBias().on_train_start(SimpleNamespace(global_step=0, datamodule=data), SimpleNamespace(model=model))
    assert torch.allclose(model.decoder[-1].bias, expected)


def test_zero_decoder_has_no_signal_and_a_responding_one_has():
    torch.manual_seed(0)
    model = Autoencoder(z_dim=4).eval()
    images = torch.rand(3, 3, 64, 64)
    settings = {"std": 1e-3, "perturb_num": 2, "seed": 0, "zero_atol": 0.0}
    alive = measure_signal(model, images, **settings)  # a fresh decoder responds weakly, but everywhere
    assert alive["noise_response"] > 1e-5 and alive["zero_pixel_fraction"] < 0.01
    assert has_signal(alive, SignalThresholds(min_noise_response=1e-5))
    with torch.no_grad():
        for parameter in model.decoder.parameters():
            parameter.zero_()
    dead = measure_signal(model, images, **settings)
    assert dead == {"noise_response": 0.0, "zero_pixel_fraction": 1.0, "resolution": None}  # nothing to resolve
    assert not has_signal(dead, SignalThresholds())
    assert alive["resolution"] > 0.5  # float32 resolves the fresh decoder's weak response


def test_signal_stats_of_a_linear_decoder():
    def decode(latents: torch.Tensor) -> torch.Tensor:  # logit = first latent on pixel 0, 0 on pixel 1
        return torch.stack([latents[:, 0], torch.zeros(len(latents))], dim=1).reshape(-1, 1, 1, 2)

    noise = torch.tensor([[[1.0, 0.0]]])  # one image, one perturbation of norm 1 along the first latent
    changes = pixel_changes(decode, torch.zeros(1, 2), noise, std=1e-3)
    stats = signal_stats(changes, noise, std=1e-3, zero_atol=0.0)
    # sigmoid'(0) = 1/4: pixel 0 changes by 2.5e-4 per 1e-3 of noise, pixel 1 not at all; median of (0.25, 0).
    assert stats["noise_response"] == pytest.approx(0.125, rel=1e-3)
    assert stats["zero_pixel_fraction"] == 0.5


# --- tiny runs through train, segment and report -------------------------------------------------------------------

HEALTH_EVERY_STEP = [
    "callbacks.health.every_n_steps=1",
    "callbacks.health.start_step=2",
    "callbacks.health.window=4",
]


def _train(data_dir: Path, run_dir: Path, *overrides: str) -> dict:
    return train(
        compose_config(
            "train", [*TINY_TRAIN, f"paths.data_dir={data_dir}", "logger=csv", *HEALTH_EVERY_STEP, *overrides], run_dir
        )
    )


class LinearAutoencoder(nn.Module):
    """16-pixel images through 16 latents: learns in a few dozen steps. Follows the model protocol (logits)."""

    decodes_logits = True

    def __init__(self) -> None:
        super().__init__()
        self.encoder, self.decoder = nn.Linear(16, 16), nn.Linear(16, 16)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.latent_mean(images)

    def latent_mean(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images.flatten(1))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents).view(-1, 1, 4, 4)


class TinyModule(pl.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.model, self.lr = LinearAutoencoder(), lr

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        logits = self.model.decode(self.model.latent_mean(batch))
        return reconstruction_error(logits, batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class TinyData(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        factors = torch.rand(64, 2, generator=generator) @ torch.rand(2, 16, generator=generator)
        self.images = (factors / factors.max()).view(64, 1, 4, 4)  # rank 2
        self.valid_images = self.images[:16]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.images, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))


def _health_of_tiny_run(tmp_path: Path, lr: float, steps: int) -> HealthHistory:
    health = TrainingHealth(every_n_steps=1, num_images=16, start_step=2, window=4)
    trainer = pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[health],
    )
    pl.seed_everything(0)
    trainer.fit(TinyModule(lr), datamodule=TinyData())
    assert HealthHistory.from_dict(read_health(tmp_path)) == health.history
    return health.history


def test_flat_tiny_run_is_flagged_within_the_window_and_an_improving_one_is_not(tmp_path: Path):
    flat = _health_of_tiny_run(tmp_path / "flat", lr=1e-9, steps=10)
    assert {flag["kind"]: flag["step"] for flag in flat.flags}["loss_flat"] == 6  # start 2 + window 4
    improving = _health_of_tiny_run(tmp_path / "improving", lr=3e-2, steps=40)
    assert improving.flags == [] and improving.records[-1].loss_ratio < 0.5


@pytest.mark.e2e
def test_health_survives_resume_as_one_history_and_reaches_the_report(tiny_data_dir: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    _train(tiny_data_dir, run_dir, "optimizer.lr=1e-9", "trainer.max_steps=4")
    first = read_health(run_dir)
    assert [r["step"] for r in first["records"]] == [1, 2, 3, 4] and first["healthy"]
    # As if the process had died after step 5 without a checkpoint: its record must be redone, not kept.
    stale = {**first, "records": [*first["records"], {**first["records"][-1], "step": 5, "recon": -1.0}]}
    (run_dir / HEALTH_FILE).write_text(json.dumps(stale))
    _train(tiny_data_dir, run_dir, "optimizer.lr=1e-9", "trainer.max_steps=8")
    resumed = read_health(run_dir)
    assert [r["step"] for r in resumed["records"]] == list(range(1, 9))
    assert all(r["recon"] > 0 for r in resumed["records"]) and not resumed["healthy"]
    assert {flag["kind"]: flag["step"] for flag in resumed["flags"]}["loss_flat"] == 6  # start 2 + window 4
    metrics = next((run_dir / "logs").rglob("metrics.csv")).read_text()
    assert "health/variance_ratio" in metrics.splitlines()[0]

    seg_dir = tmp_path / "seg"
    # A model this fresh barely responds to noise either; the thresholds at 0 let the training verdict show.
    no_signal_check = ["health.min_noise_response=0", "health.max_zero_fraction=1"]
    overrides = [f"run_dir={run_dir}", f"paths.data_dir={tiny_data_dir}", *TINY_SEGMENT, *no_signal_check]
    summary = segment(compose_config("segment", overrides, seg_dir))["summary"]
    assert summary["health"]["training_healthy"] is False and "loss_flat" in summary["health"]["training_problems"]
    report = write_report([seg_dir], out=tmp_path / "report")
    assert "(not learning, n=1)" in report.markdown
    assert "1 run left out of every comparison" in (tmp_path / "report" / "claims.md").read_text()


@pytest.mark.e2e
def test_zero_decoder_run_is_flagged_by_segmentation_and_marked_in_the_report(
    trained_run: Path, tiny_data_dir: Path, tmp_path: Path
):
    run_dir = tmp_path / "zeroed"
    shutil.copytree(trained_run, run_dir)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    content = torch.load(checkpoint, weights_only=False)
    for key, value in content["state_dict"].items():
        if key.startswith("model.decoder."):
            value.zero_()
    torch.save(content, checkpoint)
    seg_dir = tmp_path / "seg"
    summary = segment(
        compose_config("segment", [f"run_dir={run_dir}", f"paths.data_dir={tiny_data_dir}", *TINY_SEGMENT], seg_dir)
    )["summary"]
    assert summary["health"]["signal"] is False and summary["health"]["zero_pixel_fraction"] == 1.0
    report = write_report([seg_dir], out=tmp_path / "report")
    assert "(no signal, n=1)" in report.markdown
    assert "1 run left out of every comparison" in (tmp_path / "report" / "claims.md").read_text()


def _summary(root: Path, name: str, *, dataset: str, ari: float, site: str = "latent", health: dict | None) -> None:
    (root / name).mkdir(parents=True)
    data = {
        "ari_mean": ari,
        "dataset": dataset,
        "model": "ae",
        "features": "noise",
        "noise": {"std": 0.001, "perturb_num": 40, "site": site},
        "health": health,
    }
    (root / name / "summary.json").write_text(json.dumps(data))


def test_report_marks_flagged_runs_and_claims_leave_them_out(tmp_path: Path):
    dead = {"signal": False, "training_healthy": None}
    _summary(tmp_path, "k1", dataset="kanizsa", ari=0.6, health={"signal": True, "training_healthy": True})
    _summary(tmp_path, "k2", dataset="kanizsa", ari=0.0, health=dead)
    _summary(tmp_path, "k3", dataset="kanizsa", ari=0.1, site="output", health=None)
    _summary(tmp_path, "c1", dataset="closure", ari=0.0, health=dead)
    _summary(tmp_path, "c2", dataset="closure", ari=0.1, site="output", health=None)
    report = write_report([tmp_path], out=tmp_path / "report")
    assert "| kanizsa | 0.300 ± 0.300 (n=2, 1 no signal) |" in report.markdown
    assert "| closure | 0.000 (no signal, n=1) |" in report.markdown
    claims = (tmp_path / "report" / "claims.md").read_text()
    assert "2 runs left out of every comparison" in claims
    assert "| kanizsa | AE | 0.600 ± 0.000 (n=1) | 0.100 ± 0.000 (n=1) | +0.500 | yes |" in claims
    assert "| closure | AE |" not in claims
