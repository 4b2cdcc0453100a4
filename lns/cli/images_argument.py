"""``run_segment.py images=<folder>``: the command line rewritten before Hydra reads it. It runs on every call
of ``run_segment.py``, so it imports nothing heavy (the segmentation of a folder itself is
:mod:`lns.cli.segment_folder`)."""

from __future__ import annotations


def images_argument(argv: list[str]) -> list[str]:
    """The command line with ``images=<folder>`` spelled ``images.folder=<folder>`` (``images`` is a group of keys:
    ``images.resize`` sits beside the folder)."""
    return [f"images.folder={arg.removeprefix('images=')}" if arg.startswith("images=") else arg for arg in argv]
