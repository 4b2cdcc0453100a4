"""A sweep job's outcome on disk: ``error.txt`` in its output directory when it failed, removed when it succeeds.

The sweep report reads it, so a failed job shows up with its error line whatever launcher ran it.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from lns.runs.atomic import atomic_write_text

ERROR_FILE = "error.txt"


def in_multirun() -> bool:
    """True inside a job of a Hydra ``--multirun`` sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_dir() -> Path | None:
    """The running Hydra job's output directory (None outside Hydra)."""
    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None


def record_failure(message: str) -> None:
    """Write ``message`` to the job's ``error.txt`` (nothing outside a Hydra job)."""
    folder = job_dir()
    if folder is not None:
        atomic_write_text(folder / ERROR_FILE, message.strip() + "\n")


def record_success() -> None:
    """Remove an ``error.txt`` left by an earlier failed attempt of this job."""
    folder = job_dir()
    if folder is not None:
        (folder / ERROR_FILE).unlink(missing_ok=True)


def error_line(folder: Path) -> str | None:
    """The recorded error of a job directory, on one line; None when the job recorded none."""
    path = folder / ERROR_FILE
    if not path.is_file():
        return None
    return " ".join(path.read_text().split()) or "failed (empty error.txt)"
