"""Shared behaviour of the command-line entry points: user errors as one paragraph, no traceback."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode

from lns.errors import LNSError
from lns.refused_run import clear_refused_run, is_fresh
from lns.runs.disk_full import disk_full_error, no_space_error
from lns.runs.process_rank import is_launching_process
from lns.sweeps.job_outcome import job_dir, record_failure, record_success
from lns.wandb_login import wandb_login_error

INTERRUPTED_EXIT_CODE = 130

T = TypeVar("T")


def user_error(error: BaseException) -> LNSError | None:
    """The :class:`LNSError` behind ``error``: itself, or a cause it was wrapped in (e.g. by Hydra's instantiate).

    A write that failed for lack of space anywhere (a log, a figure) is explained as one too, and so is a W&B run
    that could not start for want of a login.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, LNSError):
            return current
        seen.add(id(current))
        current = current.__cause__
    no_space = no_space_error(error)
    if no_space is not None:
        return disk_full_error(no_space.filename)
    return wandb_login_error(error)


def in_multirun() -> bool:
    """True inside a job of a Hydra ``--multirun`` sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def explain(message: str) -> None:
    """Print ``message`` on stderr as one paragraph headed ``error:``, never broken inside a word (paths and
    commands in it must stay copyable)."""
    paragraph = textwrap.fill(f"error: {message}", width=100, break_long_words=False, break_on_hyphens=False)
    print("\n" + paragraph + "\n", file=sys.stderr)


class JobFailed(LNSError, CompactHydraException):
    """A sweep job's user error, raised again for Hydra: it marks the job failed and prints this line, not a
    traceback, when the sweep ends."""


def run_or_explain(job: Callable[[], T]) -> T:
    """Run ``job``; an :class:`LNSError` is printed as one wrapped paragraph and the process exits with status 1.

    Inside a sweep the error is re-raised after printing instead, so Hydra marks this job failed, runs the
    remaining jobs, and reports the failure at the end. A job refused before it started leaves nothing in its new
    output folder (:mod:`lns.refused_run`): a single run leaves no folder, a sweep job one with ``error.txt``.
    """
    folder = job_dir() if is_launching_process() else None
    fresh = folder is not None and is_fresh(folder)
    try:
        result = job()
    except Exception as error:
        explained = user_error(error)
        if in_multirun():  # the sweep report lists this job as failed, with this line
            record_failure(str(explained) if explained else f"{type(error).__name__}: {error}")
        if explained is None:
            raise
        explain(str(explained))
        if fresh:
            clear_refused_run(folder, keep_error=in_multirun(), stop_at=Path(HydraConfig.get().runtime.cwd))
        if in_multirun():
            raise JobFailed(" ".join(str(explained).split())) from None
        sys.exit(1)
    if in_multirun():
        record_success()
    return result
