"""Fault injection: run the real entry points in processes that can be killed at any moment, cheaply.

A *zygote* process (``python -m tests.helpers.fault_harness``) imports torch, Lightning and lns once and then forks one
child per command; each child runs ``run_train.py``, ``run_segment.py`` or ``python -m data_gen`` exactly as
the command line does (``runpy``), so the tests can kill many real processes at random moments without paying
the imports every time. A child may also be told to signal itself at the n-th call of a function, e.g. inside
the atomic-write path (after the data is written, before or after the rename), which puts kills inside
checkpoint writes deterministically.

Protocol (one JSON object per line): the test sends ``{"op": "start", ...}`` and reads ``{"pid": ...}``; it sends
``{"op": "wait", "pid": ...}`` and reads ``{"status": ...}``: the exit code, or minus the signal that ended it.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Imported by the zygote before it forks: what every entry point needs.
PRELOADED = ("lns.train", "lns.segment", "data_gen.generate")
# Functions a child can be told to die in, by name: module attribute paths patched in the child.
KILL_POINTS = {
    "fsync": ("os", "fsync"),  # inside an atomic write: data written, not yet renamed
    "replace": ("lns.runs.atomic", "replace_durably"),  # about to rename the finished temporary file
    "fsync_directory": ("lns.runs.atomic", "fsync_directory"),  # renamed, the directory not yet flushed
    "torch_load": ("torch", "load"),  # reading a checkpoint (the 2nd read of a resume is Lightning's restore)
    # Right after Lightning installed its own SIGTERM handler, before the training loop starts.
    "run_stage": ("pytorch_lightning.trainer.trainer", "Trainer._run_stage"),
}


def _signal_at(point: str, call: int, signal_name: str = "SIGKILL") -> None:
    """Patch ``point`` so that at its ``call``-th call (1-based) this process sends itself ``signal_name``."""
    module_name, path = KILL_POINTS[point]
    *parents, attribute = path.split(".")
    owner = importlib.import_module(module_name)
    for name in parents:
        owner = getattr(owner, name)
    original = getattr(owner, attribute)
    calls = {"n": 0}

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), signal.Signals[signal_name])
        return original(*args, **kwargs)

    setattr(owner, attribute, dying)


def _child(command: dict[str, Any]) -> None:
    """Run one entry point in this (forked) process and leave with its exit status."""
    code = 0
    try:
        os.setpgid(0, 0)
        os.environ.update(command.get("env", {}))
        devnull = os.open(os.devnull, os.O_RDWR)
        log = os.open(command["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        if command.get("signal_at"):
            _signal_at(*command["signal_at"])
        if command.get("handler"):
            # As under submitit: SUBMITIT_EXECUTOR is set (the requeue handler came with the fork).
            os.environ["SUBMITIT_EXECUTOR"] = "fault-harness"
        sys.argv = [command["target"], *command["args"]]
        if command["target"].endswith(".py"):
            runpy.run_path(str(REPO / command["target"]), run_name="__main__")
        else:
            runpy.run_module(command["target"], run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


REQUEUED_EXIT_CODE = 3


def _requeued(signum: int, frame: object) -> None:
    """Stand-in for submitit's requeue handler: say so and leave with a recognisable status."""
    print(f"requeue handler called with signal {signum}", flush=True)
    os._exit(REQUEUED_EXIT_CODE)


def serve() -> None:
    """The zygote: import once, then fork a child per ``start`` and reap it on ``wait``."""
    for module in PRELOADED:
        importlib.import_module(module)

    os.chdir(REPO)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "start":
            # The requeue handler is in place before the child exists, so no early signal can miss it.
            handled = signal.Signals[command["handler"]] if command.get("handler") else None
            previous = signal.signal(handled, _requeued) if handled else None
            pid = os.fork()
            if pid == 0:
                _child(command)
            if handled:
                signal.signal(handled, previous)
            print(json.dumps({"pid": pid}), flush=True)
        elif command["op"] == "wait":
            _, status = os.waitpid(command["pid"], 0)
            print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)


@dataclass
class Zygote:
    """The test side of :func:`serve`."""

    process: subprocess.Popen = field(init=False)

    def __post_init__(self) -> None:
        env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.fault_harness"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert "ready" in self._read(timeout_s=300)

    def _read(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        assert ready, f"the fault-injection zygote did not answer within {timeout_s} s"
        line = self.process.stdout.readline()
        assert line, "the fault-injection zygote ended"
        return json.loads(line)

    def _send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def start(self, target: str, args: list[str], log: Path, **options: Any) -> int:
        """Fork a child running ``target`` (a script or a module) with ``args``; return its pid.

        The log exists before the child does: a child killed before it opened the log still leaves one to read.
        """
        log.touch()
        self._send({"op": "start", "target": target, "args": args, "log": str(log), **options})
        return int(self._read(timeout_s=60)["pid"])

    def wait(self, pid: int, timeout_s: float = 600) -> int:
        """Reap the child; its exit code, or minus the signal that ended it."""
        self._send({"op": "wait", "pid": pid})
        return int(self._read(timeout_s=timeout_s)["status"])

    def run(self, target: str, args: list[str], log: Path, **options: Any) -> int:
        """Start a child and wait for it."""
        return self.wait(self.start(target, args, log, **options))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def signal_after(pid: int, seconds: float, signum: int = signal.SIGKILL) -> None:
    """Sleep, then send ``signum`` to the child (a child that already ended is a zombie until reaped: no effect)."""
    time.sleep(seconds)
    os.kill(pid, signum)


if __name__ == "__main__":
    serve()
