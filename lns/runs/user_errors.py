"""The user's error behind an exception, and how it is shown: one paragraph headed ``error:``, no traceback.

Besides an :class:`LNSError` itself (or wrapped, e.g. by Hydra's instantiate), a write that failed for want of space
and a Weights & Biases run that could not start for want of a login are user errors too.
"""

from __future__ import annotations

import sys
import textwrap

from lns.errors import LNSError
from lns.runs.disk_full import disk_full_error, no_space_error


def wandb_login_error(error: BaseException) -> LNSError | None:
    """The :class:`LNSError` for wandb's "no API key" refusal behind ``error`` (None for any other error)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__.startswith("wandb") and "API key" in str(current):
            return LNSError(
                "logger=wandb logs to Weights & Biases online, but this machine has no W&B API key. Log in once "
                "with `wandb login` (or set WANDB_API_KEY), or log offline: WANDB_MODE=offline before the command, "
                "then `wandb sync <run dir>/wandb/offline-run-*` from a machine with network. The default "
                "logger=csv needs no account."
            )
        current = current.__cause__ or current.__context__
    return None


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


def explain(message: str) -> None:
    """Print ``message`` on stderr as one paragraph headed ``error:``, never broken inside a word (paths and
    commands in it must stay copyable)."""
    paragraph = textwrap.fill(f"error: {message}", width=100, break_long_words=False, break_on_hyphens=False)
    print("\n" + paragraph + "\n", file=sys.stderr)
