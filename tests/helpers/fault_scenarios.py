"""Fault-injection scenarios shared by the fast tests (``test_faults.py``) and the long ones (``test_faults_long.py``).

Each scenario injects ``injections`` faults at seeded random moments into real entry-point processes (forked
by :class:`tests.helpers.fault_harness.Zygote`), checks every guarantee after each one, and returns its counts. With
``LNS_FAULT_COUNTS=<file>`` set, every scenario appends its counts there as one JSON line
(``bench/fault_injection.py`` sums them).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from lns.data.npz import SPLITS
from tests.helpers.configs import LAST
from tests.helpers.fault_harness import REQUEUED_EXIT_CODE, Zygote, signal_after

# A 4-step VAE run (its sampling noise checks that the RNG state is restored too) with a checkpoint after every
# step and nothing else written: no logger, figures, validation or health probe.
TRAIN_STEPS = 4
FAST_TRAIN = [
    "data=kanizsa",
    "data.batch_size=2",
    "model=vae",
    "model.z_dim=4",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.limit_val_batches=0",
    "logger=none",
    "~callbacks.reconstructions",
    "~callbacks.curves",
    "~callbacks.health",
    "callbacks.checkpoint.every_n_train_steps=1",
    "callbacks.checkpoint.save_top_k=0",
]
INTERRUPTED_EXIT_CODE = 130
# Where kill_in_write kills (tests.helpers.fault_harness.KILL_POINTS inside an atomic write) and how often each atomic
# write calls it (a file and a directory fsync); a training start first writes run_config.yaml and the three
# .hydra files, then one checkpoint per step.
CALLS_PER_WRITE = {"fsync": 2, "fsync_directory": 1, "replace": 1}
WRITES_BEFORE_CHECKPOINTS = 4
# The data-generation run that is killed: big enough to take a few seconds.
GENERATE = ["dataset=kanizsa", "n_train=600", "n_valid=20", "n_test=20"]


@dataclass
class Counts:
    """What a scenario did: faults injected, runs that resumed after one, and files compared with a reference."""

    scenario: str
    injections: int = 0
    inside_writes: int = 0
    resumes: int = 0
    files_compared: int = 0

    def record(self) -> Counts:
        """Print the counts and append them to ``$LNS_FAULT_COUNTS`` when set."""
        line = json.dumps(asdict(self))
        print(f"fault counts: {line}")
        target = os.environ.get("LNS_FAULT_COUNTS")
        if target:
            with open(target, "a") as handle:
                handle.write(line + "\n")
        return self


def train_args(data_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        *FAST_TRAIN,
        f"trainer.max_steps={TRAIN_STEPS}",
        *extra,
    ]


def log_tail(path: Path) -> str:
    return path.read_text()[-3000:] if path.exists() else "(no log)"


def temporary_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.tmp"))


def assert_same_training_state(expected: Path, actual: Path) -> None:
    """Equal weights, objective state and optimizer state, bit for bit."""
    first = torch.load(expected, map_location="cpu", weights_only=True)
    second = torch.load(actual, map_location="cpu", weights_only=True)
    assert first["global_step"] == second["global_step"]
    for key in ("state_dict", "optimizer_states"):
        assert_bitwise_equal(first[key], second[key], key)


def assert_bitwise_equal(first: object, second: object, where: str) -> None:
    """Nested dicts, lists and tensors equal bit for bit; ``where`` names the first difference."""
    if isinstance(first, torch.Tensor):
        assert isinstance(second, torch.Tensor) and torch.equal(first, second), where
    elif isinstance(first, dict):
        assert isinstance(second, dict) and first.keys() == second.keys(), where
        for key in first:
            assert_bitwise_equal(first[key], second[key], f"{where}[{key!r}]")
    elif isinstance(first, list | tuple):
        assert len(first) == len(second), where
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            assert_bitwise_equal(a, b, f"{where}[{i}]")
    else:
        assert first == second, where


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run: its folder and how long its process took."""

    path: Path
    seconds: float


def reference_training(zygote: Zygote, data_dir: Path, folder: Path) -> Reference:
    run_dir = folder / "reference"
    started = time.monotonic()
    status = zygote.run("run_train.py", train_args(data_dir, run_dir), folder / "reference.log")
    assert status == 0, log_tail(folder / "reference.log")
    return Reference(run_dir, time.monotonic() - started)


def _attempt_ok(status: int, allowed: tuple[int, ...], log: Path) -> None:
    assert status in allowed, f"exit status {status}, expected one of {allowed}:\n{log_tail(log)}"


def _trained_steps(run_dir: Path) -> int:
    """The step of the run's ``last.ckpt`` (0 without one)."""
    last = run_dir / LAST
    return torch.load(last, weights_only=True)["global_step"] if last.exists() else 0


def _compare(run_dir: Path, reference: Reference, counts: Counts) -> None:
    """A finished run: no temporary file left, the lock released, the state equal to the reference's."""
    assert temporary_files(run_dir) == [], "a temporary file survived the next start"
    assert (run_dir / "run.lock").read_bytes() == b"", "a released lock file names no holder"
    assert_same_training_state(reference.path / LAST, run_dir / LAST)
    counts.files_compared += 1


def _finish_and_compare(zygote: Zygote, data_dir: Path, run_dir: Path, reference: Reference, counts: Counts) -> None:
    """Run once more to the end: it must succeed and then pass :func:`_compare`."""
    log = run_dir.parent / f"{run_dir.name}-final.log"
    resuming = (run_dir / LAST).exists()
    status = zygote.run("run_train.py", train_args(data_dir, run_dir), log)
    _attempt_ok(status, (0,), log)
    counts.resumes += resuming
    _compare(run_dir, reference, counts)


# What each fault is: the signal sent, the statuses a process may end with, the requeue handler it runs with.
FAULTS: dict[str, tuple[signal.Signals, tuple[int, ...], str | None]] = {
    "kill": (signal.SIGKILL, (-signal.SIGKILL, 0), None),
    # SIGKILL from inside an atomic write: the process kills itself there (see tests.helpers.fault_harness.KILL_POINTS).
    "kill_in_write": (signal.SIGKILL, (-signal.SIGKILL, 0), None),
    # Ctrl-C's path: 130 with a checkpoint once training runs; before that SIGTERM ends the process at once.
    "SIGTERM": (signal.SIGTERM, (INTERRUPTED_EXIT_CODE, -signal.SIGTERM, 0), None),
    # submitit's preemption signal with its requeue handler installed: the handler always ends the process.
    "SIGUSR2": (signal.SIGUSR2, (REQUEUED_EXIT_CODE, 0), "SIGUSR2"),
    # SIGTERM right after Lightning installed its own handler (sent by the process itself, deterministically):
    # it must still end with 130 and a checkpoint, not with Lightning's status 0 after one more step.
    "SIGTERM_in_setup": (signal.SIGTERM, (INTERRUPTED_EXIT_CODE,), None),
}


def fault_training(
    zygote: Zygote, data_dir: Path, folder: Path, reference: Reference, faults: list[str], seed: int
) -> Counts:
    """Inject ``faults`` (keys of :data:`FAULTS`) one after the other into trainings of one run directory.

    Each process is signalled at a uniform random moment within the length of an uninterrupted run, or, for
    ``kill_in_write``, kills itself inside a random one of its checkpoint writes (after the data is written,
    before or after its fsync, before the rename, or after the rename before the directory is flushed), or, for
    ``SIGTERM_in_setup``, sends itself SIGTERM just before the training loop starts. Every process must end
    with an allowed status and no traceback; the next one resumes; a last one runs to the end and must equal
    the uninterrupted run bit for bit, with no temporary file left. A process that finished the training before
    its fault came (or whose fault came after its last checkpoint) is compared the same way, and the next faults
    go to a new run directory, so that every fault meets a run with steps left to train.
    """
    rng = random.Random(seed)
    counts = Counts("training: " + ", ".join(f"{faults.count(kind)} {kind}" for kind in FAULTS if kind in faults))
    run_dir = folder / "faulted-0"
    points = sorted(CALLS_PER_WRITE)
    for attempt, kind in enumerate(faults):
        signum, allowed, handler = FAULTS[kind]
        log = folder / f"attempt-{attempt}-{kind}.log"
        if _trained_steps(run_dir) == TRAIN_STEPS:  # the last fault came after the final checkpoint
            _finish_and_compare(zygote, data_dir, run_dir, reference, counts)
            run_dir = folder / f"faulted-{attempt}"
        resuming, remaining = (run_dir / LAST).exists(), TRAIN_STEPS - _trained_steps(run_dir)
        args = train_args(data_dir, run_dir)
        if kind == "kill_in_write":
            point = points[rng.randrange(len(points))]
            write = WRITES_BEFORE_CHECKPOINTS + rng.randint(1, remaining)  # one of this attempt's checkpoints
            call = CALLS_PER_WRITE[point] * (write - 1) + rng.randint(1, CALLS_PER_WRITE[point])
            pid = zygote.start("run_train.py", args, log, signal_at=[point, call])
        elif kind == "SIGTERM_in_setup":
            pid = zygote.start("run_train.py", args, log, signal_at=["run_stage", 1, signum.name])
        else:
            # Within the time this attempt needs: the reference's time, scaled by the steps left.
            pid = zygote.start("run_train.py", args, log, handler=handler)
            signal_after(pid, rng.uniform(0, reference.seconds * remaining / TRAIN_STEPS), signum)
        status = zygote.wait(pid)
        _attempt_ok(status, allowed, log)
        counts.injections += status != 0
        left_temporary = any(f".{pid}.tmp" in path.name for path in temporary_files(run_dir))
        counts.inside_writes += left_temporary or (kind == "kill_in_write" and status == -signal.SIGKILL)
        counts.resumes += resuming
        text = log.read_text()
        assert "Traceback" not in text, log_tail(log)
        if status == INTERRUPTED_EXIT_CODE:
            assert f"interrupted at step {_trained_steps(run_dir)}" in text
        if status == 0:
            _compare(run_dir, reference, counts)
            run_dir = folder / f"faulted-{attempt + 1}"
    _finish_and_compare(zygote, data_dir, run_dir, reference, counts)
    return counts.record()


def snapshot(root: Path) -> dict[Path, bytes]:
    """Every file under ``root`` (hidden ones and ``.hydra/`` included) with its bytes."""
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def two_trainings(zygote: Zygote, data_dir: Path, folder: Path, delay_s: float = 0.0) -> Counts:
    """Two trainings started ``delay_s`` apart on one run directory: exactly one runs, the other names it."""
    counts = Counts("two trainings on one run directory")
    run_dir = folder / "shared"
    folder.mkdir(parents=True, exist_ok=True)
    logs = [folder / "first.log", folder / "second.log"]
    pids = [zygote.start("run_train.py", train_args(data_dir, run_dir), logs[0])]
    time.sleep(delay_s)
    pids.append(zygote.start("run_train.py", train_args(data_dir, run_dir), logs[1]))
    statuses = [zygote.wait(pid) for pid in pids]
    counts.injections += 1
    assert sorted(statuses) == [0, 1], [log_tail(log) for log in logs]
    winner, loser = (0, 1) if statuses[0] == 0 else (1, 0)
    message = " ".join(logs[loser].read_text().split())
    assert f"is in use by another training process (pid {pids[winner]} on host {socket.gethostname()}" in message
    assert torch.load(run_dir / LAST, weights_only=True)["global_step"] == TRAIN_STEPS
    return counts.record()


# ----------------------------------------------------------------------------------------------- segmentation


def segment_args(run_dir: Path, data_dir: Path, out_dir: Path) -> list[str]:
    return [
        f"run_dir={run_dir}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out_dir}",
        "test_num=4",
        "batch_size=1",
        "noise.perturb_num=6",
        "clustering.backend.workers=1",
        "figures_num=0",
    ]


def _predictions(out_dir: Path) -> dict[str, np.ndarray]:
    with np.load(out_dir / "predictions.npz") as arrays:
        return {key: arrays[key] for key in arrays.files}


def _compare_segmentation(reference: Path, out_dir: Path, counts: Counts) -> None:
    """A finished segmentation: no temporary file left, predictions and per-image scores as the reference's."""
    assert temporary_files(out_dir) == []
    expected, actual = _predictions(reference), _predictions(out_dir)
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    assert (out_dir / "per_image.csv").read_bytes() == (reference / "per_image.csv").read_bytes()
    counts.files_compared += 2


def kill_segmentation(
    zygote: Zygote, run_dir: Path, data_dir: Path, folder: Path, injections: int, seed: int
) -> Counts:
    """SIGKILL ``run_segment.py`` at random moments; the rerun resumes from its parts, identical to a straight run."""
    rng = random.Random(seed)
    counts = Counts("kill -9 segmentation")
    reference = folder / "reference"
    started = time.monotonic()
    status = zygote.run("run_segment.py", segment_args(run_dir, data_dir, reference), folder / "reference.log")
    assert status == 0, log_tail(folder / "reference.log")
    seconds = time.monotonic() - started
    out_dir = folder / "killed-0"
    for attempt in range(injections):
        log = folder / f"killed-{attempt}.log"
        resuming = (out_dir / "parts").exists()
        pid = zygote.start("run_segment.py", segment_args(run_dir, data_dir, out_dir), log)
        signal_after(pid, rng.uniform(0, seconds))
        status = zygote.wait(pid)
        _attempt_ok(status, (-signal.SIGKILL, 0), log)
        counts.injections += status == -signal.SIGKILL
        counts.inside_writes += any(f".{pid}.tmp" in path.name for path in temporary_files(out_dir))
        counts.resumes += resuming
        if status == 0:
            _compare_segmentation(reference, out_dir, counts)
            out_dir = folder / f"killed-{attempt + 1}"
    log = folder / "final.log"
    resuming = (out_dir / "parts").exists()
    _attempt_ok(zygote.run("run_segment.py", segment_args(run_dir, data_dir, out_dir), log), (0,), log)
    counts.resumes += resuming
    _compare_segmentation(reference, out_dir, counts)
    return counts.record()


# ----------------------------------------------------------------------------------------------- data generation


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_absent_or_complete(folder: Path) -> bool:
    """A dataset folder either does not exist or is complete: manifest present, every split as it lists it."""
    if not folder.exists():
        return False
    manifest = json.loads((folder / "manifest.json").read_text())
    for split in SPLITS:
        entry = manifest["splits"][split]
        assert sha256(folder / entry["file"]) == entry["sha256"], f"{folder / entry['file']} is not as listed"
    return True


def kill_generation(zygote: Zygote, folder: Path, injections: int, seed: int) -> Counts:
    """SIGKILL ``python -m data_gen`` at random moments: no folder that loads as a dataset is ever half-written."""
    rng = random.Random(seed)
    counts = Counts("kill -9 data generation")
    reference = folder / "reference"
    started = time.monotonic()
    log = folder / "reference.log"
    args = [*GENERATE, f"paths.data_dir={reference}", f"hydra.run.dir={folder / 'hydra'}"]
    assert zygote.run("data_gen", args, log) == 0, log_tail(log)
    seconds = time.monotonic() - started
    data_dir = folder / "killed"
    target = data_dir / "dKanizsa"
    for attempt in range(injections):
        log = folder / f"killed-{attempt}.log"
        overwrite = f"overwrite={str(target.exists()).lower()}"
        args = [*GENERATE, f"paths.data_dir={data_dir}", overwrite, f"hydra.run.dir={folder / 'hydra'}"]
        pid = zygote.start("data_gen", args, log)
        signal_after(pid, rng.uniform(0, seconds))
        status = zygote.wait(pid)
        _attempt_ok(status, (-signal.SIGKILL, 0), log)
        counts.injections += status == -signal.SIGKILL
        assert_absent_or_complete(target)
        counts.resumes += attempt > 0
    log = folder / "final.log"
    overwrite = f"overwrite={str(target.exists()).lower()}"
    args = [*GENERATE, f"paths.data_dir={data_dir}", overwrite, f"hydra.run.dir={folder / 'hydra'}"]
    _attempt_ok(zygote.run("data_gen", args, log), (0,), log)
    counts.resumes += 1
    assert assert_absent_or_complete(target)
    assert sorted(path.name for path in data_dir.iterdir()) == ["dKanizsa"], "a stale partial folder survived"
    for split in SPLITS:
        name = f"{split}.npz"
        assert (target / name).read_bytes() == (reference / "dKanizsa" / name).read_bytes(), name
        counts.files_compared += 1
    return counts.record()
