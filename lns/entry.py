"""Shared behaviour of the command-line entry points: user errors as one paragraph, no traceback."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from typing import TypeVar

from lns.errors import LNSError

T = TypeVar("T")


def user_error(error: BaseException) -> LNSError | None:
    """The :class:`LNSError` behind ``error``: itself, or a cause it was wrapped in (e.g. by Hydra's instantiate)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, LNSError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def run_or_explain(job: Callable[[], T]) -> T:
    """Run ``job``; an :class:`LNSError` is printed as one wrapped paragraph and the process exits with status 1."""
    try:
        return job()
    except Exception as error:
        explained = user_error(error)
        if explained is None:
            raise
        # Never break inside a word: paths and commands in the message must stay copyable.
        paragraph = textwrap.fill(f"error: {explained}", width=100, break_long_words=False, break_on_hyphens=False)
        print("\n" + paragraph + "\n", file=sys.stderr)
        sys.exit(1)
