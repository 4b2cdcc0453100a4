"""Which model to segment: a training run directory, one of our checkpoints, or an authors' checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from lns.checkpoint_file import read_checkpoint_dict
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
    data_dir: Path | None = None
    """The data folder the run was trained on, as its ``run_config.yaml`` recorded it (older runs: None)."""

    @property
    def kind(self) -> str:
        return "vae" if self.model.variational else "ae"


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
    content = read_checkpoint_dict(checkpoint)
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
        data_dir=Path(recorded) if (recorded := OmegaConf.select(run_cfg, "paths.data_dir")) else None,
    )


def _from_authors(
    checkpoint: Path, content: dict[str, Any], z_dim: int | None, variational: bool | None
) -> ModelSource:
    loaded = load_authors_checkpoint(checkpoint, expect_z_dim=z_dim, expect_variational=variational, payload=content)
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
    content = read_checkpoint_dict(checkpoint)
    if is_authors_checkpoint(content):
        model_cfg = cfg.get("model") or {}
        return _from_authors(checkpoint, content, model_cfg.get("z_dim"), model_cfg.get("variational"))
    run_dir = checkpoint.parent.parent
    if (run_dir / RUN_CONFIG).is_file():
        return _from_run(run_dir, checkpoint)
    raise LNSError(
        f"{checkpoint} is neither an authors' checkpoint nor inside a training run directory "
        f"(no {run_dir / RUN_CONFIG}); pass run_dir=<the run that wrote it>."
    )
