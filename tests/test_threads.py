"""A job's threads follow the CPUs it was given; a launcher=local sweep runs as many jobs at once as cores fit, and
as many on each GPU as local_launcher.jobs_per_gpu allows, each seeing only its slot's GPUs."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from lns.sweeps import threads
from lns.sweeps.threads import (
    SWEEP_GPUS,
    GpuShare,
    SweepGpus,
    count_gpus,
    given_cpus,
    gpu_share,
    gpu_slots,
    hold_slot,
    local_slots,
    share_cpus,
    slot_devices,
    sweep_gpus,
    take_slot,
)
from tests.helpers import CONF, REPO


def test_slurm_gives_the_cpus_unless_the_local_launcher_shares_the_machine() -> None:
    assert given_cpus({"SLURM_CPUS_PER_TASK": "3"}, None, usable=8) == 3
    assert given_cpus({"SLURM_CPUS_PER_TASK": "3"}, 8, usable=8) == 3
    assert given_cpus({}, 2, usable=8) == 2  # the launcher's cpus_per_task
    assert given_cpus({"SUBMITIT_EXECUTOR": "local", "SLURM_CPUS_PER_TASK": "4"}, 1, usable=8) == 1
    assert given_cpus({"SLURM_CPUS_PER_TASK": "16"}, None, usable=8) == 8  # never more than this process may use
    assert given_cpus({}, None, usable=8) is None  # nothing says: torch's defaults


def test_the_local_launcher_runs_as_many_jobs_at_once_as_fit_in_the_cores() -> None:
    assert [local_slots(cpus, usable=2) for cpus in (1, 2, 3)] == [2, 1, 1]
    assert [local_slots(cpus, usable=8) for cpus in (1, 3, 4)] == [8, 2, 2]


def test_a_job_takes_a_free_slot_and_holds_it_until_its_process_ends(tmp_path: Path) -> None:
    other = os.open(tmp_path / "0.lock", os.O_RDWR | os.O_CREAT)  # slot 0 held by someone else
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        assert hold_slot(tmp_path, slots=2) == 1
        probe = os.open(tmp_path / "1.lock", os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(probe)
    finally:
        os.close(other)
        while threads._held_slots:
            os.close(threads._held_slots.pop())


def test_outside_a_sweep_slurm_cpus_set_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert share_cpus() is None
    before = torch.get_num_threads()
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    try:
        assert share_cpus() == 1
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


def test_each_gpu_takes_jobs_per_gpu_jobs_of_trainer_devices_gpus() -> None:
    assert gpu_slots(2, devices=1, jobs_per_gpu=4) == 8
    assert gpu_slots(1, devices=1, jobs_per_gpu=12) == 12
    assert gpu_slots(4, devices=2, jobs_per_gpu=1) == 2
    assert gpu_slots(4, devices=2, jobs_per_gpu=3) == 6
    assert gpu_slots(1, devices=2, jobs_per_gpu=1) == 1  # at least one


def test_slots_take_the_gpus_in_turn_so_the_first_jobs_go_to_different_gpus() -> None:
    assert [slot_devices(slot, ["0", "1"], devices=1) for slot in range(8)] == [["0"], ["1"]] * 4
    assert slot_devices(5, ["0", "1"], devices=1) == ["1"]
    assert [slot_devices(slot, ["0", "1", "2", "3"], devices=2) for slot in range(4)] == [
        ["0", "1"],
        ["2", "3"],
        ["0", "1"],
        ["2", "3"],
    ]
    assert slot_devices(1, ["3", "7"], devices=1) == ["7"]  # entries of CUDA_VISIBLE_DEVICES, not indices
    assert slot_devices(0, ["3"], devices=2) == ["3"]  # more than there are: all of them


def test_the_sweep_shares_the_gpus_in_cuda_visible_devices_else_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sweep_gpus({"CUDA_VISIBLE_DEVICES": "3, 7"}, count=lambda: 8) == ["3", "7"]
    assert sweep_gpus({"CUDA_VISIBLE_DEVICES": ""}, count=lambda: 8) == []
    assert sweep_gpus({}, count=lambda: 2) == ["0", "1"]
    monkeypatch.setenv("PATH", str(tmp_path))
    assert count_gpus() == 0  # no nvidia-smi
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H200 (UUID: GPU-b)'\n")
    fake.chmod(0o755)
    assert count_gpus() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.delenv(SWEEP_GPUS, raising=False)
    SweepGpus().on_multirun_start(OmegaConf.create())
    assert os.environ[SWEEP_GPUS] == "1"


def job_config(tmp_path: Path, accelerator: str, devices: int = 1, jobs_per_gpu: int | None = 4) -> DictConfig:
    """A launcher=local job's config: its sweep directory, trainer and local_launcher settings."""
    cfg = {"hydra": {"sweep": {"dir": str(tmp_path)}}, "trainer": {"accelerator": accelerator, "devices": devices}}
    if jobs_per_gpu is not None:
        cfg["local_launcher"] = {"jobs_per_gpu": jobs_per_gpu}
    return OmegaConf.create(cfg)


def test_a_job_trains_on_gpus_by_its_trainer_where_the_sweep_has_any(tmp_path: Path) -> None:
    gpus = {SWEEP_GPUS: "0,1"}
    assert gpu_share(job_config(tmp_path, "gpu"), gpus) == GpuShare(["0", "1"], devices=1, jobs_per_gpu=4)
    assert gpu_share(job_config(tmp_path, "cuda", devices=2), gpus) == GpuShare(["0", "1"], 2, 4)
    assert gpu_share(job_config(tmp_path, "auto", jobs_per_gpu=None), gpus) == GpuShare(["0", "1"], 1, 1)
    assert gpu_share(job_config(tmp_path, "cpu"), gpus) is None
    assert gpu_share(job_config(tmp_path, "auto"), {SWEEP_GPUS: ""}) is None
    assert gpu_share(job_config(tmp_path, "gpu"), {}) is None  # not a sweep of launcher=local
    assert gpu_share(job_config(tmp_path, "gpu", devices=-1), gpus) is None


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """hold_slot replaced: records the number of slots it was asked for and hands out slot 5."""
    asked: list[int] = []

    def hold(folder: Path, slots: int) -> int:
        asked.append(slots)
        return 5

    monkeypatch.setattr(threads, "hold_slot", hold)
    monkeypatch.setenv(SWEEP_GPUS, "0,1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # what submitit gives a job with gpus_per_node=1
    return asked


def test_a_gpu_job_waits_for_a_gpu_slot_capped_by_the_cpu_slots_and_sees_only_its_gpu(
    tmp_path: Path, held: list[int]
) -> None:
    take_slot(job_config(tmp_path, "gpu").hydra, cpus_per_task=1, usable=16)
    assert held == [8] and os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    take_slot(job_config(tmp_path, "gpu").hydra, cpus_per_task=1, usable=3)
    take_slot(job_config(tmp_path, "gpu").hydra, cpus_per_task=None, usable=3)  # every core: only GPUs limit
    assert held[1:] == [3, 8]


def test_a_cpu_job_keeps_its_cpu_slots_and_cuda_visible_devices(tmp_path: Path, held: list[int]) -> None:
    take_slot(job_config(tmp_path, "cpu").hydra, cpus_per_task=1, usable=16)
    assert held == [16] and os.environ["CUDA_VISIBLE_DEVICES"] == "0"


APP = """import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

from lns.sweeps.threads import share_cpus


@hydra.main(version_base="1.3", config_path=".", config_name="app")
def main(cfg) -> None:
    share_cpus()
    Path(HydraConfig.get().runtime.output_dir, "gpus.txt").write_text(os.environ["CUDA_VISIBLE_DEVICES"])


if __name__ == "__main__":
    main()
"""


@pytest.mark.e2e
def test_a_local_sweep_gives_its_gpu_job_the_sweeps_gpu_and_leaves_its_cpu_job_alone(tmp_path: Path) -> None:
    """A multirun with conf/launcher/local.yaml started with CUDA_VISIBLE_DEVICES=7 (submitit sets every job's to
    0): the GPU job sees GPU 7, the CPU job keeps submitit's 0."""
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "app.yaml").write_text(
        f"defaults:\n  - launcher: local\n  - _self_\nhydra:\n  searchpath: [file://{CONF}]\n"
        "trainer: {accelerator: cpu, devices: 1}\n"
    )
    sweep = tmp_path / "sweep"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "7", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "app.py", "-m", "trainer.accelerator=gpu,cpu", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [(sweep / job / "gpus.txt").read_text() for job in ("0", "1")] == ["7", "0"]
    assert "Slot 0 of 1: this job trains on GPU 7 of the sweep's 7." in (sweep / "0" / "app.log").read_text()
