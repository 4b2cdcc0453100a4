"""A SLURM submission that sbatch refuses: one paragraph with sbatch's reason and the launcher key that likely fixes
it, the reason recorded for the sweep's ``jobs.md``, and exit status 1, instead of submitit's traceback.

The refusal is raised inside Hydra's sweep, where Hydra would print a traceback. :class:`ExplainRefusedSubmission`
(a Hydra callback of ``launcher=slurm``) asks Hydra to hand such errors on (``HYDRA_FULL_ERROR=1``, set once the
config is composed, so composition errors keep Hydra's short messages) and explains them in the process's last
step, its exception hook; any other error is shown as before. A sweep job's user error (:class:`lns.cli.entry.
JobFailed`) that ends the sweep is shown as its one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lns.runs.atomic import atomic_write_text
from lns.runs.user_errors import explain, user_error
from lns.sweeps.job_outcome import ERROR_FILE

# Words of sbatch's reason -> the change that likely fixes it.
FIXES: tuple[tuple[str, str], ...] = (
    (
        "generic resource",
        "The jobs asked for GPUs that this partition does not have: on a cluster without GPUs train with "
        "trainer=cpu (which asks for none) or set hydra.launcher.gpus_per_node=0; otherwise pick a partition with "
        "GPUs, hydra.launcher.partition=<name> (sinfo -o '%P %G' lists them).",
    ),
    (
        "memory",
        "The jobs asked for more memory than a node of the partition has: lower hydra.launcher.mem_gb, or set "
        "hydra.launcher.mem_gb=null for the partition's default (sinfo -o '%P %m' lists the nodes' memory in MB).",
    ),
    (
        "node configuration",
        "No node of the partition has what one job asks for: lower hydra.launcher.cpus_per_task (sinfo -o '%P %c' "
        "lists the cores per node), hydra.launcher.gpus_per_node or trainer.devices.",
    ),
    (
        "processors",
        "The jobs asked for more cores than allowed: lower hydra.launcher.cpus_per_task (or trainer.devices, one "
        "task per device).",
    ),
    ("account", "Set hydra.launcher.account=<your account> (sacctmgr show assoc user=$USER lists yours)."),
    (
        "partition",
        "Set hydra.launcher.partition=<name> to a partition you may use (sinfo lists them).",
    ),
    ("qos", "Set hydra.launcher.qos=<name> to a QOS you may use, or hydra.launcher.qos=null for the default."),
    (
        "time limit",
        "Lower hydra.launcher.timeout_min (minutes per job) to at most the partition's limit (sinfo -o '%P %l'); "
        "a job stopped at its limit is requeued and resumes from its last checkpoint.",
    ),
    ("node count", "Lower trainer.num_nodes (hydra.launcher.nodes follows it) to what the partition has."),
)
GENERAL_FIX = (
    "The jobs' resources are hydra.launcher.<key> settings (partition, account, qos, timeout_min, cpus_per_task, "
    "mem_gb, gpus_per_node; conf/launcher/slurm.yaml); other sbatch options go in "
    "hydra.launcher.additional_parameters."
)


def sbatch_reason(error: BaseException) -> str | None:
    """What sbatch said when it refused a submission behind ``error`` (submitit wraps it); None for other errors."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, subprocess.CalledProcessError) and Path(str(current.cmd[0])).name == "sbatch":
            lines = str(current.stderr or current.output or "").splitlines()
            reasons = [line.split("error:", 1)[-1].strip() for line in lines if line.strip()]
            reasons = [reason.removeprefix("Batch job submission failed:").strip() for reason in reasons]
            return "; ".join(reasons) or f"exit status {current.returncode}, no message"
        current = current.__cause__ or current.__context__
    return None


def refusal_message(reason: str, sweep_dir: Path) -> str:
    """The paragraph for a refused submission: sbatch's reason, the likely fix, and what happened to the sweep."""
    fix = next((text for words, text in FIXES if words in reason.lower()), GENERAL_FIX)
    return (
        f'sbatch refused to submit the jobs of the sweep {sweep_dir}: "{reason}". {fix} No job was submitted; run '
        "the same command again after the change."
    )


class ExplainRefusedSubmission(Callback):
    """Hydra callback: explain a submission that sbatch refused (see the module docstring)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        (sweep_dir / ERROR_FILE).unlink(missing_ok=True)  # an earlier refusal of this sweep, submitted again
        os.environ["HYDRA_FULL_ERROR"] = "1"
        previous = sys.excepthook

        def explain_at_exit(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
            reason = sbatch_reason(error)
            if reason is not None:
                message = refusal_message(reason, sweep_dir)
                atomic_write_text(sweep_dir / ERROR_FILE, message + "\n")
                explain(message)
            elif (explained := user_error(error)) is not None:
                explain(str(explained))
            else:
                previous(kind, error, trace)

        sys.excepthook = explain_at_exit
