"""Failures are loud and early: bad datasets, settings and checkpoints through the real entry points.

The checks run ``run_train.py`` / ``run_segment.py`` in this process with ``runpy`` (exactly what
``python run_train.py ...`` executes, without paying the imports again). Interruption, kills and the other
crash-safety guarantees are in ``test_faults.py``; unit tests of the npz reader, including the hypothesis fuzzing
of malformed arrays, in ``test_npz.py``; segmentation resume in ``test_segment.py``.
"""

from __future__ import annotations

import json
import logging
import runpy
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lns.models import Autoencoder, write_authors_checkpoint
from lns.objectives import GecoObjective
from lns.train import train
from lns.training.module import geco_limit_message
from tests.helpers import LAST, LEAN, REPO, TINY_SEGMENT, TINY_TRAIN, compose_config

# Every test here runs an entry point or a training.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def short_run(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step AE run (checkpoint at step 2) with the settings of :func:`train_args`."""
    run_dir = tmp_path_factory.mktemp("robust_run")
    overrides = [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", *LEAN, "trainer.max_steps=2"]
    train(compose_config("train", overrides, run_dir))
    return run_dir


# ----------------------------------------------------------------------------------------------- helpers


def run_entry_point(script: str, *args: str) -> int:
    """Run ``python <script> args`` in this process; return its exit status (0 when it returns)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    argv = sys.argv
    sys.argv = [script, *args]
    try:
        runpy.run_path(str(REPO / script), run_name="__main__")
    except SystemExit as done:
        return 0 if done.code is None else done.code if isinstance(done.code, int) else 1
    finally:
        sys.argv = argv
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:], root.level = handlers, level
    return 0


def fails_with_one_paragraph(capfd: pytest.CaptureFixture, script: str, *args: str) -> str:
    """Run an entry point that must fail: exit status 1, no traceback; return the error paragraph, unwrapped."""
    code = run_entry_point(script, *args)
    err = capfd.readouterr().err
    assert code == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "error: " in err, err[-3000:]
    paragraph = err.split("error: ", 1)[1].split("\n\n", 1)[0]
    return " ".join(paragraph.split())


def copy_dataset(data_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(data_dir, target)
    return target


def rewrite(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def train_args(data_dir: Path, run_dir: Path, *overrides: str) -> list[str]:
    return [f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", *TINY_TRAIN, *LEAN, *overrides]


# ----------------------------------------------------------------------------------------------- bad datasets


def _images(folder: Path, split: str) -> np.ndarray:
    with np.load(folder / f"{split}.npz") as arrays:
        return arrays["images"]


def _masks(folder: Path) -> np.ndarray:
    with np.load(folder / "test.npz") as arrays:
        return arrays["masks"]


# Each case damages one split of a copy of the tiny dataset; train splits are read by run_train.py, test splits
# by run_segment.py. The expected fragments name the problem; every dataset message also names the fix.
DATASET_CASES: dict[str, tuple[str, Callable[[Path], None], tuple[str, ...]]] = {
    "file_missing": ("train", lambda f: (f / "train.npz").unlink(), ("train.npz is missing",)),
    "truncated": (
        "train",
        lambda f: (f / "train.npz").write_bytes((f / "train.npz").read_bytes()[:3000]),
        ("not a readable .npz archive", "truncated or corrupt"),
    ),
    "wrong_keys": ("train", lambda f: rewrite(f / "train.npz", pictures=_images(f, "train")), ("`images` is missing",)),
    "channels_last": (
        "train",
        lambda f: rewrite(f / "train.npz", images=_images(f, "train").transpose(0, 2, 3, 1)),
        ("channels-last shape (32, 64, 64, 3)", "images.transpose(0, 3, 1, 2)"),
    ),
    "one_channel": (
        "train",
        lambda f: rewrite(f / "train.npz", images=_images(f, "train")[:, :1]),
        ("one channel", "np.repeat(images, 3, axis=1)"),
    ),
    "65x65": ("train", lambda f: rewrite(f / "train.npz", images=np.zeros((4, 3, 65, 65), np.float32)), ("65x65",)),
    "wrong_dtype": (
        "train",
        lambda f: rewrite(f / "train.npz", images=_images(f, "train").astype(str)),
        ("non-numeric dtype",),
    ),
    "outside_0_1": (
        "train",
        lambda f: rewrite(f / "train.npz", images=_images(f, "train") * 255),
        ("outside [0, 1]", "Divide 8-bit images by 255"),
    ),
    "nan_inf": (
        "valid",
        lambda f: rewrite(f / "valid.npz", images=np.where(_images(f, "valid") > 0.5, np.nan, -np.inf)),
        ("NaN or infinite",),
    ),
    "empty_train": ("train", lambda f: rewrite(f / "train.npz", images=_images(f, "train")[:0]), ("split is empty",)),
    "masks_shape": (
        "test",
        lambda f: rewrite(f / "test.npz", images=_images(f, "test"), masks=_masks(f)[:, :32]),
        ("`masks` has shape (6, 32, 64) but the images need (N, H, W) = (6, 64, 64)",),
    ),
    "masks_missing": ("test", lambda f: rewrite(f / "test.npz", images=_images(f, "test")), ("`masks` is missing",)),
    "empty_test": (
        "test",
        lambda f: rewrite(f / "test.npz", images=_images(f, "test")[:0], masks=_masks(f)[:0]),
        ("split is empty",),
    ),
}


@pytest.mark.parametrize("case", sorted(DATASET_CASES))
def test_bad_dataset_is_one_paragraph_naming_problem_and_fix(
    case: str, tiny_data_dir: Path, short_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    split, damage, fragments = DATASET_CASES[case]
    data_dir = copy_dataset(tiny_data_dir, tmp_path)
    damage(data_dir / "dKanizsa")
    if split == "test":
        args = [f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'seg'}", f"run_dir={short_run}"]
        message = fails_with_one_paragraph(capfd, "run_segment.py", *args, "test_num=null")
    else:
        message = fails_with_one_paragraph(capfd, "run_train.py", *train_args(data_dir, tmp_path / "run"))
    for fragment in fragments:
        assert fragment in message
    assert f"{split}.npz" in message
    assert f"python -m data_gen dataset=kanizsa paths.data_dir={data_dir}" in message


def test_missing_dataset_folder_for_segmentation_names_the_generate_command(
    short_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    args = [f"paths.data_dir={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'seg'}", f"run_dir={short_run}"]
    message = fails_with_one_paragraph(capfd, "run_segment.py", *args)
    assert "does not exist" in message
    assert f"python -m data_gen dataset=kanizsa paths.data_dir={tmp_path / 'nowhere'} image_size=64" in message


# ----------------------------------------------------------------------------------------------- bad settings


@dataclass(frozen=True)
class Paths:
    data: Path
    run: Path
    out: Path


def _segment(paths: Paths, *overrides: str) -> tuple[str, list[str]]:
    args = [f"paths.data_dir={paths.data}", f"hydra.run.dir={paths.out}", f"run_dir={paths.run}", *TINY_SEGMENT]
    return "run_segment.py", [*args, *overrides]


def _train(paths: Paths, *overrides: str) -> tuple[str, list[str]]:
    return "run_train.py", train_args(paths.data, paths.out, *overrides)


SETTING_CASES: dict[str, tuple[Callable[[Paths], tuple[str, list[str]]], tuple[str, ...]]] = {
    "dataset_name": (
        lambda p: _train(p, "data.name=kanisza"),
        ("data.name='kanisza' is not one of the choices", "Did you mean kanizsa?", "closure, continuity"),
    ),
    "noise_std_negative": (
        lambda p: _segment(p, "noise.std=-0.001"),
        ("noise.std=-0.001 is out of range", "takes a number > 0"),
    ),
    "n_clusters_above_pixels": (
        lambda p: _segment(p, "n_clusters=5000"),
        ("n_clusters=5000 is more than the 4096 pixels",),
    ),
    "segment_batch_zero": (
        lambda p: _segment(p, "batch_size=0"),
        ("batch_size=0 is out of range", "whole number ≥ 1"),
    ),
    "batch_above_dataset": (
        lambda p: _train(p, "data.batch_size=33"),
        ("data.batch_size=33", "larger than the 32 training images", "Lower data.batch_size"),
    ),
    "train_batch_zero": (
        lambda p: _train(p, "data.batch_size=0"),
        ("data.batch_size=0 is out of range", "≥ 1"),
    ),
    "data_image_size": (
        lambda p: _train(p, "data.image_size=65"),
        ("data.image_size=65 is not one", "64, 256"),
    ),
    "model_image_size": (
        lambda p: _train(p, "model.image_size=128"),
        ("model.image_size=128 is not one of the choices: model.image_size takes one of 64, 256",),
    ),
    "model_and_data_sizes_differ": (
        lambda p: _train(p, "model.image_size=256"),
        ("expects images of shape (B, 3, 256, 256), got (8, 3, 64, 64)",),
    ),
    "learning_rate": (
        lambda p: _train(p, "optimizer.lr=-1"),
        ("optimizer.lr=-1 is out of range", "> 0"),
    ),
    "geco_settings": (
        lambda p: _train(p, "objective.alpha=1.5"),
        ("objective.alpha=1.5 is out of range", "≥ 0 and < 1"),
    ),
}


@pytest.mark.parametrize("case", sorted(SETTING_CASES))
def test_bad_setting_is_one_paragraph(
    case: str, tiny_data_dir: Path, short_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    build, fragments = SETTING_CASES[case]
    script, args = build(Paths(tiny_data_dir, short_run, tmp_path / "out"))
    message = fails_with_one_paragraph(capfd, script, *args)
    for fragment in fragments:
        assert fragment in message
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(
    ("script", "override", "options"),
    [
        ("run_train.py", "model=transformer", ["ae", "vae"]),
        ("run_train.py", "objective=elbo", ["ae", "beta", "capacity", "geco"]),
        ("run_train.py", "data=kanisza", ["closure", "kanizsa", "proximity"]),
        ("run_segment.py", "clustering=dbscan", ["kmeans", "ward", "ward_lean"]),
    ],
)
def test_unknown_config_option_lists_the_valid_ones(
    script: str, override: str, options: list[str], tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Hydra's own message for an unknown group option: no traceback, the available options listed."""
    code = run_entry_point(script, override, f"hydra.run.dir={tmp_path}")
    err = capfd.readouterr().err
    group, name = override.split("=")
    assert code == 1
    assert "Traceback" not in err
    assert f"Could not find '{group}/{name}'" in err
    listed = err.split(f"Available options in '{group}':", 1)[1].split("Config search path", 1)[0].split()
    assert set(options) <= set(listed)


# ----------------------------------------------------------------------------------------------- checkpoints


def _checkpoint(short_run: Path) -> dict[str, Any]:
    return torch.load(short_run / LAST, map_location="cpu", weights_only=True)


def _without(content: dict[str, Any], *, keys: tuple[str, ...] = (), prefix: str | None = None) -> dict:
    changed = {key: value for key, value in content.items() if key not in keys}
    if prefix is not None:
        changed["state_dict"] = {k: v for k, v in content["state_dict"].items() if not k.startswith(prefix)}
    return changed


def _authors(path: Path) -> None:
    write_authors_checkpoint(path, Autoencoder(z_dim=4), step=3, flags={"model": "AE_model", "z_dim": 4})


# name -> (how to write the checkpoint from the trained run's last.ckpt, training overrides, message fragments)
CHECKPOINT_CASES: dict[str, tuple[Callable[[Path, Path], None], tuple[str, ...], tuple[str, ...]]] = {
    "missing": (lambda run, path: None, (), ("does not exist",)),
    "truncated": (
        lambda run, path: path.write_bytes((run / LAST).read_bytes()[:20_000]),
        (),
        ("cannot be read", "truncated"),
    ),
    "not_a_checkpoint": (
        lambda run, path: path.write_text(json.dumps({"ari": 0.5})),
        (),
        ("cannot be read", "not a PyTorch file of tensors"),
    ),
    "other_z_dim": (
        lambda run, path: shutil.copy(run / LAST, path),
        ("model.z_dim=5",),
        ("holds an ae with z_dim=4", "asks for an ae with z_dim=5", "model.decoder.0.weight is (128, 4)"),
    ),
    "other_model": (
        lambda run, path: shutil.copy(run / LAST, path),
        ("model=vae",),
        ("holds an ae with z_dim=4", "asks for a vae with z_dim=4"),
    ),
    "other_objective": (
        lambda run, path: shutil.copy(run / LAST, path),
        ("objective=beta",),
        ("objective state (beta, err_ema, initialised)", "no objective state", "unexpected objective.beta"),
    ),
    "older_format_no_objective_state": (
        lambda run, path: torch.save(_without(_checkpoint(run), prefix="objective."), path),
        (),
        ("no state for the GecoObjective objective", "missing objective.beta", "older version"),
    ),
    "weights_only": (
        lambda run, path: torch.save(_without(_checkpoint(run), keys=("optimizer_states", "loops")), path),
        (),
        ("cannot resume training", "lacks optimizer_states, loops"),
    ),
    "authors_checkpoint": (
        lambda run, path: _authors(path),
        (),
        ("written by the authors' training code", "python run_segment.py ckpt_path="),
    ),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_unusable_checkpoint_is_explained_before_training(
    case: str, tiny_data_dir: Path, short_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    write, overrides, fragments = CHECKPOINT_CASES[case]
    checkpoint = tmp_path / "given.ckpt"
    write(short_run, checkpoint)
    run_dir = tmp_path / "run"
    args = train_args(tiny_data_dir, run_dir, f"ckpt_path={checkpoint}", *overrides)
    message = fails_with_one_paragraph(capfd, "run_train.py", *args)
    for fragment in fragments:
        assert fragment in message
    assert not (run_dir / "run_config.yaml").exists(), "a refused run must not write anything"


def test_segmentation_explains_missing_and_truncated_checkpoints(
    tiny_data_dir: Path, short_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes((short_run / LAST).read_bytes()[:20_000])
    paths = Paths(tiny_data_dir, short_run, tmp_path / "out")
    script, args = _segment(paths, f"ckpt_path={truncated}")
    assert "cannot be read" in fails_with_one_paragraph(capfd, script, *args)
    script, args = _segment(paths, f"ckpt_path={tmp_path / 'none.ckpt'}")
    missing = fails_with_one_paragraph(capfd, script, *args)
    assert "none.ckpt' does not exist: ckpt_path takes an existing file" in missing


def test_checkpoint_without_rng_state_resumes_with_a_warning(
    tiny_data_dir: Path, short_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = tmp_path / "old.ckpt"
    torch.save(_without(_checkpoint(short_run), keys=("rng_state",)), checkpoint)
    overrides = [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", *LEAN, "trainer.max_steps=3"]
    cfg = compose_config("train", [*overrides, f"ckpt_path={checkpoint}"], tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="lns.training.safety.resume"):
        result = train(cfg)
    assert result["global_step"] == 3
    assert any("no rng_state (an older format)" in record.getMessage() for record in caplog.records)


# ----------------------------------------------------------------------------------------------- training


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tiny_data_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """GECO set to blow beta up: finite for two steps (checkpoint at step 2), inf at step 3."""
    run_dir = tmp_path / "run"
    diverging = ["model=vae", "objective.goal=1.0", "objective.step_size=3e-4", "objective.beta_max=inf"]
    handler_before = signal.getsignal(signal.SIGTERM)
    first = fails_with_one_paragraph(capfd, "run_train.py", *train_args(tiny_data_dir, run_dir, *diverging))
    assert "The training loss became" in first and "at step 3" in first
    assert "Nothing was saved over the last good checkpoint" in first
    assert f"ckpt_path={run_dir / LAST}" in first
    assert torch.load(run_dir / LAST, weights_only=True)["global_step"] == 2
    assert not (run_dir / "checkpoints" / "step00000004.ckpt").exists()
    assert signal.getsignal(signal.SIGTERM) == handler_before, "the failed run kept its signal handlers"

    good = (run_dir / LAST).read_bytes()
    again = fails_with_one_paragraph(capfd, "run_train.py", *train_args(tiny_data_dir, run_dir, *diverging))
    assert "at step 3" in again, "the resumed run must fail at the same step"
    assert (run_dir / LAST).read_bytes() == good


def test_geco_beta_at_its_limit_is_reported_once(
    tiny_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", *LEAN, "model=vae"]
    limited = ["objective.beta_min=1.0", "trainer.max_steps=2", "data.batch_size=2"]
    cfg = compose_config("train", [*overrides, *limited], tmp_path)
    with caplog.at_level(logging.WARNING, logger="lns.training.module"):
        train(cfg)
    reports = [r.getMessage() for r in caplog.records if "GECO beta reached" in r.getMessage()]
    assert reports == [geco_limit_message(GecoObjective(beta_min=1.0), 1)], (
        "one report, at the first step beta sits at beta_min"
    )
    assert "lower limit objective.beta_min=1 at step 1" in reports[0]

    geco = GecoObjective(beta_max=2.0)
    geco.set_state(2.0, 0.0)
    assert bool(geco.beta_at_limit())
    assert "upper limit objective.beta_max=2 at step 7" in geco_limit_message(geco, 7)


# ----------------------------------------------------------------------------------------------- no overwriting


def test_a_new_run_never_overwrites_an_earlier_one(
    tiny_data_dir: Path, short_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "earlier"
    shutil.copytree(short_run, run_dir)
    files = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}

    fresh = fails_with_one_paragraph(capfd, "run_train.py", *train_args(tiny_data_dir, run_dir, "auto_resume=false"))
    assert "already holds the checkpoints of an earlier run" in fresh and "nothing was overwritten" in fresh

    other = fails_with_one_paragraph(capfd, "run_train.py", *train_args(tiny_data_dir, run_dir, "optimizer.lr=1e-4"))
    assert "other settings (optimizer.lr: 5e-05 -> 0.0001)" in other
    assert f"ckpt_path={run_dir / LAST}" in other

    for path, content in files.items():
        assert path.read_bytes() == content, f"{path} was overwritten"
