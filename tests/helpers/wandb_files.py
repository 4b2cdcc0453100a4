"""Reading what W&B wrote in offline mode: the run folders of a directory and the records of a run's log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from wandb.proto.wandb_internal_pb2 import Record

_BLOCK = 32768  # the .wandb transaction log: a 7-byte file header, then LevelDB-log records in 32 KiB blocks
_FULL, _LAST = 1, 4


def wandb_records(path: Path) -> Iterator[Record]:
    """The records of an offline run's ``run-<id>.wandb`` file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, chunk = 7, b""
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # block trailer too short for a record header: padding
            pos += _BLOCK - pos % _BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (_FULL, _LAST):
            record = Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


def offline_runs(run_dir: Path) -> list[Path]:
    """The offline W&B run folders that jobs wrote into ``run_dir``, oldest first."""
    return sorted((run_dir / "wandb").glob("offline-run-*"), key=lambda path: path.name)


def read_run(folder: Path, wait_s: float = 10.0) -> dict:
    """What a finished offline run holds: id, group, the history keys and the exit codes of its exit records.

    ``wandb.finish`` returns once the run is closed; W&B's service process may write the file a moment later.
    """
    (log,) = folder.glob("run-*.wandb")
    deadline = time.monotonic() + wait_s
    while True:
        records = list(wandb_records(log))
        exits = [record.exit.exit_code for record in records if record.WhichOneof("record_type") == "exit"]
        if exits or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    runs = [record.run for record in records if record.WhichOneof("record_type") == "run"]
    assert runs, f"{log} has no run record"
    keys = {
        item.key or "/".join(item.nested_key)
        for record in records
        if record.WhichOneof("record_type") == "history"
        for item in record.history.item
    }
    return {"id": runs[0].run_id, "group": runs[0].run_group, "keys": keys, "exits": exits}
