"""Chunked training (``speed.steps_per_call``): K optimizer steps per Lightning step train exactly as single steps,
a resume inside a chunk lands on the exact step, the sync-free finite check stops a bad loss within its interval,
and intervals that fall inside a chunk are refused."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lns.errors import LNSError
from lns.train import train
from lns.training.module import adopt_automatic_step_count
from lns.training.step_intervals import check_steps_per_call
from tests.helpers import LAST, TINY_TRAIN, compose_config

# Every interval a multiple of 4; a VAE, so GECO's beta moves and the KL term counts.
CHUNKABLE = [
    *TINY_TRAIN,
    "model=vae",
    "trainer.max_steps=12",
    "trainer.val_check_interval=4",
    "trainer.log_every_n_steps=4",
    "callbacks.checkpoint.every_n_train_steps=4",
    "callbacks.reconstructions.every_n_steps=4",
    "callbacks.curves.every_n_steps=4",
    "callbacks.health.every_n_steps=4",
]


def _train(data_dir: Path, run_dir: Path, *overrides: str) -> dict:
    return train(compose_config("train", [*CHUNKABLE, f"paths.data_dir={data_dir}", *overrides], run_dir))


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / LAST, weights_only=True)["state_dict"]


def _logged_losses(run_dir: Path) -> dict[int, str]:
    with (run_dir / "logs" / "metrics.csv").open() as rows:
        return {int(row["step"]): row["train/loss"] for row in csv.DictReader(rows) if row.get("train/loss")}


def _assert_same_weights(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == actual.keys() and "objective.beta" in expected
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)


@pytest.mark.e2e
def test_chunks_of_steps_train_bit_for_bit_as_single_steps(tiny_data_dir: Path, tmp_path: Path) -> None:
    """Same batches, same kernels, same order of forward, backward, Adam and GECO update: the same bits."""
    single = _train(tiny_data_dir, tmp_path / "single", "speed.steps_per_call=1")
    chunked = _train(tiny_data_dir, tmp_path / "chunked", "speed.steps_per_call=4")
    assert single["global_step"] == chunked["global_step"] == 12
    _assert_same_weights(_state(tmp_path / "single"), _state(tmp_path / "chunked"))
    single_losses, chunked_losses = _logged_losses(tmp_path / "single"), _logged_losses(tmp_path / "chunked")
    assert sorted(chunked_losses) == [4, 8, 12], "the logger's step counts optimizer steps done"
    assert {step: single_losses[step] for step in chunked_losses} == chunked_losses
    checkpoints = sorted(path.name for path in (tmp_path / "chunked" / "checkpoints").glob("step*.ckpt"))
    assert checkpoints == ["step00000004.ckpt", "step00000008.ckpt", "step00000012.ckpt"]


@pytest.mark.e2e
def test_a_resume_inside_a_chunk_lands_on_the_exact_step(tiny_data_dir: Path, tmp_path: Path) -> None:
    """A run stopped at step 6 (the last chunk cut short by max_steps) resumes with a chunk of two steps, then
    chunks of four, and ends where an uninterrupted run of single steps ends."""
    straight = _train(tiny_data_dir, tmp_path / "straight", "speed.steps_per_call=1")
    _train(tiny_data_dir, tmp_path / "split", "speed.steps_per_call=4", "trainer.max_steps=6")
    assert torch.load(tmp_path / "split" / LAST, weights_only=True)["global_step"] == 6
    resumed = _train(tiny_data_dir, tmp_path / "split", "speed.steps_per_call=4")
    assert resumed["global_step"] == straight["global_step"] == 12
    _assert_same_weights(_state(tmp_path / "straight"), _state(tmp_path / "split"))


class TerminateInsideChunk(pl.Callback):
    """Sends this process SIGTERM before optimizer step ``step`` (inside a chunk of several steps)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.e2e
def test_sigterm_inside_a_chunk_saves_at_its_end_and_the_resumed_run_ends_as_an_uninterrupted_one(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    _train(tiny_data_dir, tmp_path / "straight", "speed.steps_per_call=1")
    stop = [f"+callbacks.stop._target_={__name__}.TerminateInsideChunk", "+callbacks.stop.step=5"]
    stopped = _train(tiny_data_dir, tmp_path / "pieces", "speed.steps_per_call=4", *stop)
    assert stopped["interrupted"] and stopped["global_step"] == 8, "the chunk of steps 4..7 ends before the stop"
    assert _train(tiny_data_dir, tmp_path / "pieces", "speed.steps_per_call=4")["global_step"] == 12
    _assert_same_weights(_state(tmp_path / "straight"), _state(tmp_path / "pieces"))


@pytest.mark.e2e
def test_the_sync_free_check_stops_a_bad_loss_within_its_interval_and_saves_nothing_after_it(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    """GECO set to blow beta up: the loss is finite for two steps, infinite from step 3 on. Checked every 4 steps,
    the run stops at step 4 naming step 3; the checkpoint of step 2 stays, the one due at step 4 is not written."""
    diverging = ["objective.goal=1.0", "objective.step_size=3e-4", "objective.beta_max=inf"]
    diverging += ["callbacks.checkpoint.every_n_train_steps=2"]
    with pytest.raises(LNSError, match="The training loss became inf at step 3") as stopped:
        _train(tiny_data_dir, tmp_path / "run", *diverging, "speed.steps_per_call=2", "check_finite_every_n_steps=4")
    assert f"ckpt_path={tmp_path / 'run' / LAST}" in str(stopped.value)
    assert not (tmp_path / "run" / "checkpoints" / "step00000004.ckpt").exists()
    assert torch.load(tmp_path / "run" / LAST, weights_only=True)["global_step"] == 2


def test_intervals_that_fall_inside_a_chunk_are_refused_by_name() -> None:
    check_steps_per_call(4, {"trainer.log_every_n_steps": 8, "trainer.val_check_interval": 0.5, "x": None})
    with pytest.raises(LNSError, match=r"speed.steps_per_call=4 .* callbacks.health.every_n_steps=10 is not"):
        check_steps_per_call(4, {"trainer.log_every_n_steps": 8, "callbacks.health.every_n_steps": 10})


def test_a_checkpoint_of_automatic_optimization_resumes_at_its_step() -> None:
    counts = {"total": {"ready": 7, "completed": 7}, "current": {"ready": 3, "completed": 3}}
    empty = {"total": {"ready": 0, "completed": 0}, "current": {"ready": 0, "completed": 0}}
    loop = {
        "epoch_loop.automatic_optimization.optim_progress": {"optimizer": {"step": counts}},
        "epoch_loop.manual_optimization.optim_step_progress": empty,
    }
    checkpoint = {"loops": {"fit_loop": loop}}
    adopt_automatic_step_count(checkpoint)
    assert loop["epoch_loop.manual_optimization.optim_step_progress"] == counts
