"""The SLURM path on a real one-node cluster (`.ci/slurm-up` brings one up): a sweep submitted with
``launcher=slurm``, a time-limited job requeued by submitit, and two-task DDP under ``srun``.

Skipped only where ``sbatch`` is absent; where it is present the cluster must answer.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, TINY_TRAIN

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("sbatch") is None, reason="no sbatch: SLURM is not installed (see .ci/slurm-up)"),
]

# Tiny CPU jobs on the test cluster: no GPU, one core and little memory each.
SLURM_CPU = [
    "launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
    "hydra.launcher.timeout_min=10",
]
SEGMENT_TINY = [
    "segment=paper",
    "segment.test_num=3",
    "segment.jobs.paper.noise.perturb_num=6",
    "segment.figures_num=1",
]


@pytest.fixture(scope="module", autouse=True)
def cluster_answers() -> None:
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if "is UP" not in ping.stdout:
        pytest.fail(f"sbatch is installed but the SLURM controller does not answer; run .ci/slurm-up.\n{ping.stdout}")


def submit_sweep(sweep: Path, *overrides: str, timeout: int = 420) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    command = [sys.executable, "run_train.py", "-m", *overrides, f"hydra.sweep.dir={sweep}"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def submitit_jobs(sweep: Path) -> list[str]:
    """The folders of submitit's job logs: ``<job id>`` and, for array jobs, ``<array id>_<task>``."""
    return sorted(path.name for path in (sweep / ".submitit").glob("[0-9]*"))


def train_rows(run_dir: Path) -> list[int]:
    with (run_dir / "logs" / "metrics.csv").open(newline="") as file:
        return [int(row["step"]) for row in csv.DictReader(file) if row["train/loss"]]


def test_a_two_job_sweep_trains_and_segments_each_run_and_ends_with_the_report(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = submit_sweep(sweep, "seed=1,2", *TINY_TRAIN, *SLURM_CPU, *SEGMENT_TINY, f"paths.data_dir={tiny_data_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    (array,) = [name for name in submitit_jobs(sweep) if "_" not in name]  # one array job, a task per run
    assert sorted(name for name in submitit_jobs(sweep) if "_" in name) == [f"{array}_0", f"{array}_1"]
    for job in ("0", "1"):
        assert torch.load(sweep / job / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
        summary = json.loads((sweep / job / "segment" / "paper" / "summary.json").read_text())
        assert summary["n_images"] == 3 and summary["run_dir"] == str(sweep / job)
    assert "| 0 | done | 1 |" in (sweep / "jobs.md").read_text()
    assert "kanizsa" in (sweep / "table.md").read_text()


@pytest.fixture
def release_requeued_jobs(tmp_path: Path) -> Iterator[Path]:
    """SLURM holds a requeued job for about two minutes (its EligibleTime); start it at once instead, so the test
    does not wait. The requeue itself, the signal and the resume are untouched."""
    sweep = tmp_path / "sweep"
    done = threading.Event()

    def release() -> None:
        while not done.wait(2):
            for job in submitit_jobs(sweep) if (sweep / ".submitit").is_dir() else []:
                job_id = job.split("_")[0]
                state = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
                if "JobState=PENDING" in state and "Reason=BeginTime" in state:
                    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    yield sweep
    done.set()
    thread.join()


def test_a_job_at_its_time_limit_is_requeued_and_resumes_where_it_stopped(
    tiny_data_dir: Path, release_requeued_jobs: Path
) -> None:
    """One-minute limit, SIGUSR2 45 s before it: the first attempt waits at step 3 for the signal (tests.test_sweeps.
    PauseForPreemption), writes last.ckpt there, submitit requeues it, the second attempt resumes and finishes."""
    sweep = release_requeued_jobs
    start = time.monotonic()
    result = submit_sweep(
        sweep,
        "seed=1",
        *TINY_TRAIN,
        *SLURM_CPU,
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=45",
        "trainer.max_steps=6",
        "callbacks.checkpoint.every_n_train_steps=6",
        "+callbacks.pause._target_=tests.test_sweeps.PauseForPreemption",
        "+callbacks.pause.step=3",
        "+callbacks.pause.timeout_s=150",
        f"paths.data_dir={tiny_data_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = sweep / "0"
    log = (run / "run_train.log").read_text()
    assert "Wrote checkpoints/last.ckpt at step 3 for submitit to requeue this job." in log
    assert "Requeued job" in log
    assert f"Restoring states from the checkpoint path at {run / 'checkpoints' / 'last.ckpt'}" in log
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    assert sorted(path.name for path in (run / "logs").iterdir()) == ["hparams.yaml", "metrics.csv"]
    assert train_rows(run) == list(range(1, 7))  # one history: every step once, across both attempts
    assert time.monotonic() - start < 400


def test_two_task_ddp_under_srun_keeps_the_geco_state_identical_on_both_ranks(tiny_data_dir: Path, tmp_path: Path):
    sweep = tmp_path / "sweep"
    result = submit_sweep(
        sweep,
        "seed=1",
        *TINY_TRAIN,
        *SLURM_CPU,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "+callbacks.rank._target_=lns.training.monitoring.rank_consistency.RankConsistency",
        *SEGMENT_TINY,
        f"paths.data_dir={tiny_data_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = sweep / "0"
    log = (run / "run_train.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    ranks = json.loads((run / "rank_consistency.json").read_text())
    assert [entry["rank"] for entry in ranks] == [0, 1]
    assert ranks[0]["beta"] == ranks[1]["beta"] and ranks[0]["err_ema"] == ranks[1]["err_ema"]
    assert ranks[0]["weight_sum"] == ranks[1]["weight_sum"]
    assert json.loads((run / "segment" / "paper" / "summary.json").read_text())["n_images"] == 3


def test_launcher_slurm_alone_trains_on_a_cpu_cluster_from_another_directory(tiny_data_dir: Path, tmp_path: Path):
    """No launcher key but launcher=slurm: the job asks for no GPU, the CPU trainer's cores and no fixed memory."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    overrides = ["-m", "launcher=slurm", "seed=1", *TINY_TRAIN, f"paths.data_dir={tiny_data_dir}"]
    command = [sys.executable, str(REPO / "run_train.py"), *overrides]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "train" / "multirun").iterdir()
    assert torch.load(sweep / "0" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    (script,) = (sweep / ".submitit").rglob("*_submission.sh")
    requests = [line for line in script.read_text().splitlines() if line.startswith("#SBATCH")]
    assert {"#SBATCH --cpus-per-task=4", "#SBATCH --gpus-per-node=0"} <= set(requests)
    assert not [line for line in requests if line.startswith(("#SBATCH --gres", "#SBATCH --mem"))]


def test_a_submission_that_sbatch_refuses_ends_in_one_paragraph_and_jobs_md_says_so(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = submit_sweep(sweep, "launcher=slurm", "trainer=gpu", *SEGMENT_TINY, f"paths.data_dir={tiny_data_dir}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    paragraph = " ".join(result.stderr.split("error: sbatch refused", 1)[1].split("\n\n", 1)[0].split())
    assert '"Invalid generic resource (gres) specification"' in paragraph
    assert "hydra.launcher.gpus_per_node=0" in paragraph and "trainer=cpu" in paragraph
    assert (sweep / "jobs.md").read_text().startswith("The submission failed, so no job ran: sbatch refused")
    assert not [path for path in sweep.iterdir() if path.is_dir() and not path.name.startswith(".")]
