"""A job's threads follow the CPUs it was given; a launcher=local sweep runs as many jobs at once as cores fit."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
import torch

from lns.sweeps import threads
from lns.sweeps.threads import given_cpus, hold_slot, local_slots, share_cpus


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
