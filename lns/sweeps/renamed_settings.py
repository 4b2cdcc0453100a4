"""Config names that were renamed and are still accepted: ``features`` is now ``method``. The segmentation jobs of
``run_train.py segment=...`` read their settings through :func:`renamed_settings`; the command lines are rewritten
by :mod:`lns.cli.renamed_keys` with the same table."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

RENAMED = {"features": "method"}
"""Old name -> new name of a config group or key."""


def renamed_settings(settings: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``settings`` (``segment``'s keys or a job's) with their old names replaced by the new ones; a value under an
    old name wins over one under the new name (the old name was set on purpose). ``where`` (``segment.jobs.paper``)
    names them in the one-line warning."""
    renamed = dict(settings)
    for old, new in RENAMED.items():
        if old in renamed:
            renamed[new] = renamed.pop(old)
            print(f"warning: {where}.{old} is deprecated; it is read as {where}.{new}.", file=sys.stderr)
    return renamed
