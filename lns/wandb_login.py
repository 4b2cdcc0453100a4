"""Recognising a Weights & Biases run that could not start because this machine has no W&B login, and the
one-paragraph explanation the user gets instead of wandb's traceback."""

from __future__ import annotations

from lns.errors import LNSError


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
