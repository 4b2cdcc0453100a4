"""Shared behaviour of the command-line entry points: user errors as one paragraph, no traceback."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from typing import TypeVar

from lns.errors import LNSError

T = TypeVar("T")


def run_or_explain(job: Callable[[], T]) -> T:
    """Run ``job``; an :class:`LNSError` is printed as one wrapped paragraph and the process exits with status 1."""
    try:
        return job()
    except LNSError as error:
        print("\n" + textwrap.fill(f"error: {error}", width=100) + "\n", file=sys.stderr)
        sys.exit(1)
