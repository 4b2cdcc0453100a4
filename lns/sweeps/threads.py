"""A job uses the CPUs and GPUs it was given, not every core and GPU of the machine.

Under SLURM a job gets ``SLURM_CPUS_PER_TASK`` cores. ``launcher=local`` gives each job of a sweep
``hydra.launcher.cpus_per_task`` cores and runs as many jobs at once as fit in the cores this process may use: a
job waits for one of those slots (an ``flock`` on ``<sweep dir>/.slots/<i>.lock``, held until the job's process
ends and released by the kernel even if it is killed). The job's torch and OpenMP threads are then set to its
cores. A single run outside SLURM and the ``basic`` launcher keep torch's defaults.

A ``launcher=local`` job that trains on GPUs also shares the sweep's GPUs: :class:`SweepGpus` records them before
the jobs start, at most ``local_launcher.jobs_per_gpu`` jobs run on each (:func:`gpu_slots`), and the job holding
slot i sees only the GPUs of that slot (:func:`slot_devices`) through ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from lns.runs.run_lock import UNSUPPORTED

log = logging.getLogger(__name__)

SLOTS_DIR = ".slots"
POLL_S = 0.5
SWEEP_GPUS = "LNS_SWEEP_GPUS"
"""Set by :class:`SweepGpus` for a ``launcher=local`` sweep's jobs: the GPUs they share, comma-separated."""
GPU_ACCELERATORS = ("gpu", "cuda", "auto")  # auto trains on GPUs where the sweep has any
NVIDIA_SMI_TIMEOUT_S = 30
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


def count_gpus() -> int:
    """The GPUs ``nvidia-smi -L`` lists (CUDA_VISIBLE_DEVICES does not hide any from it); 0 without NVIDIA's driver."""
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listing.splitlines())


def sweep_gpus(environ: Mapping[str, str], count: Callable[[], int] = count_gpus) -> list[str]:
    """The GPUs a sweep's jobs may use: the entries of ``CUDA_VISIBLE_DEVICES`` where it is set, else
    ``0 .. count() - 1``."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(index) for index in range(count())]
    return [device.strip() for device in visible.split(",") if device.strip()]


class SweepGpus(Callback):
    """Hydra callback of ``launcher=local``: records the sweep's GPUs in ``LNS_SWEEP_GPUS`` for its jobs before they
    start (submitit sets each job's ``CUDA_VISIBLE_DEVICES`` to ``0 .. gpus_per_node - 1``, hiding the sweep's)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Record the GPUs in this process's environment, which the jobs inherit."""
        os.environ[SWEEP_GPUS] = ",".join(sweep_gpus(os.environ))


@dataclass(frozen=True)
class GpuShare:
    """How a ``launcher=local`` job shares the sweep's GPUs: the sweep's ``visible`` GPUs, ``devices`` per job and at
    most ``jobs_per_gpu`` jobs on each."""

    visible: list[str]
    devices: int
    jobs_per_gpu: int


def gpu_share(job: DictConfig, environ: Mapping[str, str]) -> GpuShare | None:
    """The GPU share of a ``launcher=local`` job with config ``job``, or None where it trains on no GPU (a CPU
    trainer, ``trainer.accelerator=auto`` in a sweep without GPUs) or its ``trainer.devices`` is no count."""
    visible = [device for device in environ.get(SWEEP_GPUS, "").split(",") if device]
    devices = OmegaConf.select(job, "trainer.devices")
    counted = isinstance(devices, int) and devices >= 1
    if not visible or not counted or OmegaConf.select(job, "trainer.accelerator") not in GPU_ACCELERATORS:
        return None
    return GpuShare(visible, devices, int(OmegaConf.select(job, "local_launcher.jobs_per_gpu", default=1)))


def gpu_slots(gpus: int, devices: int, jobs_per_gpu: int) -> int:
    """How many jobs of ``devices`` GPUs each run at once when each of ``gpus`` GPUs takes ``jobs_per_gpu`` jobs: at
    least one."""
    return max(1, gpus * jobs_per_gpu // devices)


def slot_devices(slot: int, visible: Sequence[str], devices: int) -> list[str]:
    """The GPUs (entries of ``visible``) of the job holding ``slot``, ``devices`` of them: slot i takes the next
    ``devices`` GPUs after slot i - 1's, starting over after the last, so that the first slots go to different
    GPUs and slots i, i + G, i + 2G, ... share the same ones (G = ``len(visible)``). All of them where the job asks
    for more."""
    return [visible[(slot * devices + index) % len(visible)] for index in range(min(devices, len(visible)))]


def take_slot(hydra: DictConfig, cpus_per_task: int | None, usable: int) -> None:
    """In a ``launcher=local`` job with Hydra config ``hydra``: wait for a free slot of the sweep, at most as many
    as its cores (:func:`local_slots`) and, training on GPUs, its GPUs (:func:`gpu_slots`) allow; a job training on
    GPUs then sees only its slot's."""
    share = gpu_share(OmegaConf.select(hydra, ".."), os.environ)
    limits = [local_slots(int(cpus_per_task), usable)] if cpus_per_task else []
    if share is not None:
        limits.append(gpu_slots(len(share.visible), share.devices, share.jobs_per_gpu))
    if not limits:
        return
    slots = min(limits)
    slot = hold_slot(Path(hydra.sweep.dir) / SLOTS_DIR, slots)
    if share is not None and slot is not None:
        devices = ",".join(slot_devices(slot, share.visible, share.devices))
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
        log.info(
            "Slot %d of %d: this job trains on GPU %s of the sweep's %s.", slot, slots, devices, ",".join(share.visible)
        )


def share_cpus() -> int | None:
    """Call first in an entry point's job: under ``launcher=local`` wait for a free slot of the sweep and take its
    GPUs (:func:`take_slot`), then set the threads to the job's CPUs (:func:`given_cpus`); return them (None:
    torch's defaults kept)."""
    usable = usable_cpus()
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    cpus_per_task = HydraConfig.get().launcher.get("cpus_per_task") if multirun else None
    if multirun and os.environ.get("SUBMITIT_EXECUTOR") == "local":
        take_slot(HydraConfig.get(), cpus_per_task, usable)
    cpus = given_cpus(os.environ, cpus_per_task, usable)
    if cpus is not None:
        set_threads(cpus)
    return cpus
