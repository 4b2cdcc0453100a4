"""Multirun: sweep presets, the local submitit launcher with a preempted job, the SLURM launcher config, the
segmentation sweep feeding the report, and run directories that never collide."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest
import pytorch_lightning as pl
import submitit
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_lightning.plugins.environments import SLURMEnvironment

from lns.data.catalog import GG_DATASETS
from lns.report.__main__ import main as report_main
from lns.runs.atomic import atomic_write_text
from lns.train import build_trainer, train
from lns.training.safety.requeue import CheckpointBeforeRequeue, submitit_signal
from tests.helpers import REPO, TINY_SEGMENT, TINY_TRAIN, compose_config, compose_with_hydra, sweep_jobs
from tests.helpers.wandb_files import offline_runs, read_run


def test_table1_preset_sweeps_six_datasets_two_models_three_seeds_with_paper_settings() -> None:
    cfg = compose_with_hydra("train", ["sweep=table1"])
    jobs = sweep_jobs(cfg, [])
    assert len(jobs) == 36
    assert {job["data"] for job in jobs} == set(GG_DATASETS)
    assert {job["model"] for job in jobs} == {"ae", "vae"}
    assert {job["seed"] for job in jobs} == {"1", "2", "3"}
    assert len({tuple(sorted(job.items())) for job in jobs}) == 36
    assert cfg.experiment_name == "paper" and cfg.trainer.max_steps == 1_100_000
    assert len(sweep_jobs(cfg, ["data=kanizsa", "seed=1"])) == 2


@pytest.mark.parametrize(
    ("preset", "key", "values"),
    [
        ("noise_std", "noise.std", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]),
        ("perturb_num", "noise.perturb_num", [2, 3, 5, 10, 20, 40]),
    ],
)
def test_segment_presets_sweep_one_noise_setting(preset: str, key: str, values: list[float]) -> None:
    cfg = compose_with_hydra("segment", [f"sweep={preset}", "run_dir=/runs/a"])
    jobs = sweep_jobs(cfg, ["run_dir=/runs/a,/runs/b"])
    assert len(jobs) == 2 * len(values)
    assert sorted({float(job[key]) for job in jobs}) == values
    assert cfg.experiment_name == preset


def test_run_and_sweep_directories_differ_for_runs_started_in_the_same_second() -> None:
    first = compose_with_hydra("train", ["paths.root_dir=/out"]).hydra
    second = compose_with_hydra("train", ["paths.root_dir=/out"]).hydra
    assert first.run.dir != second.run.dir
    assert first.sweep.dir != second.sweep.dir
    assert OmegaConf.to_container(first.sweep)["subdir"] == "${hydra.job.num}"


class PauseForPreemption(pl.Callback):
    """Test helper for a launched job: at ``step``, unless the run resumed, write ``paused.pid`` and wait until
    submitit's signal arrives, so the test can preempt the job at a known step."""

    def __init__(self, step: int, timeout_s: float = 120.0) -> None:
        self.step = step
        self.timeout_s = timeout_s

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        pid_file = Path(trainer.default_root_dir) / "paused.pid"
        if trainer.global_step != self.step or pid_file.exists():
            return
        (requeue,) = [cb for cb in trainer.callbacks if isinstance(cb, CheckpointBeforeRequeue)]
        atomic_write_text(pid_file, str(os.getpid()))  # the test reads it as soon as it exists
        deadline = time.monotonic() + self.timeout_s
        while not requeue.requested:
            if time.monotonic() > deadline:
                raise TimeoutError("no preemption signal arrived")
            time.sleep(0.05)


def wait_for(paths: list[Path], process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(path.exists() for path in paths):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the jobs never paused:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


@pytest.mark.e2e
def test_local_launcher_runs_two_jobs_and_a_preempted_job_resumes_where_it_stopped(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    """Two table1 jobs through submitit_local; each is preempted at step 3 (no periodic checkpoint yet), writes
    last.ckpt, is requeued by submitit with the same overrides and finishes from that checkpoint."""
    sweep_dir = tmp_path / "sweep"
    command = [
        sys.executable,
        "run_train.py",
        "-m",
        "launcher=local",
        "sweep=table1",
        "data=kanizsa",
        "model=ae",
        "seed=1,2",
        f"paths.data_dir={tiny_data_dir}",
        f"hydra.sweep.dir={sweep_dir}",
        *TINY_TRAIN,
        "trainer.max_steps=6",
        "trainer.val_check_interval=6",
        "callbacks.checkpoint.every_n_train_steps=6",
        "callbacks.reconstructions.every_n_steps=6",
        "+callbacks.pause._target_=tests.test_sweeps.PauseForPreemption",
        "+callbacks.pause.step=3",
    ]
    log = tmp_path / "multirun.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    jobs = [sweep_dir / "0", sweep_dir / "1"]
    try:
        wait_for([job / "paused.pid" for job in jobs], process, log, timeout_s=240)
        for job in jobs:
            os.kill(int((job / "paused.pid").read_text()), submitit_signal())
        assert process.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:  # a failure above: stop the multirun and its submitit jobs
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert len(list((sweep_dir / ".submitit").glob("[0-9]*"))) == 2
    seeds = set()
    for job in jobs:
        log = (job / "run_train.log").read_text()
        assert "Wrote checkpoints/last.ckpt at step 3 for submitit to requeue this job." in log
        assert f"Restoring states from the checkpoint path at {job / 'checkpoints' / 'last.ckpt'}" in log
        checkpoints = sorted(path.name for path in (job / "checkpoints").iterdir())
        assert checkpoints == ["last.ckpt", "step00000006.ckpt"]
        assert torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
        seeds.add((job / ".hydra" / "overrides.yaml").read_text().count("seed=1"))
    assert seeds == {0, 1}


class SignalAtStep(pl.Callback):
    """Sends this process submitit's preemption signal after training step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), submitit_signal())


@pytest.mark.e2e
def test_submitit_handler_runs_only_after_the_current_step_is_saved(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    last = tmp_path / "checkpoints" / "last.ckpt"
    seen: list[int] = []

    def submitit_handler(signum: int, frame: object) -> None:
        seen.append(torch.load(last, weights_only=True)["global_step"])

    overrides = [
        *TINY_TRAIN,
        f"paths.data_dir={tiny_data_dir}",
        "logger=none",
        "trainer.max_steps=8",
        "callbacks.checkpoint.every_n_train_steps=8",
        "+callbacks.signal._target_=tests.test_sweeps.SignalAtStep",
        "+callbacks.signal.step=3",
    ]
    previous = signal.signal(submitit_signal(), submitit_handler)
    try:
        result = train(compose_config("train", overrides, tmp_path))
        assert signal.getsignal(submitit_signal()) is submitit_handler
    finally:
        signal.signal(submitit_signal(), previous)
    assert seen == [3]
    assert result["global_step"] == 3 and result["interrupted"]


@pytest.fixture
def fake_srun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit's SLURM executor refuses to start where no ``srun`` is on the PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def slurm_submission(overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[submitit.AutoExecutor, int]:
    """Run hydra-submitit-launcher's ``launch`` on the composed config up to the submission: the executor it
    configured (nothing is submitted) and the number of jobs."""
    cfg = compose_with_hydra("train", overrides)
    captured: dict = {}

    def map_array(executor: submitit.AutoExecutor, function: object, *iterables: list) -> list:
        captured.update(executor=executor, jobs=len(list(zip(*iterables, strict=True))))
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    launcher.launch([["seed=1"], ["seed=2"]], initial_job_idx=0)
    return captured["executor"], captured["jobs"]


def test_slurm_launcher_config_becomes_the_expected_sbatch_script(
    fake_srun: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor, jobs = slurm_submission(
        [
            "launcher=slurm",
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.timeout_min=600",
            "hydra.launcher.mem_gb=64",
            "hydra.launcher.setup=[module load cuda,source .venv/bin/activate]",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        monkeypatch,
    )
    assert jobs == 2
    slurm = executor._executor
    assert isinstance(slurm, submitit.SlurmExecutor)
    assert slurm.max_num_timeout == 20
    script = slurm._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --nodes=2",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
        "#SBATCH --time=600",
        "#SBATCH --signal=USR2@120",
        "module load cuda",
        "source .venv/bin/activate",
    ):
        assert line in script.splitlines(), f"{line!r} not in\n{script}"
    assert str(tmp_path / "sweep" / ".submitit") in script


def test_slurm_tasks_follow_trainer_devices(fake_srun: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executor, _ = slurm_submission(["launcher=slurm", "trainer=gpu", f"hydra.sweep.dir={tmp_path}"], monkeypatch)
    script = executor._executor._make_submission_file_text("python", "uid").splitlines()
    assert {"#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=1", "#SBATCH --nodes=1"} <= set(script)


class RecordRequeueHandler(pl.Callback):
    """Records the SIGUSR1 handler in place during training (Lightning's SLURM auto-requeue would set one)."""

    seen: ClassVar[list[object]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        self.seen.append(signal.getsignal(signal.SIGUSR1))


@pytest.mark.e2e
def test_under_slurm_lightning_leaves_requeueing_to_submitit(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slurm = {
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_JOB_NAME": "train",
        "SLURM_JOB_ID": "77",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "node1",
    }
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    overrides = [
        *TINY_TRAIN,
        f"paths.data_dir={tiny_data_dir}",
        "logger=none",
        "trainer.max_steps=1",
        "+callbacks.record._target_=tests.test_sweeps.RecordRequeueHandler",
    ]
    cfg = compose_config("train", overrides, tmp_path)
    trainer = build_trainer(cfg, tmp_path, [], [])
    environment = trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and not environment.auto_requeue
    RecordRequeueHandler.seen.clear()
    default = signal.getsignal(signal.SIGUSR1)
    assert train(cfg)["global_step"] == 1
    assert RecordRequeueHandler.seen == [default]


@pytest.mark.e2e
def test_segment_multirun_over_two_noise_values_feeds_the_report_and_wandb(
    trained_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp_path)}
    command = [
        sys.executable,
        "run_segment.py",
        "-m",
        "sweep=noise_std",
        "noise.std=1e-3,1e-2",
        f"run_dir={trained_run}",
        f"paths.data_dir={tiny_data_dir}",
        f"hydra.sweep.dir={sweep_dir}",
        "logger=wandb",
        *TINY_SEGMENT,
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    ids = set()
    for number, std in enumerate((1e-3, 1e-2)):
        job = sweep_dir / str(number)
        assert json.loads((job / "summary.json").read_text())["noise"]["std"] == std
        (folder,) = offline_runs(job)
        logged = read_run(folder)
        assert logged["exits"] == [0]
        assert logged["group"] == "noise_std-kanizsa"
        assert {"segmentation/table/_type", "figures/segmentations/_type"} <= logged["keys"]
        ids.add(logged["id"])
    assert len(ids) == 2

    assert report_main([str(sweep_dir)]) == 0
    assert "kanizsa" in (sweep_dir / "table.md").read_text()
    assert (sweep_dir / "ari_vs_std.png").stat().st_size > 0


@pytest.mark.e2e
def test_a_user_error_in_one_job_does_not_stop_the_rest_of_the_sweep(
    trained_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "run_segment.py",
        "-m",
        f"run_dir={tmp_path / 'missing'},{trained_run}",
        f"paths.data_dir={tiny_data_dir}",
        f"hydra.sweep.dir={sweep}",
        *TINY_SEGMENT,
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "is not a training run directory" in result.stderr
    assert not (sweep / "0" / "summary.json").exists()
    assert (sweep / "1" / "summary.json").is_file()
