"""Which model to segment: a training run directory, one of our checkpoints, or an authors' checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lns.data.catalog import DATASET_FOLDERS
from lns.errors import LNSError
from lns.models import Autoencoder, build_model, is_authors_checkpoint, load_authors_checkpoint
from lns.runs.checkpoints import read_checkpoint_dict
from lns.runs.run_layout import CHECKPOINT_RUN_CONFIG, LAST_CHECKPOINT, RUN_CONFIG, training_run_config
from lns.runs.training_record import training_record


@dataclass(frozen=True)
class ModelSource:
    """A loaded model (any model with ``encode`` and ``decode``) and what is known about how it was trained."""

    model: nn.Module
    checkpoint: Path
    dataset: str | None
    image_size: int
    train_seed: int | None
    run_dir: Path | None
    data_dir: Path | None = None
    """The data folder the run was trained on, as its ``run_config.yaml`` recorded it (older runs: None)."""
    model_config: dict[str, Any] | None = None
    """The model's class (``_target_``) and arguments, as the run recorded them (authors' checkpoints: None)."""
    training_precision: dict[str, str] | None = None
    """The precision the run asked for and trained in, as its settings recorded them (older runs: None)."""
    training: dict[str, Any] | None = None
    """Steps, learning rate, batch size and objective of the run (:func:`~lns.runs.training_record.training_record`;
    authors' checkpoints: None)."""

    @property
    def kind(self) -> str:
        """``ae`` or ``vae`` for lns's autoencoders, otherwise the model's class name."""
        if isinstance(self.model, Autoencoder):
            return "vae" if self.model.variational else "ae"
        return type(self.model).__name__

    @property
    def z_dim(self) -> int | None:
        """The latent size of lns's autoencoders (None for other models)."""
        return self.model.z_dim if isinstance(self.model, Autoencoder) else None


def _describe(state: dict[str, torch.Tensor]) -> str:
    weight = state.get("decoder.0.weight")
    head = state.get("encoder.15.weight")
    if weight is None or head is None:
        return "no autoencoder weights of the expected layout"
    z_dim = weight.shape[1]
    kind = "vae" if head.shape[0] == 2 * z_dim else "ae"
    return f"a {kind} with z_dim={z_dim}"


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` into ``model`` or explain which model the checkpoint holds and which the config asks for."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        if not isinstance(model, Autoencoder):
            raise LNSError(
                f"Checkpoint {path} does not fit the model {type(model).__name__} built from the run's config "
                f"({str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else error}). The "
                "checkpoint comes from another model or other arguments: segment it with the run that wrote it."
            ) from error
        asked = f"a {'vae' if model.variational else 'ae'} with z_dim={model.z_dim}, image_size={model.image_size}"
        raise LNSError(
            f"Checkpoint {path} does not fit the model config: it holds {_describe(state)}, the config asks for "
            f"{asked} ({str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else error}). "
            "Segment with the run's own config (run_dir=...) or set model=... model.z_dim=... to match."
        ) from error


def _from_run(run_dir: Path, checkpoint: Path) -> ModelSource:
    run_cfg = OmegaConf.load(training_run_config(run_dir))
    return _from_settings(run_cfg, checkpoint, read_checkpoint_dict(checkpoint), run_dir)


def _from_settings(run_cfg: DictConfig, checkpoint: Path, content: dict[str, Any], run_dir: Path | None) -> ModelSource:
    """The model of a run's settings (``run_config.yaml``'s content) with the weights of a Lightning checkpoint."""
    model = build_model(run_cfg.model)
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
        model_config=OmegaConf.to_container(run_cfg.model, resolve=True),
        training_precision=(
            OmegaConf.to_container(run_cfg.training_precision) if "training_precision" in run_cfg else None
        ),
        training=training_record(OmegaConf.to_container(run_cfg, resolve=True), run_dir, content.get("global_step")),
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


def load_source(
    run_dir: Path | None,
    ckpt_path: Path | None,
    *,
    z_dim: int | None = None,
    variational: bool | None = None,
) -> ModelSource:
    """The model of a training run directory and/or a checkpoint file: ours (rebuilt from the run's settings, which
    the run directory or the checkpoint itself records) or the authors' (``z_dim`` / ``variational``: what the
    caller expects of such a file, None to accept what it holds)."""
    if run_dir:
        return _from_run(Path(run_dir), Path(ckpt_path) if ckpt_path else Path(run_dir) / LAST_CHECKPOINT)
    if not ckpt_path:
        raise LNSError(
            "Nothing to segment: pass run_dir=<training run directory> (as printed by run_train.py) or "
            "ckpt_path=<checkpoint file> (ours, or one written by the authors' code, with data=<name>)."
        )
    checkpoint = Path(ckpt_path)
    content = read_checkpoint_dict(checkpoint)
    if is_authors_checkpoint(content):
        return _from_authors(checkpoint, content, z_dim, variational)
    owner = checkpoint.parent.parent
    if (owner / RUN_CONFIG).is_file():
        return _from_run(owner, checkpoint)
    if isinstance(content.get(CHECKPOINT_RUN_CONFIG), dict):
        return _from_settings(OmegaConf.create(content[CHECKPOINT_RUN_CONFIG]), checkpoint, content, None)
    raise LNSError(
        f"{checkpoint} is neither an authors' checkpoint nor inside a training run directory "
        f"(no {owner / RUN_CONFIG}), and it does not record its run's settings (checkpoints of older versions of "
        "lns); pass run_dir=<the run that wrote it>."
    )
