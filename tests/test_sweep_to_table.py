"""From a sweep to the table: runs remember their data, sweeps are segmented whole, training segments its own final
checkpoint, a multirun ends with its report, and a resumed run keeps one metrics history."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import initialize_config_dir
from omegaconf import OmegaConf, open_dict

from lns.errors import LNSError
from lns.report import write_report
from lns.segment import segment
from lns.sweeps.final_segmentation import segment_final_checkpoint, segmentation_configs
from lns.sweeps.shared_segmentation import segment_once
from lns.sweeps.sweep_runs import expand_run_dir_argument, expand_run_dirs
from lns.train import train
from lns.training.monitoring.csv_logger import continue_history
from tests.helpers import CONF, REPO, TINY_SEGMENT, TINY_TRAIN, compose_config


def segment_config(run_dir: Path, output_dir: Path, *overrides: str):
    return compose_config("segment", [f"run_dir={run_dir}", *TINY_SEGMENT, *overrides], output_dir)


@pytest.mark.e2e
def test_a_run_records_its_data_folder_and_segmentation_uses_it(trained_run: Path, tiny_data_dir: Path, tmp_path):
    recorded = OmegaConf.load(trained_run / "run_config.yaml").paths.data_dir
    assert recorded == str(tiny_data_dir.absolute())
    cfg = segment_config(trained_run, tmp_path / "seg")
    assert cfg.paths.data_dir is None  # nothing on the command line: the run's folder
    assert segment(cfg)["summary"]["n_images"] == 4


@pytest.mark.e2e
def test_the_command_line_data_folder_wins_over_the_recorded_one(trained_run: Path, tmp_path: Path) -> None:
    cfg = segment_config(trained_run, tmp_path / "seg", f"paths.data_dir={tmp_path / 'elsewhere'}")
    with pytest.raises(LNSError, match="elsewhere"):
        segment(cfg)


@pytest.mark.e2e
def test_a_recorded_data_folder_that_is_gone_is_named_with_the_override(trained_run: Path, tmp_path: Path) -> None:
    moved = tmp_path / "run"
    shutil.copytree(trained_run, moved)
    config = OmegaConf.load(moved / "run_config.yaml")
    config.paths.data_dir = str(tmp_path / "gone")
    OmegaConf.save(config, moved / "run_config.yaml")
    with pytest.raises(LNSError, match=r"trained on data in .*gone.* paths\.data_dir=<folder>"):
        segment(segment_config(moved, tmp_path / "seg"))


@pytest.mark.e2e
def test_a_run_trained_before_the_data_folder_was_recorded_uses_the_default(
    trained_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old_run"
    shutil.copytree(trained_run, old)
    config = OmegaConf.load(old / "run_config.yaml")
    del config["paths"]
    OmegaConf.save(config, old / "run_config.yaml")
    cfg = segment_config(old, tmp_path / "seg")
    with open_dict(cfg):
        cfg.paths.root_dir = str(tiny_data_dir.parent)  # <root>/data is the default, as before
    shutil.copytree(tiny_data_dir, tiny_data_dir.parent / "data", dirs_exist_ok=True)
    assert segment(cfg)["summary"]["n_images"] == 4


def fake_run(path: Path, step: int | None, max_steps: int = 4) -> Path:
    """A training run directory with a last.ckpt at ``step`` (none when None) of ``max_steps``."""
    (path / ".hydra").mkdir(parents=True)
    (path / "run_config.yaml").write_text("seed: 0\n")
    (path / ".hydra" / "config.yaml").write_text(f"trainer:\n  max_steps: {max_steps}\n")
    if step is not None:
        (path / "checkpoints").mkdir()
        torch.save({"global_step": step}, path / "checkpoints" / "last.ckpt")
    return path


def test_a_sweep_directory_expands_to_its_completed_runs_in_job_order(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for job, step in [("0", 4), ("1", 2), ("2", None), ("10", 4), ("3", 4)]:
        fake_run(sweep / job, step)
    expanded, left_out = expand_run_dirs([str(sweep)])
    assert expanded == [str(sweep / job) for job in ("0", "3", "10")]
    assert [(run.path.name, run.missing) for run in left_out] == [
        ("1", "last.ckpt at step 2 of 4"),
        ("2", "no checkpoint"),
    ]


def test_the_command_line_becomes_a_multirun_with_one_job_per_run(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    for job, step in [("0", 4), ("1", 4), ("2", 1)]:
        fake_run(sweep / job, step)
    argv = expand_run_dir_argument(["run_segment.py", f"run_dir={sweep}", "test_num=3"])
    assert argv == ["run_segment.py", "-m", f"run_dir='{sweep / '0'}','{sweep / '1'}'", "test_num=3"]
    assert "1 training run(s) have no final checkpoint" in capsys.readouterr().err
    single = fake_run(tmp_path / "single", 4)
    assert expand_run_dir_argument(["run_segment.py", f"run_dir={single}"]) == ["run_segment.py", f"run_dir={single}"]


def test_a_sweep_without_any_finished_run_is_one_clear_error(tmp_path: Path) -> None:
    fake_run(tmp_path / "sweep" / "0", 1)
    with pytest.raises(LNSError, match=r"No training run .* has its final checkpoint .*step 1 of 4"):
        expand_run_dirs([str(tmp_path / "sweep")])


def test_segment_all_composes_the_paper_setting_the_output_control_and_the_jacobian(tmp_path: Path) -> None:
    cfg = compose_config("train", ["segment=all", "segment.test_num=5"], tmp_path)
    with pytest.raises(LNSError, match=r"segment= needs the configs of run_segment\.py"):
        segmentation_configs(cfg, tmp_path)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        configs = segmentation_configs(cfg, tmp_path)
    assert sorted(configs) == ["jacobian", "output_noise", "paper"]
    paper, control, jacobian = configs["paper"], configs["output_noise"], configs["jacobian"]
    assert (paper.method.name, paper.noise.site, paper.noise.std, paper.noise.perturb_num) == (
        "noise",
        "latent",
        0.001,
        40,
    )
    assert (control.method.name, control.noise.site) == ("noise", "output")
    assert jacobian.method.name == "jacobian"
    assert {c.test_num for c in configs.values()} == {5} and {c.split for c in configs.values()} == {"test"}
    assert paper.clustering.name == "ward" and paper.run_dir == str(tmp_path)
    assert paper.paths.output_dir == str(tmp_path / "segment" / "paper")


def test_the_training_runs_progress_bar_setting_holds_for_its_segmentations(tmp_path: Path) -> None:
    quiet = compose_config("train", ["segment=all", "trainer.enable_progress_bar=false"], tmp_path)
    shown = compose_config("train", ["segment=paper"], tmp_path)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        assert {c.trainer.enable_progress_bar for c in segmentation_configs(quiet, tmp_path).values()} == {False}
        assert segmentation_configs(shown, tmp_path)["paper"].trainer.enable_progress_bar is True


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "logs" / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def test_continue_history_drops_the_rows_a_resumed_attempt_logs_again(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss\n0,0,3.0\n0,1,2.0\n0,2,1.5\n0,3,1.0\n")
    assert continue_history(path, 2) == ["epoch", "step", "train/loss"]
    assert path.read_text() == "epoch,step,train/loss\n0,0,3.0\n0,1,2.0\n"
    assert continue_history(tmp_path / "missing.csv", 0) == []


class TerminateAtStep(pl.Callback):
    """Sends this process SIGTERM after training step ``step`` (the graceful stop saves last.ckpt there)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.e2e
def test_a_resumed_run_continues_one_metrics_file_identical_to_an_uninterrupted_one(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    common = [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", "logger=csv", "trainer.max_steps=6"]
    whole = tmp_path / "whole"
    train(compose_config("train", common, whole))
    pieces = tmp_path / "pieces"
    stop = ["+callbacks.stop._target_=tests.test_sweep_to_table.TerminateAtStep", "+callbacks.stop.step=3"]
    assert train(compose_config("train", [*common, *stop], pieces))["interrupted"]
    assert train(compose_config("train", common, pieces))["global_step"] == 6
    assert sorted(p.name for p in (pieces / "logs").iterdir()) == ["hparams.yaml", "metrics.csv"]
    interrupted, uninterrupted = read_metrics(pieces), read_metrics(whole)
    # Every training row once, bit-identical to the uninterrupted run's; its validation rows too, beside the one
    # validation the stopping attempt ran when it stopped.
    train_rows = [[row for row in rows if row["train/loss"]] for rows in (interrupted, uninterrupted)]
    assert train_rows[0] == train_rows[1]
    assert [row["step"] for row in train_rows[0]] == [str(step) for step in range(1, 7)]
    assert [row for row in uninterrupted if row["val/loss"] and row not in interrupted] == []
    # The loss-curve figure draws the callback's history, which the checkpoint carried across the resume.
    curves = torch.load(pieces / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]["CurveFigures"]
    assert [step for step, _ in curves["history"]["train/loss"]] == list(range(1, 7))


def run_train_cli(*overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    command = [sys.executable, "run_train.py", *overrides]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.e2e
def test_a_training_sweep_segments_its_runs_and_ends_with_the_report_failed_jobs_included(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = run_train_cli(
        "-m",
        "data=kanizsa,closure",  # no dClosure in the tiny data folder: job 1 fails
        *[o for o in TINY_TRAIN if not o.startswith("data=")],
        "segment=paper",
        "segment.test_num=3",
        "segment.jobs.paper.noise.perturb_num=6",
        "segment.figures_num=1",
        f"paths.data_dir={tiny_data_dir}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode != 0  # a job failed, so the sweep says so
    summary = json.loads((sweep / "0" / "segment" / "paper" / "summary.json").read_text())
    assert (summary["dataset"], summary["n_images"], summary["noise"]["perturb_num"]) == ("kanizsa", 3, 6)
    assert (sweep / "0" / "segment" / "paper" / "per_image.csv").is_file()
    assert "error.txt" not in os.listdir(sweep / "0")
    assert "dClosure" in (sweep / "1" / "error.txt").read_text()
    table = (sweep / "table.md").read_text()
    assert "kanizsa" in table
    assert "job 1: failed: " in table and "dClosure" in table.split("job 1: failed: ")[1]
    jobs = (sweep / "jobs.md").read_text()
    assert "| 0 | done | 1 |" in jobs and "| 1 | failed | 0 |" in jobs
    assert f"sweep report: {sweep / 'table.md'}" in result.stderr
    assert {"table.csv", "claims.md"} <= set(os.listdir(sweep))


@pytest.mark.e2e
def test_a_run_recorded_before_a_setting_existed_still_resumes(trained_run: Path, tiny_data_dir: Path, tmp_path):
    old = tmp_path / "old_run"
    shutil.copytree(trained_run, old)
    config = OmegaConf.load(old / "run_config.yaml")
    del config.optimizer["betas"]  # as if optimizer.betas had been added to lns after this run was trained
    del config["paths"]
    OmegaConf.save(config, old / "run_config.yaml")
    overrides = [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", "logger=none", "trainer.max_steps=6"]
    result = train(compose_config("train", overrides, old))
    assert result["resumed_from"] == old / "checkpoints" / "last.ckpt" and result["global_step"] == 6


@pytest.mark.e2e
def test_a_multirun_from_another_directory_writes_its_sweep_under_that_directory(tiny_data_dir: Path, tmp_path):
    """No hydra.sweep.dir on the command line: the default sweep directory must resolve (outputs/ of the cwd)."""
    overrides = [o for o in TINY_TRAIN if not o.startswith("trainer.max_steps")]
    command = [sys.executable, str(REPO / "run_train.py"), "-m", "seed=1", "trainer.max_steps=2", *overrides]
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        [*command, f"paths.data_dir={tiny_data_dir}"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "train" / "multirun").iterdir()
    assert (sweep / "0" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.e2e
def test_segment_table_runs_every_method_the_report_compares(trained_run: Path, tiny_data_dir: Path, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    overrides = [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", "segment=table", "segment.test_num=2"]
    cfg = compose_config("train", [*overrides, "segment.figures_num=0", "+segment.clustering.backend.workers=1"], run)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        results = segment_final_checkpoint(cfg, run)
    assert len(results) == 10 and all(r["summary"]["n_images"] == 2 for r in results.values())
    report = write_report([run / "segment"])
    assert report.table.columns == [
        "AE",
        "AE (output noise)",
        "AE (jacobian)",
        "AE (activations decoder.14)",
        "AE (activations decoder.14, random weights)",
        "AE (random weights)",
        "felzenszwalb",
        "rgb",
        "rgbxy",
        "slic",
    ]
    claims = (run / "segment" / "claims.md").read_text()
    assert "LNS beats other unsupervised models" in claims and "Does segmentation need a trained network" in claims


def test_a_shared_segmentation_is_done_by_the_first_job_and_read_by_the_others(tmp_path: Path) -> None:
    registry = tmp_path / "sweep" / ".shared" / "kanizsa.rgb.0123.lock"
    done = []

    def segment_into(out_dir: Path):
        def run() -> dict:
            out_dir.mkdir(parents=True)
            (out_dir / "summary.json").write_text("{}")
            done.append(out_dir)
            return {"out_dir": out_dir}

        return run

    first, second = tmp_path / "0" / "rgb", tmp_path / "1" / "rgb"
    assert segment_once(registry, first, segment_into(first), lambda d: {"out_dir": d})["out_dir"] == first
    assert segment_once(registry, second, segment_into(second), lambda d: {"out_dir": d})["out_dir"] == first
    assert done == [first]
    shutil.rmtree(first)  # its result is gone: the next job segments for itself
    assert segment_once(registry, second, segment_into(second), lambda d: {"out_dir": d})["out_dir"] == second
