"""The report of a multirun, written into its sweep directory when the multirun ends (failed jobs included).

Enabled by ``segment=paper|all`` for ``run_train.py`` and always for ``run_segment.py`` (``hydra.callbacks``).
Hydra skips ``on_multirun_end`` when a job failed, so the report is written when the sweeping process exits.
"""

from __future__ import annotations

import atexit
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lns.errors import LNSError
from lns.runs.run_layout import SEGMENTATION_SUMMARY
from lns.sweeps.job_outcome import error_line
from lns.sweeps.sweep_runs import natural_key


@dataclass(frozen=True)
class JobOutcome:
    """One job directory of a sweep: how many segmentations it finished, or why it has none."""

    path: Path
    summaries: int
    error: str | None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        return "done" if self.summaries else "no result"


def job_outcomes(sweep_dir: Path) -> list[JobOutcome]:
    """Every job directory of ``sweep_dir`` (its visible sub-directories), in natural order."""
    jobs = sorted((p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_key)
    return [JobOutcome(job, sum(1 for _ in job.rglob(SEGMENTATION_SUMMARY)), error_line(job)) for job in jobs]


def jobs_markdown(outcomes: list[JobOutcome], submission_error: str | None = None) -> str:
    """``jobs.md``: one row per job with its status and, for a failed job, its error line; a sweep whose submission
    failed (``submission_error``, the sweep directory's own ``error.txt``) says so instead."""
    if submission_error is not None and not outcomes:
        return f"The submission failed, so no job ran: {submission_error}\n"
    rows = [f"| {job.path.name} | {job.status} | {job.summaries} | {job.error or ''} |" for job in outcomes]
    failed = sum(job.status != "done" for job in outcomes)
    head = f"{len(outcomes) - failed} of {len(outcomes)} jobs finished with results; {failed} did not.\n\n"
    hint = (
        "\n\n'no result': the job neither finished nor recorded an error (killed, out of memory, over its time "
        "limit, or still running); its launcher log says more (submitit: .submitit/<job id>/*.err).\n"
    )
    return head + "| job | status | summaries | error |\n|---|---|---|---|\n" + "\n".join(rows) + hint


def write_sweep_report(sweep_dir: Path) -> list[Path]:
    """``jobs.md`` and, when any job finished, the report of :func:`lns.report.write_report` in ``sweep_dir``;
    jobs without results are appended to ``table.md``. Returns the files written."""
    from lns.report import write_report

    outcomes = job_outcomes(sweep_dir)
    jobs_file = sweep_dir / "jobs.md"
    jobs_file.write_text(jobs_markdown(outcomes, error_line(sweep_dir)))
    files = [jobs_file]
    if not any(job.summaries for job in outcomes):
        return files
    report = write_report([sweep_dir])
    unfinished = [job for job in outcomes if job.status != "done"]
    if unfinished:
        lines = [f"- job {job.path.name}: {job.status}{': ' + job.error if job.error else ''}" for job in unfinished]
        with (sweep_dir / "table.md").open("a") as table:
            table.write("\nJobs without results (not in the table):\n\n" + "\n".join(lines) + "\n")
    return files + report.files


def report_at_exit(sweep_dir: Path) -> None:
    """Write the sweep report and print where it is; a report that cannot be written is explained, not raised."""
    if not sweep_dir.is_dir():
        return
    try:
        files = write_sweep_report(sweep_dir)
    except LNSError as error:
        print(f"sweep report not written: {error}", file=sys.stderr)
        return
    table = sweep_dir / "table.md"
    print(f"sweep report: {(table if table.is_file() else files[0]).absolute()}", file=sys.stderr)


class SweepReport(Callback):
    """Hydra callback: when the multirun process exits, report on its sweep directory."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        atexit.register(report_at_exit, Path(config.hydra.sweep.dir))
