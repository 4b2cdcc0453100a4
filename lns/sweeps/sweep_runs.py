"""``run_dir=<training sweep>``: the completed training runs of a sweep directory, as a list of run directories.

``run_segment.py`` rewrites its command line with :func:`expand_run_dir_argument` before Hydra reads it, so a
sweep directory (or several) becomes one segmentation job per completed run under ``--multirun``.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from lns.errors import LNSError
from lns.runs.run_layout import LAST_CHECKPOINT, RUN_CONFIG

HYDRA_CONFIG = Path(".hydra") / "config.yaml"
MULTIRUN_FLAGS = ("-m", "--multirun")


@dataclass(frozen=True)
class RunState:
    """A training run of a sweep: its directory and, when it has no final checkpoint, why not."""

    path: Path
    missing: str | None = None

    @property
    def complete(self) -> bool:
        return self.missing is None


def natural_key(path: Path) -> list[int | str]:
    """Sort key that puts job 2 before job 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def run_state(run_dir: Path) -> RunState:
    """Whether ``run_dir`` holds its final checkpoint: ``last.ckpt`` at the run's ``trainer.max_steps``."""
    last = run_dir / LAST_CHECKPOINT
    if not last.is_file():
        return RunState(run_dir, "no checkpoint")
    config_file = run_dir / HYDRA_CONFIG
    max_steps = OmegaConf.select(OmegaConf.load(config_file), "trainer.max_steps") if config_file.is_file() else None
    if max_steps is None or int(max_steps) < 0:
        return RunState(run_dir)  # no step budget recorded: the last checkpoint is the final one
    from lns.runs.checkpoints import read_checkpoint_dict  # torch: only when a checkpoint is read

    step = int(read_checkpoint_dict(last).get("global_step", -1))
    if step < int(max_steps):
        return RunState(run_dir, f"last.ckpt at step {step} of {max_steps}")
    return RunState(run_dir)


def sweep_runs(sweep_dir: Path) -> list[RunState]:
    """Every training run below ``sweep_dir`` (directories holding ``run_config.yaml``), in natural order."""
    runs = sorted({path.parent for path in sweep_dir.rglob(str(RUN_CONFIG))}, key=natural_key)
    return [run_state(run) for run in runs]


def expand_run_dirs(paths: list[str]) -> tuple[list[str], list[RunState]]:
    """Replace each sweep directory in ``paths`` by its completed runs; return them and the runs left out.

    A run directory or a path that is neither stays as it is (segmentation explains what is wrong with it).
    """
    expanded: list[str] = []
    left_out: list[RunState] = []
    for item in paths:
        path = Path(item)
        if (path / RUN_CONFIG).is_file() or not path.is_dir():
            expanded.append(item)
            continue
        runs = sweep_runs(path)
        if not runs:
            raise LNSError(
                f"run_dir={item} is neither a training run (no {RUN_CONFIG}) nor a sweep holding training runs; "
                "pass the directory that run_train.py printed, or its sweep directory."
            )
        expanded += [str(run.path) for run in runs if run.complete]
        left_out += [run for run in runs if not run.complete]
    if not expanded:
        raise LNSError(
            f"No training run in {', '.join(paths)} has its final checkpoint ({describe(left_out)}); wait for the "
            "training jobs to finish, or resume them with run_train.py and the same hydra.run.dir."
        )
    return expanded, left_out


def describe(runs: list[RunState]) -> str:
    """``<dir> (no checkpoint), <dir> (last.ckpt at step 700 of 1400)``."""
    return ", ".join(f"{run.path} ({run.missing})" for run in runs)


def _quoted(path: str) -> str:
    return "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"


def expand_run_dir_argument(argv: list[str]) -> list[str]:
    """``argv`` with a ``run_dir=`` naming sweep directories replaced by their completed runs.

    More than one run makes the command a multirun (``-m`` is added), one job per run; runs without a final
    checkpoint are listed on stderr in one paragraph.
    """
    positions = [i for i, arg in enumerate(argv) if arg.startswith("run_dir=")]
    if len(positions) != 1:
        return argv
    (position,) = positions
    override = OverridesParser.create().parse_override(argv[position])
    if override.is_sweep_override():
        paths = [str(value) for value in override.sweep_string_iterator()]
    else:
        paths = [override.get_value_element_as_str()]
    expanded, left_out = expand_run_dirs(paths)
    if left_out:
        message = (
            f"warning: {len(left_out)} training run(s) have no final checkpoint and are not segmented: "
            f"{describe(left_out)}."
        )
        print(textwrap.fill(message, width=100, break_long_words=False, break_on_hyphens=False), file=sys.stderr)
    if expanded == paths:
        return argv
    rewritten = [*argv[:position], "run_dir=" + ",".join(map(_quoted, expanded)), *argv[position + 1 :]]
    if len(expanded) > 1 and not any(arg in MULTIRUN_FLAGS for arg in argv):
        rewritten.insert(1, "-m")
    return rewritten
