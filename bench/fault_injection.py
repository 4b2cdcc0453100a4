"""Fault-injection counts: run the fast and the long fault tests and total what they injected and checked.

    python bench/fault_injection.py [--suites fast long]

Each scenario of ``tests/helpers/fault_scenarios.py`` appends its counts (faults injected, how many landed inside a
write, resumes, files compared with an uninterrupted run) to ``$LNS_FAULT_COUNTS``; this script sets that
file, runs pytest on each suite, and writes one row per scenario and the totals to
``bench/results/fault_injection.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, git_revision, markdown_table, write_results

SUITES = {
    "fast": ["tests/test_faults.py"],
    "long": ["-m", "faults_long", "tests/test_faults_long.py"],
}
FIELDS = ("injections", "inside_writes", "resumes", "files_compared")


def run_suite(name: str, counts_file: Path) -> tuple[float, str]:
    """Run one suite with the counts going to ``counts_file``; its seconds and pytest's last line."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES[name]]
    env = {**os.environ, "LNS_FAULT_COUNTS": str(counts_file), "WANDB_MODE": "offline"}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    if result.returncode != 0:
        print(result.stdout[-5000:], result.stderr[-3000:], sep="\n")
        sys.exit(f"the {name} fault tests failed: {summary}")
    return seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", nargs="+", choices=sorted(SUITES), default=["fast", "long"])
    args = parser.parse_args()
    rows, totals, timings = [], dict.fromkeys(FIELDS, 0), []
    with tempfile.TemporaryDirectory() as scratch:
        for suite in args.suites:
            counts_file = Path(scratch) / f"{suite}.jsonl"
            seconds, summary = run_suite(suite, counts_file)
            timings.append(f"{suite}: `pytest {' '.join(SUITES[suite])}` took {seconds:.0f} s ({summary})")
            for line in counts_file.read_text().splitlines():
                counts = json.loads(line)
                rows.append([suite, counts["scenario"], *(counts[field] for field in FIELDS)])
                for field in FIELDS:
                    totals[field] += counts[field]
    rows.append(["all", "total", *(totals[field] for field in FIELDS)])
    table = markdown_table(["suite", "scenario", *FIELDS], rows)
    notes = [
        "injections: faults that hit a running process (a fault that came after the process had finished is not "
        "counted); inside_writes: of those, the kills inside an atomic write (a process told to kill itself in "
        "one of its checkpoint writes, or a random kill that left its temporary file behind); resumes: runs "
        "started on what a faulted run left; "
        "files_compared: finished results compared with an uninterrupted run (checkpoints: weights, objective "
        "and optimizer state bit for bit; segmentation: predictions.npz and per_image.csv; datasets: each .npz).",
        *timings,
    ]
    revision = git_revision()
    commit = revision.replace("+dirty", " (+ uncommitted changes)")
    settings = {"commit": commit, "suites": ", ".join(args.suites)}
    write_results("fault_injection", "Fault injection: counts", settings, table, notes)


if __name__ == "__main__":
    main()
