"""Shared behaviour of the command-line entry points: user errors as one paragraph, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException

from lns.cli.refused_run import clear_refused_run, is_fresh
from lns.errors import LNSError
from lns.runs.process_rank import is_launching_process
from lns.runs.user_errors import explain, user_error
from lns.sweeps.job_outcome import in_multirun, job_dir, record_failure, record_success

INTERRUPTED_EXIT_CODE = 130

T = TypeVar("T")


class JobFailed(LNSError, CompactHydraException):
    """A sweep job's user error, raised again for Hydra: it marks the job failed and prints this line, not a
    traceback, when the sweep ends."""


def run_or_explain(job: Callable[[], T]) -> T:
    """Run ``job``; an :class:`LNSError` is printed as one wrapped paragraph and the process exits with status 1.

    Inside a sweep the error is re-raised after printing instead, so Hydra marks this job failed, runs the
    remaining jobs, and reports the failure at the end. A job refused before it started leaves nothing in its new
    output folder (:mod:`lns.cli.refused_run`): a single run leaves no folder, a sweep job one with ``error.txt``.
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
