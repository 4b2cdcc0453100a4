"""A CSV logger that keeps one metrics history per run, across resumes and requeues."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from typing_extensions import override

from lns.runs.atomic import atomic_write_text


def continue_history(path: Path, first_step: int | None) -> list[str]:
    """Drop the rows of ``path`` logged at ``first_step`` or later (a resumed attempt logs them again).

    Returns the file's column names, so new rows extend the same header. A missing file gives no columns.
    """
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    kept = [row for row in rows if first_step is None or float(row["step"]) < first_step]
    if len(kept) < len(rows):
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(path, text.getvalue())
    return columns


class HistoryWriter(ExperimentWriter):
    """Appends to an existing ``metrics.csv`` instead of deleting it; the first row this attempt logs replaces the
    earlier attempts' rows from its step on."""

    def __init__(self, log_dir: str) -> None:
        self._continued = False
        super().__init__(log_dir)

    @override
    def _check_log_dir_exists(self) -> None:
        """Keep the file of earlier attempts (Lightning's writer deletes it)."""

    @override
    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        if not self._continued:
            self._continued = True
            self.metrics_keys = continue_history(Path(self.metrics_file_path), step)
        super().log_metrics(metrics_dict, step)


class RunCSVLogger(CSVLogger):
    """``<save_dir>/<name>/metrics.csv``: one file for the whole run, continued by every resumed attempt.

    With ``flush_logs_every_n_steps=1`` every row is on disk as soon as it is logged, so a killed process loses
    no row that its last checkpoint covers; the next attempt logs the steps after that checkpoint again.
    """

    def __init__(self, save_dir: str | Path, name: str = "logs", flush_logs_every_n_steps: int = 1) -> None:
        super().__init__(save_dir, name=name, version="", flush_logs_every_n_steps=flush_logs_every_n_steps)

    @property
    @override
    def experiment(self) -> HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryWriter(log_dir=self.log_dir)
        return self._experiment
