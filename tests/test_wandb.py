"""W&B offline: one finished run per job, the same run id after a resume, losses, GECO beta and figures logged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytorch_lightning as pl
import wandb
from wandb.proto.wandb_internal_pb2 import Record

from lns.train import train
from tests.conftest import TINY_TRAIN, compose_config

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


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))


def test_training_logs_one_finished_run_and_a_resume_continues_its_id(tiny_data_dir: Path, tmp_path: Path) -> None:
    common = [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", "logger=wandb", "tags=[tiny]"]
    run_dir = tmp_path / "run"
    train(compose_config("train", [*common, "trainer.max_steps=2"], run_dir))
    assert wandb.run is None

    (first,) = offline_runs(run_dir)
    logged = read_run(first)
    assert logged["id"] == (run_dir / "wandb_id.txt").read_text().strip()
    assert logged["exits"] == [0]
    assert logged["group"] == "default-kanizsa"
    assert {"train/loss", "train/recon", "train/geco_beta", "val/recon", "trainer/global_step"} <= logged["keys"]
    assert {"figures/reconstructions/filenames", "figures/curves/filenames"} <= logged["keys"]

    result = train(compose_config("train", [*common, "trainer.max_steps=4"], run_dir))
    assert result["resumed_from"] == run_dir / "checkpoints" / "last.ckpt"
    runs = offline_runs(run_dir)
    assert len(runs) == 2
    resumed = read_run(runs[1])
    assert resumed["id"] == logged["id"]
    assert resumed["exits"] == [0]
    assert "figures/reconstructions/filenames" in resumed["keys"]


class FailAtStep(pl.Callback):
    """Raises after training step ``step`` (a job that crashes)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("job failed on purpose")


def test_a_failing_job_still_finishes_its_run(tiny_data_dir: Path, tmp_path: Path) -> None:
    overrides = [
        *TINY_TRAIN,
        f"paths.data_dir={tiny_data_dir}",
        "logger=wandb",
        "+callbacks.fail._target_=tests.test_wandb.FailAtStep",
        "+callbacks.fail.step=1",
    ]
    with pytest.raises(RuntimeError, match="on purpose"):
        train(compose_config("train", overrides, tmp_path))
    assert wandb.run is None
    (folder,) = offline_runs(tmp_path)
    assert read_run(folder)["exits"] == [1]
