"""Seconds until a wrong setting is answered: run_train.py and run_segment.py with one wrong value each, run as
processes from a scratch working directory, with the data and a tiny training run elsewhere.

    python bench/config_errors.py                       # this checkout
    python bench/config_errors.py --before <commit>     # and, beside it, the code of an earlier commit

The earlier commit's files are taken with ``git archive`` into a temporary folder and its entry points run from
there (they import that folder's ``lns``). Each case runs ``--repeats`` times per code version; the table shows
the median wall time, the exit status and the start of the answer. It writes bench/results/config_errors.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import REPO, markdown_table, write_results


@dataclass(frozen=True)
class Case:
    name: str
    script: str
    overrides: tuple[str, ...]


def cases(scratch: Path) -> list[Case]:
    run, data = scratch / "run", scratch / "data"
    return [
        Case("missing run directory", "run_segment.py", (f"run_dir={scratch / 'nowhere'}",)),
        Case("negative noise std", "run_segment.py", (f"run_dir={run}", "noise.std=-1")),
        Case("noise site that is no layer", "run_segment.py", (f"run_dir={run}", "noise.site=decoder.99")),
        Case("missing dataset", "run_train.py", (f"paths.data_dir={scratch / 'nowhere'}",)),
        Case(
            "trainer.max_steps=0",
            "run_train.py",
            (f"paths.data_dir={data}", "data.batch_size=8", "trainer.max_steps=0"),
        ),
    ]


def run(code: Path, case: Case, cwd: Path) -> tuple[float, int, str]:
    """Wall seconds, exit status and the start of the answer of one run of ``case`` with the entry point in ``code``."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(code / case.script), *case.overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    seconds = time.perf_counter() - started
    answer = done.stderr.split("error: ", 1)[1] if "error: " in done.stderr else done.stdout.strip()[-80:]
    return seconds, done.returncode, " ".join(answer.split())[:70]


def prepare(scratch: Path) -> None:
    """A tiny dataset and a two-step training run to segment, made with this checkout's code."""
    sizes = ("n_train=16", "n_valid=8", "n_test=4")
    data_gen = [sys.executable, "-m", "data_gen", "dataset=kanizsa", f"paths.data_dir={scratch / 'data'}", *sizes]
    subprocess.run(data_gen, cwd=scratch, check=True, capture_output=True)
    train = [
        sys.executable,
        str(REPO / "run_train.py"),
        f"paths.data_dir={scratch / 'data'}",
        f"hydra.run.dir={scratch / 'run'}",
        "trainer.max_steps=2",
        "data.batch_size=8",
        "logger=none",
    ]
    subprocess.run(train, cwd=scratch, check=True, capture_output=True)


def commit_id(name: str) -> str:
    """The full id of the commit ``name`` (a hash, a branch, ``HEAD``)."""
    return subprocess.run(
        ["git", "rev-parse", name], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()


def export(commit: str, folder: Path) -> Path:
    """The files of ``commit`` in ``folder`` (git archive: the repository itself is not touched)."""
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True).stdout
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="an earlier commit to time beside this checkout")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case and code version (median shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        prepare(scratch)
        versions = {"now": REPO}
        if args.before:
            versions = {"before": export(args.before, scratch / "before"), **versions}
        cwd = scratch / "work"
        cwd.mkdir()
        rows = []
        for case in cases(scratch):
            row: list[object] = [case.name, f"{case.script} {' '.join(o.split('=')[0] + '=…' for o in case.overrides)}"]
            answers = []
            for label, code in versions.items():
                results = [run(code, case, cwd) for _ in range(args.repeats)]
                row.append(round(statistics.median(seconds for seconds, _, _ in results), 2))
                answers.append(f"{label}: exit {results[0][1]}, {results[0][2]}")
            rows.append([*row, "<br>".join(answers)])
    headers = ["case", "command", *(f"{label} (s)" for label in versions), "exit status and answer"]
    write_results(
        "config_errors",
        "Seconds until a wrong setting is answered",
        {
            "repeats": f"{args.repeats} runs per case and code version, median",
            "before": commit_id(args.before) if args.before else "not timed",
            "load average": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        },
        markdown_table(headers, rows),
        notes=[
            "Each run is a whole process (`python run_train.py ...` / `python run_segment.py ...`) from a scratch "
            "working directory, the data and a two-step training run elsewhere. 'now' refuses what needs no torch "
            "before torch and Lightning load (lns/cli/early_checks.py); a noise site that is no layer needs the "
            "model's layer names, so torch (not Lightning) loads for it."
        ],
    )


if __name__ == "__main__":
    main()
