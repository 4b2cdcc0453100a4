"""Crash safety: the guarantees of docs/reliability.md, each proven by injected faults, interruptions and kills.

Unit tests of the pieces (atomic writes, stale files, the run lock, the rank-shared stop requests, disk-full
detection, the dataset streams), Ctrl-C, SIGTERM and kills inside a checkpoint write, and fast fault-injection
runs (a few faults each). The long runs, with many more injections, are in ``test_faults_long.py`` behind
``-m faults_long``. Wrong input and settings (one paragraph, no traceback) are in ``test_robustness.py``.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from data_gen.generate import MODULES, Request, plan_splits, render
from data_gen.gradient_occlusion import gradient_colours
from lns.cli.entry import INTERRUPTED_EXIT_CODE
from lns.errors import LNSError
from lns.runs import atomic
from lns.runs.disk_full import is_disk_full
from lns.runs.process_rank import is_launching_process
from lns.runs.run_lock import RUN_LOCK, holding_run_dir, run_lock
from lns.runs.stale_files import remove_stale_partial_folders, remove_stale_temporary_files
from lns.segmentation.parts import PartStore
from lns.train import train
from lns.training.safety.checkpoint_io import AtomicCheckpointIO
from lns.training.safety.interrupt import GracefulInterrupt
from lns.training.safety.shared_requests import SharedRequests
from tests.helpers import LEAN, REPO, TINY_TRAIN, compose_config
from tests.helpers.fault_harness import Zygote
from tests.helpers.fault_scenarios import (
    LAST,
    TRAIN_STEPS,
    Reference,
    assert_bitwise_equal,
    fault_training,
    kill_generation,
    kill_segmentation,
    log_tail,
    snapshot,
    temporary_files,
    train_args,
    two_trainings,
)

# ----------------------------------------------------------------------------------------------- atomic writes


def test_atomic_write_fsyncs_the_file_then_renames_then_fsyncs_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append("fsync directory" if Path(f"/proc/self/fd/{descriptor}").resolve().is_dir() else "fsync file")
        real_fsync(descriptor)

    def replace(source: str | Path, target: str | Path) -> None:
        events.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic.atomic_write_text(tmp_path / "a.txt", "hello")
    assert events == ["fsync file", "rename", "fsync directory"]
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ----------------------------------------------------------------------------------------------- stale files


def test_stale_temporary_files_of_dead_processes_go_those_of_live_ones_stay(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / "checkpoints" / f".last.ckpt.{dead}.tmp"
    live = tmp_path / "checkpoints" / f".step00000002.ckpt.{os.getpid()}.tmp"
    unrelated = tmp_path / "checkpoints" / ".notes.tmp"
    for path in (stale, live, unrelated):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    assert remove_stale_temporary_files(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and unrelated.exists()


def test_stale_partial_dataset_folders_of_dead_processes_go(tmp_path: Path) -> None:
    dead, live = tmp_path / f".dKanizsa.partial-{_dead_pid()}-x1", tmp_path / f".dKanizsa.partial-{os.getpid()}-x2"
    for folder in (dead, live):
        (folder / "train.npz").parent.mkdir(parents=True)
        (folder / "train.npz").write_bytes(b"partial")
    assert remove_stale_partial_folders(tmp_path) == [dead]
    assert not dead.exists() and live.exists()


# ----------------------------------------------------------------------------------------------- the run lock

HOLDER = textwrap.dedent(
    """
    import sys, time
    from lns.runs.run_lock import run_lock
    with run_lock(sys.argv[1]):
        print("holding", flush=True)
        time.sleep(600)
    """
)


@pytest.fixture
def held_run_dir(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A run directory whose lock another process holds."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield tmp_path, holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_frees_the_lock(
    held_run_dir: tuple[Path, subprocess.Popen],
) -> None:
    run_dir, holder = held_run_dir
    with pytest.raises(LNSError) as refused, run_lock(run_dir):
        pass
    message = str(refused.value)
    assert f"in use by another training process (pid {holder.pid} on host {socket.gethostname()}" in message
    assert str(run_dir / RUN_LOCK) in message
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_lock(run_dir) as path:
        assert f"pid {os.getpid()} on host" in path.read_text()
    assert path.read_bytes() == b"", "a released lock names no holder"


def test_only_the_launching_process_takes_the_lock(
    held_run_dir: tuple[Path, subprocess.Popen], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranks > 0 of a data-parallel run (srun tasks, Lightning's child processes) run in the locked directory."""
    run_dir, _ = held_run_dir
    with pytest.raises(LNSError, match="in use by another training process"), holding_run_dir(run_dir):
        pass
    for variable in ("SLURM_PROCID", "LOCAL_RANK", "RANK", "NODE_RANK"):
        entered = False
        with monkeypatch.context() as patch:
            patch.setenv(variable, "1")
            with holding_run_dir(run_dir):
                entered = True
        assert entered, variable


def test_lock_run_dir_false_runs_without_the_lock(held_run_dir: tuple[Path, subprocess.Popen]) -> None:
    run_dir, _ = held_run_dir
    with holding_run_dir(run_dir, lock=False):
        assert (run_dir / RUN_LOCK).read_bytes() != b"", "the other process still holds the lock"


def test_a_file_system_without_locks_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_locks(descriptor: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("lns.runs.run_lock.fcntl.flock", no_locks)
    with pytest.raises(LNSError) as unsupported, run_lock(tmp_path):
        pass
    message = " ".join(str(unsupported.value).split())
    assert "does not support file locks (No locks available)" in message and "lock_run_dir=false" in message


@pytest.mark.parametrize(
    ("environ", "launching"),
    [
        ({}, True),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, True),
        ({"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, False),
        ({"LOCAL_RANK": "1", "NODE_RANK": "0"}, False),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),
        ({"RANK": "3"}, False),
    ],
)
def test_launching_process_from_rank_variables(environ: dict[str, str], launching: bool) -> None:
    assert is_launching_process(environ) is launching


# ----------------------------------------------------------------------------------------------- DDP requests


class CountingStrategy:
    """Sums flags over two simulated ranks (the other rank raises ``other``); counts the collectives."""

    root_device = torch.device("cpu")

    def __init__(self, other: list[int]) -> None:
        self.other = torch.tensor(other, dtype=torch.int32)
        self.calls = 0

    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "sum"
        self.calls += 1
        return tensor + self.other


def test_stop_and_save_requests_are_agreed_in_one_collective_per_step() -> None:
    interrupt = SimpleNamespace(requested=False, agreed=False)
    requeue = SimpleNamespace(requested=True, agreed=False)
    strategy = CountingStrategy(other=[1, 0])
    shared = SharedRequests(interrupt, requeue)
    shared.on_train_batch_end(SimpleNamespace(strategy=strategy, world_size=2))
    assert strategy.calls == 1
    assert interrupt.agreed and requeue.agreed, "a request on any rank is a request on all"
    requeue.requested = False
    strategy.other = torch.tensor([0, 0], dtype=torch.int32)
    shared.on_train_batch_end(SimpleNamespace(strategy=strategy, world_size=2))
    assert strategy.calls == 2 and not interrupt.agreed and not requeue.agreed
    shared.on_train_batch_end(SimpleNamespace(strategy=None, world_size=1))
    assert strategy.calls == 2, "one process needs no collective"


# ----------------------------------------------------------------------------------------------- disk full


def test_disk_full_is_recognised_behind_torch_save_s_own_error() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    assert not is_disk_full(RuntimeError("something else"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs to fill needs root and mount(8)")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount_point)], check=False)
    if mounted.returncode != 0:
        pytest.skip("mount -t tmpfs failed (no CAP_SYS_ADMIN in this container)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_checkpoint_write_on_a_full_disk_is_explained_and_keeps_the_previous_file(small_tmpfs: Path) -> None:
    last = small_tmpfs / LAST
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "weights": torch.zeros(4_000_000)}, last)  # 16 MB of the 40
    before = last.read_bytes()
    with pytest.raises(LNSError) as full:
        io.save_checkpoint({"global_step": 2, "weights": torch.ones(8_000_000)}, last)
    message = " ".join(str(full.value).split())
    assert f"No space left on the device (or the disk quota is used up) while writing {last}" in message
    assert "a training run resumes from its checkpoints/last.ckpt" in message
    assert last.read_bytes() == before
    assert torch.load(last, weights_only=True)["global_step"] == 1
    assert temporary_files(small_tmpfs) == []


# ----------------------------------------------------------------------------------------------- datasets


def _request(n_train: int) -> Request:
    return Request(datasets=("kanizsa",), data_dir=Path("unused"), n_train=n_train, n_valid=4, n_test=8)


def test_test_1_does_not_depend_on_n_train_and_train_valid_keep_their_stream() -> None:
    module = MODULES["kanizsa"]
    small, large = plan_splits(module, _request(16)), plan_splits(module, _request(32))
    for key in small["test_1"]:
        np.testing.assert_array_equal(small["test_1"][key], large["test_1"][key])
        np.testing.assert_array_equal(small["test"][key], large["test"][key])
    rng = np.random.default_rng(42)
    expected = module.sample(rng, 16, False)
    for key in expected:
        np.testing.assert_array_equal(small["train"][key], expected[key])
    valid = module.sample(rng, 4, False)
    for key in valid:
        np.testing.assert_array_equal(small["valid"][key], valid[key])


def test_gradient_colours_are_8_bit_levels_close_to_the_exact_product() -> None:
    colour = np.array([[110, 146, 182]]) / 255
    factors = np.array([0.4, 0.4 + 1 / 119 * 0.6, 1.0])
    levels = gradient_colours(colour, factors) * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-9)
    exact = colour[:, None, :] * factors[None, :, None]
    assert np.abs(gradient_colours(colour, factors) - exact).max() <= 0.5 / 255 + 1e-12
    np.testing.assert_array_equal(gradient_colours(colour, factors)[:, -1], colour)


def test_gradient_occlusion_splits_share_no_colour_value_at_1000_training_images() -> None:
    """Unrounded gradient colours (n/255 x factor) shared 37 values across these splits; 8-bit levels share none."""
    module = MODULES["gradient_occlusion"]
    request = Request(datasets=("gradient_occlusion",), data_dir=Path("unused"), n_train=1000, n_valid=300, n_test=100)
    values = {
        split: np.unique(np.concatenate([chunk.images for chunk in render(module, params, split, 64)]))
        for split, params in plan_splits(module, request).items()
    }
    test = np.union1d(values["test_1"], values["test"])
    for first, second in ((values["train"], values["valid"]), (values["train"], test), (values["valid"], test)):
        assert np.intersect1d(first, second).size == 0


# ----------------------------------------------------------------------------------------------- interruption and kills


def _sigterm_run_args(data_dir: Path) -> list[str]:
    return [
        f"paths.data_dir={data_dir}",
        *TINY_TRAIN,
        *LEAN,
        "model=vae",
        "data.batch_size=2",
    ]


@pytest.mark.e2e
def test_sigterm_writes_a_checkpoint_and_resuming_continues_exactly(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    every_step = "callbacks.checkpoint.every_n_train_steps=1"
    args = [*_sigterm_run_args(tiny_data_dir), f"hydra.run.dir={run_dir}", "trainer.max_steps=1000000", every_step]
    process = subprocess.Popen(
        [sys.executable, "run_train.py", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "checkpoints" / "step00000001.ckpt").exists():
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no periodic checkpoint appeared"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == INTERRUPTED_EXIT_CODE, err[-3000:]
    stopped = torch.load(run_dir / LAST, weights_only=True)
    step = stopped["global_step"]
    assert 1 <= step < 1000
    assert f"interrupted at step {step}" in out
    assert "Traceback" not in err

    common = [*_sigterm_run_args(tiny_data_dir), f"trainer.max_steps={step + 2}"]
    resumed = train(compose_config("train", common, run_dir))
    assert resumed["resumed_from"] == run_dir / LAST
    assert resumed["global_step"] == step + 2
    straight = train(compose_config("train", common, tmp_path / "straight"))
    assert straight["global_step"] == step + 2

    expected = torch.load(tmp_path / "straight" / LAST, weights_only=True)
    final = torch.load(run_dir / LAST, weights_only=True)
    assert final["global_step"] == expected["global_step"] == step + 2
    assert float(stopped["state_dict"]["objective.beta"]) != float(final["state_dict"]["objective.beta"])
    assert_bitwise_equal(expected["state_dict"], final["state_dict"], "state_dict")
    assert_bitwise_equal(expected["optimizer_states"], final["optimizer_states"], "optimizer_states")
    assert not list(run_dir.glob("checkpoints/last-v*.ckpt"))


def test_first_ctrl_c_asks_for_a_checkpoint_a_second_one_aborts() -> None:
    interrupt = GracefulInterrupt()
    interrupt._handler(signal.SIGINT, None)
    assert interrupt.requested
    interrupt._handler(signal.SIGTERM, None)
    with pytest.raises(KeyboardInterrupt):
        interrupt._handler(signal.SIGINT, None)


class InterruptAtOnce(GracefulInterrupt):
    """As if Ctrl-C came during the first step."""

    def __init__(self) -> None:
        super().__init__()
        self.requested = True


@pytest.mark.e2e
def test_early_interrupt_and_odd_max_steps_leave_the_final_step_in_last_ckpt(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted before the first periodic checkpoint, then resumed to a step that is no checkpoint step."""
    overrides = [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", *LEAN, "data.batch_size=4"]
    with monkeypatch.context() as patch:
        patch.setattr("lns.train.GracefulInterrupt", InterruptAtOnce)
        first = train(compose_config("train", overrides, tmp_path))
    assert first["interrupted"] and first["global_step"] == 1
    resumed = train(compose_config("train", [*overrides, "trainer.max_steps=3"], tmp_path))
    assert resumed["resumed_from"] == tmp_path / LAST and resumed["global_step"] == 3
    assert torch.load(tmp_path / LAST, weights_only=True)["global_step"] == 3
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt", "step00000002.ckpt"]


KILLED_WRITER = textwrap.dedent(
    """
    import io, sys, time
    import torch
    from lns.training.safety.checkpoint_io import AtomicCheckpointIO

    real_save = torch.save

    def dying_save(obj, handle):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        handle.write(buffer.getvalue()[: buffer.tell() // 2])
        handle.flush()
        print("half written", flush=True)
        time.sleep(600)

    torch.save = dying_save
    AtomicCheckpointIO().save_checkpoint({"global_step": 2, "weights": torch.ones(1_000_000)}, sys.argv[1])
    """
)


def test_kill_during_checkpoint_write_keeps_the_previous_last_ckpt(tmp_path: Path) -> None:
    from lns.training.safety.checkpoint_io import AtomicCheckpointIO

    last = tmp_path / LAST
    AtomicCheckpointIO().save_checkpoint({"global_step": 1, "weights": torch.zeros(10)}, last)
    before = last.read_bytes()
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(last)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "half written"
        (partial,) = last.parent.glob(".last.ckpt.*.tmp")
        assert partial.stat().st_size > 1_000_000
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
    assert writer.returncode == -signal.SIGKILL
    assert last.read_bytes() == before
    assert torch.load(last, weights_only=True)["global_step"] == 1


def test_part_store_ignores_what_a_killed_write_left_behind(tmp_path: Path) -> None:
    store = PartStore(tmp_path / "parts", {"noise": 1})
    one = {
        "index": np.array([0, 1]),
        "ari": np.ones(2),
        "ari_fg": np.ones(2),
        "n_clusters": np.array([2, 2]),
        "labels": np.zeros((2, 4, 4), np.int64),
        "reconstructions": np.zeros((2, 3, 4, 4), np.float32),
    }
    store.write_batch(features={}, **one)
    (tmp_path / "parts" / ".part-000002.npz.12345.tmp").write_bytes(b"PK\x03\x04 half an archive")
    reopened = PartStore(tmp_path / "parts", {"noise": 1})
    assert reopened.done_indices() == {0, 1}
    assert reopened.collect().index.tolist() == [0, 1]


# ----------------------------------------------------------------------------------------------- fault injection


@pytest.mark.e2e
def test_training_survives_kills_signals_and_kills_inside_checkpoint_writes(
    zygote: Zygote, tiny_data_dir: Path, reference: Reference, tmp_path: Path
) -> None:
    faults = ["kill", "kill_in_write", "SIGTERM", "kill", "SIGUSR2", "SIGTERM_in_setup", "kill_in_write"]
    counts = fault_training(zygote, tiny_data_dir, tmp_path, reference, faults, seed=16)
    assert counts.injections >= 4


@pytest.mark.e2e
def test_two_trainings_on_one_run_directory_exactly_one_runs(
    zygote: Zygote, tiny_data_dir: Path, tmp_path: Path
) -> None:
    two_trainings(zygote, tiny_data_dir, tmp_path)


@pytest.mark.e2e
def test_refused_runs_leave_every_file_of_the_run_byte_identical(
    zygote: Zygote, tiny_data_dir: Path, reference: Reference, tmp_path: Path
) -> None:
    """Other settings, auto_resume=false, and a run directory in use: .hydra/, log and lock file included."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference.path, run_dir)
    before = snapshot(run_dir)
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "run_train.log", "run.lock"} <= {
        str(path.relative_to(run_dir)) for path in before
    }
    refusals = {
        "other settings": ("optimizer.lr=1e-4",),
        "auto_resume=false": ("auto_resume=false",),
    }
    for name, overrides in refusals.items():
        log = tmp_path / f"{name}.log"
        assert zygote.run("run_train.py", train_args(tiny_data_dir, run_dir, *overrides), log) == 1, log_tail(log)
        assert "nothing was overwritten" in " ".join(log.read_text().split()), name
        assert snapshot(run_dir) == before, name
    with run_lock(run_dir):
        held = snapshot(run_dir)
        log = tmp_path / "in-use.log"
        assert zygote.run("run_train.py", train_args(tiny_data_dir, run_dir), log) == 1, log_tail(log)
        assert "is in use by another training process" in " ".join(log.read_text().split())
        assert snapshot(run_dir) == held
    assert snapshot(run_dir) == before


@pytest.mark.e2e
def test_segmentation_killed_at_random_moments_resumes_to_identical_predictions(
    zygote: Zygote, trained_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    kill_segmentation(zygote, trained_run, tiny_data_dir, tmp_path, injections=2, seed=16)


@pytest.mark.e2e
def test_data_generation_killed_at_random_moments_never_leaves_a_loadable_half_dataset(
    zygote: Zygote, tmp_path: Path
) -> None:
    kill_generation(zygote, tmp_path, injections=2, seed=16)


@pytest.mark.e2e
def test_training_that_fills_its_disk_stops_clearly_and_resumes_once_space_is_back(
    zygote: Zygote, tiny_data_dir: Path, reference: Reference, small_tmpfs: Path
) -> None:
    """Every step keeps a 25 MB step checkpoint beside last.ckpt, so the 40 MiB tmpfs fills at step 1 or 2."""
    run_dir = small_tmpfs / "run"
    keep_all = "callbacks.checkpoint.save_top_k=-1"
    log = small_tmpfs.parent / "full.log"
    assert zygote.run("run_train.py", train_args(tiny_data_dir, run_dir, keep_all), log) == 1, log_tail(log)
    text = log.read_text()
    assert "Traceback" not in text
    assert "No space left on the device" in " ".join(text.split())
    assert temporary_files(run_dir) == []
    if (run_dir / LAST).exists():
        assert 1 <= torch.load(run_dir / LAST, weights_only=True)["global_step"] < TRAIN_STEPS
    subprocess.run(["mount", "-o", "remount,size=400m", str(small_tmpfs)], check=True)
    log = small_tmpfs.parent / "resumed.log"
    assert zygote.run("run_train.py", train_args(tiny_data_dir, run_dir, keep_all), log) == 0, log_tail(log)
    final = torch.load(run_dir / LAST, weights_only=True)
    assert final["global_step"] == TRAIN_STEPS
    expected = torch.load(reference.path / LAST, weights_only=True)
    for key, value in expected["state_dict"].items():
        assert torch.equal(final["state_dict"][key], value), key


@pytest.mark.e2e
def test_dataset_generation_on_a_full_disk_is_explained_and_keeps_the_previous_dataset(
    zygote: Zygote, small_tmpfs: Path
) -> None:
    hydra_dir = f"hydra.run.dir={small_tmpfs.parent / 'hydra'}"
    small = ["dataset=kanizsa", f"paths.data_dir={small_tmpfs}", "n_valid=4", "n_test=4", hydra_dir]
    log = small_tmpfs.parent / "small.log"
    assert zygote.run("data_gen", [*small, "n_train=8"], log) == 0, log_tail(log)
    before = snapshot(small_tmpfs / "dKanizsa")
    subprocess.run(["mount", "-o", "remount,size=2m", str(small_tmpfs)], check=True)  # 4000 images need ~4.4 MB
    log = small_tmpfs.parent / "large.log"
    assert zygote.run("data_gen", [*small, "n_train=4000", "overwrite=true"], log) == 1, log_tail(log)
    text = " ".join(log.read_text().split())
    assert "No space left on the device" in text and "Traceback" not in text
    assert snapshot(small_tmpfs / "dKanizsa") == before
    assert sorted(path.name for path in small_tmpfs.iterdir()) == ["dKanizsa"]
