"""Config names that were renamed and are still accepted, with a one-line warning: ``features`` is now ``method``.

``run_segment.py`` and ``run_train.py`` rewrite their command line with :func:`renamed_arguments` before Hydra reads
it (``features=slic``, ``features.workers=1``, ``segment.jobs.<job>.features=jacobian``); the segmentation jobs of
``run_train.py segment=...`` rename their settings with :func:`lns.sweeps.renamed_settings.renamed_settings`. It
imports nothing heavy: it runs on every call of the entry points.
"""

from __future__ import annotations

import sys

from lns.sweeps.renamed_settings import RENAMED


def _renamed_path(path: list[str]) -> list[str]:
    """``path`` with an old name replaced where it names the segmentation's group: at the top (``run_segment.py``),
    or as a key of ``segment`` or of one of its jobs (``run_train.py``)."""
    if path[0] in RENAMED:
        position = 0
    elif path[0] == "segment" and len(path) > 1 and path[1] in RENAMED:
        position = 1
    elif path[:2] == ["segment", "jobs"] and len(path) > 3 and path[3] in RENAMED:
        position = 3
    else:
        return path
    return [*path[:position], RENAMED[path[position]], *path[position + 1 :]]


def renamed_argument(argument: str) -> str:
    """One command-line override with an old name spelled the new way (``features=rgb`` -> ``method=rgb``,
    ``+features.workers=1`` -> ``+method.workers=1``); any other argument as it is."""
    if argument.startswith("-") or not argument.strip():
        return argument
    key, equals, value = argument.partition("=")
    prefix = key[: len(key) - len(key.lstrip("+~"))]
    path = key[len(prefix) :].split(".")
    return prefix + ".".join(_renamed_path(path)) + equals + value


def renamed_arguments(argv: list[str]) -> list[str]:
    """``argv`` (``sys.argv``: the program first) with every old name spelled the new way; says on stderr, in one
    line, which arguments were renamed."""
    renamed = [argv[0], *map(renamed_argument, argv[1:])] if argv else []
    changed = [f"{old} -> {new}" for old, new in zip(argv[1:], renamed[1:], strict=True) if old != new]
    if changed:
        print(f"warning: deprecated config names, now read as: {', '.join(changed)}.", file=sys.stderr)
    return renamed
