"""A job uses the CPUs it was given, not every core of the machine.

Under SLURM a job gets ``SLURM_CPUS_PER_TASK`` cores. ``launcher=local`` gives each job of a sweep
``hydra.launcher.cpus_per_task`` cores and runs as many jobs at once as fit in the cores this process may use: a
job waits for one of those slots (an ``flock`` on ``<sweep dir>/.slots/<i>.lock``, held until the job's process
ends and released by the kernel even if it is killed). The job's torch and OpenMP threads are then set to its
cores. A single run outside SLURM and the ``basic`` launcher keep torch's defaults.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from lns.runs.run_lock import UNSUPPORTED

log = logging.getLogger(__name__)

SLOTS_DIR = ".slots"
POLL_S = 0.5
_held_slots: list[int] = []  # descriptors of the slot this process holds, kept open until it exits


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def given_cpus(environ: Mapping[str, str], cpus_per_task: int | None, usable: int) -> int | None:
    """The CPUs a job was given, at most ``usable``: ``cpus_per_task`` under ``launcher=local``; otherwise
    ``SLURM_CPUS_PER_TASK`` when SLURM set it, else the launcher's ``cpus_per_task``; None when nothing says."""
    local = environ.get("SUBMITIT_EXECUTOR") == "local"
    slurm = environ.get("SLURM_CPUS_PER_TASK")
    cpus = int(slurm) if slurm and not local else cpus_per_task
    return None if cpus is None else max(1, min(int(cpus), usable))


def local_slots(cpus_per_task: int, usable: int) -> int:
    """How many jobs of a ``launcher=local`` sweep run at once: as many as fit ``cpus_per_task`` cores each into the
    ``usable`` cores, at least one."""
    return max(1, usable // max(1, cpus_per_task))


def hold_slot(folder: Path, slots: int, poll_s: float = POLL_S) -> int | None:
    """Wait until one of ``slots`` slot files in ``folder`` is free and hold it until this process ends; return its
    number, or None where the file system has no file locks (the job then runs at once)."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in range(slots):
            descriptor = os.open(folder / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                continue
            except OSError as error:
                os.close(descriptor)
                if error.errno not in UNSUPPORTED:
                    raise
                log.warning("%s has no file locks (%s): this job does not wait for a free slot.", folder, error)
                return None
            _held_slots.append(descriptor)
            return slot
        time.sleep(poll_s)


def set_threads(cpus: int) -> None:
    """Use ``cpus`` threads in torch, and in OpenMP and BLAS libraries this process starts or loads from now on."""
    import torch

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(cpus)
    torch.set_num_threads(cpus)


def share_cpus() -> int | None:
    """Call first in an entry point's job: under ``launcher=local`` wait for a free slot of the sweep, then set the
    threads to the job's CPUs (:func:`given_cpus`); return them (None: torch's defaults kept)."""
    usable = usable_cpus()
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    cpus_per_task = HydraConfig.get().launcher.get("cpus_per_task") if multirun else None
    if multirun and cpus_per_task and os.environ.get("SUBMITIT_EXECUTOR") == "local":
        hold_slot(Path(HydraConfig.get().sweep.dir) / SLOTS_DIR, local_slots(int(cpus_per_task), usable))
    cpus = given_cpus(os.environ, cpus_per_task, usable)
    if cpus is not None:
        set_threads(cpus)
    return cpus
