"""Run and file safety: atomic writes, a full disk, stale temporary files, the run lock, checkpoint files, the
Hydra record, the run directory's layout and the process rank.

These modules import only :mod:`lns.errors` and third-party libraries, so every other part of ``lns`` (and the
dataset generator) may use them.
"""
