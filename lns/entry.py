"""Shared behaviour of the command-line entry points: user errors as one paragraph, no traceback."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from lns.disk_full import disk_full_error, no_space_error
from lns.errors import LNSError
from lns.job_outcome import record_failure, record_success

INTERRUPTED_EXIT_CODE = 130

T = TypeVar("T")


def user_error(error: BaseException) -> LNSError | None:
    """The :class:`LNSError` behind ``error``: itself, or a cause it was wrapped in (e.g. by Hydra's instantiate).

    A write that failed for lack of space anywhere (a log, a figure) is explained as one too.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, LNSError):
            return current
        seen.add(id(current))
        current = current.__cause__
    no_space = no_space_error(error)
    return None if no_space is None else disk_full_error(no_space.filename)


def in_multirun() -> bool:
    """True inside a job of a Hydra ``--multirun`` sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_or_explain(job: Callable[[], T]) -> T:
    """Run ``job``; an :class:`LNSError` is printed as one wrapped paragraph and the process exits with status 1.

    Inside a sweep the error is re-raised after printing instead, so Hydra marks this job failed, runs the
    remaining jobs, and reports the failure at the end.
    """
    try:
        result = job()
    except Exception as error:
        explained = user_error(error)
        if in_multirun():  # the sweep report lists this job as failed, with this line
            record_failure(str(explained) if explained else f"{type(error).__name__}: {error}")
        if explained is None:
            raise
        # Never break inside a word: paths and commands in the message must stay copyable.
        paragraph = textwrap.fill(f"error: {explained}", width=100, break_long_words=False, break_on_hyphens=False)
        print("\n" + paragraph + "\n", file=sys.stderr)
        if in_multirun():
            raise explained from None
        sys.exit(1)
    if in_multirun():
        record_success()
    return result
