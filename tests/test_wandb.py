"""W&B offline: one finished run per job, the same run id after a resume, losses, GECO beta and figures logged."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import wandb

from lns.train import train
from tests.helpers import TINY_TRAIN, compose_config
from tests.helpers.wandb_files import offline_runs, read_run

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))


def test_training_logs_one_finished_run_and_a_resume_continues_its_id(tiny_data_dir: Path, tmp_path: Path) -> None:
    common = [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", "logger=wandb", "tags=[tiny]"]
    run_dir = tmp_path / "run"
    train(compose_config("train", [*common, "trainer.max_steps=2"], run_dir))
    assert wandb.run is None

    (first,) = offline_runs(run_dir)
    logged = read_run(first)
    assert logged["id"] == (run_dir / "wandb_id.txt").read_text().strip()
    assert logged["exits"] == [0]
    assert logged["group"] == "default-kanizsa"
    assert {"train/loss", "train/recon", "train/geco_beta", "val/recon", "trainer/global_step"} <= logged["keys"]
    assert {"figures/reconstructions/filenames", "figures/curves/filenames"} <= logged["keys"]

    result = train(compose_config("train", [*common, "trainer.max_steps=4"], run_dir))
    assert result["resumed_from"] == run_dir / "checkpoints" / "last.ckpt"
    runs = offline_runs(run_dir)
    assert len(runs) == 2
    resumed = read_run(runs[1])
    assert resumed["id"] == logged["id"]
    assert resumed["exits"] == [0]
    assert "figures/reconstructions/filenames" in resumed["keys"]


class FailAtStep(pl.Callback):
    """Raises after training step ``step`` (a job that crashes)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("job failed on purpose")


def test_a_failing_job_still_finishes_its_run(tiny_data_dir: Path, tmp_path: Path) -> None:
    overrides = [
        *TINY_TRAIN,
        f"paths.data_dir={tiny_data_dir}",
        "logger=wandb",
        "+callbacks.fail._target_=tests.test_wandb.FailAtStep",
        "+callbacks.fail.step=1",
    ]
    with pytest.raises(RuntimeError, match="on purpose"):
        train(compose_config("train", overrides, tmp_path))
    assert wandb.run is None
    (folder,) = offline_runs(tmp_path)
    assert read_run(folder)["exits"] == [1]
