"""End-to-end training: the real entry point, resume, experiment presets and simulated data parallelism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lns.train import train
from tests.helpers import CONF, REPO, TINY_TRAIN, compose_config


def run_train_cli(data_dir: Path, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "run_train.py",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        *TINY_TRAIN,
        *overrides,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_run_train_writes_checkpoints_config_logs_and_figures(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_train_cli(tiny_data_dir, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "checkpoints" / "step00000002.ckpt").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "logs" / "metrics.csv").is_file()
    assert (run_dir / "figures" / "curves.png").stat().st_size > 0
    assert (run_dir / "figures" / "reconstructions_step00000004.png").stat().st_size > 0
    assert "run directory" in result.stdout


@pytest.mark.e2e
def test_missing_dataset_is_one_paragraph_with_the_generate_command(tmp_path: Path) -> None:
    result = run_train_cli(tmp_path / "nowhere", tmp_path / "run")
    assert result.returncode == 1
    assert "python -m data_gen" in result.stderr
    assert "Traceback" not in result.stderr


def _final_state(cfg) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    return checkpoint["state_dict"]


@pytest.mark.e2e
def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_data_dir: Path, tmp_path: Path) -> None:
    common = [
        *TINY_TRAIN,
        f"paths.data_dir={tiny_data_dir}",
        "logger=none",
        "model=vae",
        "trainer.max_steps=6",
    ]
    straight = compose_config("train", common, tmp_path / "straight")
    train(straight)

    first = compose_config("train", [*common, "trainer.max_steps=3"], tmp_path / "split")
    train(first)
    second = compose_config("train", common, tmp_path / "split")
    result = train(second)
    assert result["resumed_from"] == tmp_path / "split" / "checkpoints" / "last.ckpt"
    assert result["global_step"] == 6

    expected, resumed = _final_state(straight), _final_state(second)
    assert expected.keys() == resumed.keys()
    assert "objective.beta" in expected
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
@pytest.mark.e2e
def test_every_experiment_composes_and_trains_one_step(experiment: str, tiny_data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        [f"experiment={experiment}", *TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", "trainer.max_steps=1"],
        tmp_path,
    )
    assert cfg.experiment_name == experiment
    assert train(cfg)["global_step"] == 1


def test_paper_preset_has_the_paper_settings(tmp_path: Path) -> None:
    cfg = compose_config("train", ["experiment=paper", "data=closure", "model=vae"], tmp_path)
    assert cfg.optimizer.lr == 5e-5
    assert list(cfg.optimizer.betas) == [0.9, 0.999]
    assert cfg.data.batch_size == 64
    assert cfg.model.z_dim == 15
    assert cfg.trainer.max_steps == 1_100_000
    assert cfg.objective.goal == 0.0006
    assert cfg.data.name == "closure"
    assert cfg.model.variational


@pytest.mark.e2e
def test_ddp_sim_keeps_geco_state_identical_on_both_ranks(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    result = run_train_cli(
        tiny_data_dir,
        run_dir,
        "trainer=ddp_sim",
        "model=vae",
        "data.batch_size=4",
        "+callbacks.consistency._target_=lns.training.monitoring.rank_consistency.RankConsistency",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = json.loads((run_dir / "rank_consistency.json").read_text())
    assert [entry["rank"] for entry in ranks] == [0, 1]
    assert ranks[0]["beta"] == ranks[1]["beta"]
    assert ranks[0]["err_ema"] == ranks[1]["err_ema"]
    assert ranks[0]["beta"] != 1.0, "GECO never updated"
