"""Which model to segment: a training run directory, one of our checkpoints, or an authors' checkpoint."""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from lns.data.catalog import DATASET_FOLDERS
from lns.errors import LNSError
from lns.models import Autoencoder, is_authors_checkpoint, load_authors_checkpoint
from lns.run_layout import LAST_CHECKPOINT, RUN_CONFIG


@dataclass(frozen=True)
class ModelSource:
    """A loaded model and what is known about how it was trained."""

    model: Autoencoder
    checkpoint: Path
    dataset: str | None
    image_size: int
    train_seed: int | None
    run_dir: Path | None

    @property
    def kind(self) -> str:
        return "vae" if self.model.variational else "ae"


def read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``; every failure becomes an :class:`LNSError` naming the file."""
    if not path.is_file():
        raise LNSError(f"Checkpoint {path} does not exist. Pass run_dir=<training run> or ckpt_path=<file>.")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError) as error:
        detail = (
            "not a PyTorch file of tensors; other pickled objects are never loaded"
            if isinstance(error, pickle.UnpicklingError)
            else f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        )
        raise LNSError(
            f"Checkpoint {path} cannot be read ({detail}). "
            "It may be truncated or not a PyTorch checkpoint; use checkpoints/last.ckpt or an earlier "
            "periodic checkpoint of the run."
        ) from error
    if not isinstance(content, dict):
        raise LNSError(f"Checkpoint {path} holds a {type(content).__name__}, not a checkpoint dictionary.")
    return content


def _describe(state: dict[str, torch.Tensor]) -> str:
    weight = state.get("decoder.0.weight")
    head = state.get("encoder.15.weight")
    if weight is None or head is None:
        return "no autoencoder weights of the expected layout"
    z_dim = weight.shape[1]
    kind = "vae" if head.shape[0] == 2 * z_dim else "ae"
    return f"a {kind} with z_dim={z_dim}"


def load_weights(model: Autoencoder, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` into ``model`` or explain which model the checkpoint holds and which the config asks for."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        asked = f"a {'vae' if model.variational else 'ae'} with z_dim={model.z_dim}, image_size={model.image_size}"
        raise LNSError(
            f"Checkpoint {path} does not fit the model config: it holds {_describe(state)}, the config asks for "
            f"{asked} ({str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else error}). "
            "Segment with the run's own config (run_dir=...) or set model=... model.z_dim=... to match."
        ) from error


def _from_run(run_dir: Path, checkpoint: Path) -> ModelSource:
    config_file = run_dir / RUN_CONFIG
    if not config_file.is_file():
        raise LNSError(
            f"{run_dir} is not a training run directory: {config_file} is missing. Pass the directory that "
            "run_train.py printed, or ckpt_path=<file> with data=<name>."
        )
    run_cfg = OmegaConf.load(config_file)
    model = hydra.utils.instantiate(run_cfg.model)
    content = read_checkpoint(checkpoint)
    if "state_dict" not in content:
        raise LNSError(f"{checkpoint} is not a Lightning checkpoint of this project (no 'state_dict').")
    state = {k.removeprefix("model."): v for k, v in content["state_dict"].items() if k.startswith("model.")}
    load_weights(model, state, checkpoint)
    return ModelSource(
        model=model,
        checkpoint=checkpoint,
        dataset=run_cfg.data.name,
        image_size=int(run_cfg.data.image_size),
        train_seed=run_cfg.get("seed"),
        run_dir=run_dir,
    )


def _from_authors(checkpoint: Path, z_dim: int | None, variational: bool | None) -> ModelSource:
    loaded = load_authors_checkpoint(checkpoint, expect_z_dim=z_dim, expect_variational=variational)
    folders = {folder: name for name, folder in DATASET_FOLDERS.items()}
    dataset = folders.get(str(loaded.flags.get("dataset", "")).removesuffix("_256"))
    return ModelSource(
        model=loaded.model,
        checkpoint=checkpoint,
        dataset=dataset,
        image_size=loaded.model.image_size,
        train_seed=loaded.flags.get("seed"),
        run_dir=None,
    )


def resolve_source(cfg: DictConfig) -> ModelSource:
    """The model named by ``run_dir`` and/or ``ckpt_path`` (and ``model`` overrides for authors' files)."""
    if cfg.run_dir:
        run_dir = Path(cfg.run_dir)
        checkpoint = Path(cfg.ckpt_path) if cfg.ckpt_path else run_dir / LAST_CHECKPOINT
        return _from_run(run_dir, checkpoint)
    if not cfg.ckpt_path:
        raise LNSError(
            "Nothing to segment: pass run_dir=<training run directory> (as printed by run_train.py) or "
            "ckpt_path=<checkpoint file> (ours, or one written by the authors' code, with data=<name>)."
        )
    checkpoint = Path(cfg.ckpt_path)
    content = read_checkpoint(checkpoint)
    if is_authors_checkpoint(content):
        model_cfg = cfg.get("model") or {}
        return _from_authors(checkpoint, model_cfg.get("z_dim"), model_cfg.get("variational"))
    run_dir = checkpoint.parent.parent
    if (run_dir / RUN_CONFIG).is_file():
        return _from_run(run_dir, checkpoint)
    raise LNSError(
        f"{checkpoint} is neither an authors' checkpoint nor inside a training run directory "
        f"(no {run_dir / RUN_CONFIG}); pass run_dir=<the run that wrote it>."
    )
