"""One training process per run directory: an advisory ``flock`` on ``run.lock``, released by the kernel on death.

Only the launching process takes the lock: under data parallelism every rank (Lightning's child processes,
``srun`` tasks, ranks on other nodes) calls ``train()`` in the same run directory, and those with a non-zero
rank must not refuse themselves. A killed process never leaves a stale lock, so a requeued job always gets it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path

from lns.errors import LNSError
from lns.runs.process_rank import is_launching_process
from lns.runs.stale_files import remove_stale_temporary_files

RUN_LOCK = Path("run.lock")
# A holder writes its name right after taking the lock; a refused process waits this long for it to appear.
HOLDER_WAIT_S = 2.0
HOLDER_POLL_S = 0.05
# errno values of file systems that do not support flock (e.g. Lustre mounted without -o flock).
UNSUPPORTED = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})


def holder_line() -> str:
    """What the holder writes into the lock file: its pid, host and start time."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"pid {os.getpid()} on host {socket.gethostname()} since {started}\n"


def _read_holder(path: Path) -> str:
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if text or time.monotonic() >= deadline:
            return text or "a process that has not yet written its pid and host"
        time.sleep(HOLDER_POLL_S)


def _refusal(run_dir: Path, path: Path) -> LNSError:
    return LNSError(
        f"{run_dir} is in use by another training process ({_read_holder(path)}), which holds {path}; this one "
        "stopped without touching the run. Wait for that run to end (or stop it: Ctrl-C writes its checkpoint), "
        "then run the command again to continue it; or train into another hydra.run.dir."
    )


def _unsupported(run_dir: Path, error: OSError) -> LNSError:
    return LNSError(
        f"The file system of {run_dir} does not support file locks ({error.strerror}), so this run cannot make "
        "sure that no other process trains in the same directory. Train into a directory on another file system "
        "(e.g. mounted with -o flock), or pass lock_run_dir=false and make sure yourself that only one process "
        "uses it."
    )


@contextmanager
def run_lock(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``run_dir/run.lock`` exclusively for the ``with`` block; raise LNSError naming the holder if taken.

    The lock file stays; while held it names the holder, and it is emptied again when released.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RUN_LOCK
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _refusal(run_dir, path) from None
        except OSError as error:
            if error.errno in UNSUPPORTED:
                raise _unsupported(run_dir, error) from error
            raise
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, holder_line().encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)


@contextmanager
def holding_run_dir(run_dir: Path, *, lock: bool = True) -> Iterator[None]:
    """Hold the lock of ``run_dir`` for the block.

    The launching process takes the lock (unless ``lock`` is false: ``lock_run_dir=false``) and then removes the
    temporary files that killed processes left in the run directory; the other ranks of a data-parallel run do
    neither.
    """
    if not is_launching_process():
        yield
        return
    with run_lock(run_dir) if lock else nullcontext():
        remove_stale_temporary_files(run_dir)
        yield
