"""Checks before training starts or resumes: the checkpoint fits the config and no earlier run is overwritten."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from lns.errors import LNSError
from lns.models import is_authors_checkpoint
from lns.runs.checkpoints import read_checkpoint_dict
from lns.runs.run_layout import LAST_CHECKPOINT, RUN_CONFIG

log = logging.getLogger(__name__)

LIGHTNING_KEYS = ("state_dict", "optimizer_states", "global_step", "loops", "pytorch-lightning_version")
_SHOWN = 4
_UNSET = "<unset>"


def describe_training_state(state: Mapping[str, Any]) -> str:
    """What a training state dict holds, e.g. ``a vae with z_dim=15 and objective state (beta, err_ema)``."""
    decoder, head = state.get("model.decoder.0.weight"), state.get("model.encoder.15.weight")
    if decoder is None or head is None:
        model = "no autoencoder weights of the expected layout"
    else:
        z_dim = decoder.shape[1]
        model = f"{'a vae' if head.shape[0] == 2 * z_dim else 'an ae'} with z_dim={z_dim}"
    buffers = sorted(key.removeprefix("objective.") for key in state if key.startswith("objective."))
    return f"{model} and objective state ({', '.join(buffers)})" if buffers else f"{model} and no objective state"


def _shown(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return "; ".join(items[:_SHOWN]) + more


def check_resumable(path: Path, module: nn.Module) -> None:
    """Raise LNSError unless ``path`` is a training checkpoint of this project that fits ``module``."""
    content = read_checkpoint_dict(path)
    if is_authors_checkpoint(content):
        raise LNSError(
            f"{path} was written by the authors' training code; run_train.py resumes only its own checkpoints "
            f"(checkpoints/last.ckpt of a run). Segment it with `python run_segment.py ckpt_path={path} "
            "data=<name>`, or start a new training run."
        )
    missing = [key for key in LIGHTNING_KEYS if key not in content]
    if missing or not isinstance(content["state_dict"], Mapping):
        raise LNSError(
            f"Checkpoint {path} cannot resume training: it lacks {', '.join(missing) or 'a valid state_dict'} "
            "(a weights-only file, or one written by another program or an older version of lns). Resume from "
            "the checkpoints/last.ckpt that run_train.py wrote, or start a new run."
        )
    state, expected = content["state_dict"], module.state_dict()
    problems = [
        *(f"missing {key}" for key in sorted(expected.keys() - state.keys())),
        *(f"unexpected {key}" for key in sorted(state.keys() - expected.keys())),
        *(
            f"{key} is {tuple(state[key].shape)} instead of {tuple(expected[key].shape)}"
            for key in sorted(expected.keys() & state.keys())
            if tuple(state[key].shape) != tuple(expected[key].shape)
        ),
    ]
    if problems and all(p.startswith("missing objective.") for p in problems):
        raise LNSError(
            f"Checkpoint {path} holds no state for the {type(module.objective).__name__} objective "
            f"({_shown(problems)}): it was written by an older version of lns or for another objective. Resume "
            "with the objective the run was trained with (its run_config.yaml), or start a new run."
        )
    if problems:
        raise LNSError(
            f"Checkpoint {path} does not fit the training config: it holds {describe_training_state(state)}, "
            f"the config asks for {describe_training_state(expected)} ({_shown(problems)}). Resume with the "
            "settings the run was trained with (its run_config.yaml: model, objective), or start a new run."
        )
    if "rng_state" not in content:
        log.warning(
            "Checkpoint %s has no rng_state (an older format): training resumes, but the VAE's sampling noise "
            "will not repeat that of an uninterrupted run.",
            path,
        )


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix.removesuffix("."): tree}


def check_run_dir(run_dir: Path, settings: Mapping[str, Any], resume_from: Path | None) -> None:
    """Refuse to start over an earlier run's checkpoints, or to continue its own checkpoint with other settings.

    ``settings`` are what ``run_config.yaml`` will hold; ``resume_from`` the checkpoint training resumes from.
    """
    own = run_dir / LAST_CHECKPOINT
    if not own.is_file():
        return
    if resume_from is None:
        raise LNSError(
            f"{run_dir} already holds the checkpoints of an earlier run ({own}) and auto_resume=false; nothing "
            "was overwritten. Train into a new hydra.run.dir (the default makes one), or set auto_resume=true to "
            "continue that run."
        )
    previous_file = run_dir / RUN_CONFIG
    if Path(resume_from).resolve() != own.resolve() or not previous_file.is_file():
        return
    # Where the data lies (paths.*) and the arithmetic precision (training_precision.*) may change between
    # attempts; what the run learns from may not. A key the run's record lacks is a setting added to lns after the
    # run started (its default keeps the old behaviour).
    previous = _flat(OmegaConf.to_container(OmegaConf.load(previous_file), resolve=True))
    current = _flat(OmegaConf.to_container(OmegaConf.create(dict(settings)), resolve=True))
    changed = [
        f"{key}: {value} -> {current.get(key, _UNSET)}"
        for key, value in sorted(previous.items())
        if not key.startswith(("paths.", "training_precision.")) and current.get(key, _UNSET) != value
    ]
    if changed:
        raise LNSError(
            f"{run_dir} holds a run trained with other settings ({_shown(changed)}); nothing was overwritten. "
            f"Resume it with its own settings ({previous_file}), or continue from its weights with the new "
            f"settings in a new run directory: ckpt_path={own}."
        )
