"""Read and write checkpoints in the layout of the authors' training code.

Such a file is a ``torch.save`` dict::

    {"iter": int,
     "model_states": {"net": state_dict},
     "optim_states": {"optim": adam_state_dict},
     "geco_states": None | {"err_ema": tensor, "beta": tensor},
     "flag_dict": {"model": "AE_model" | "BetaVAE_model", "z_dim": int, ...}}

``iter``, ``model_states`` and ``flag_dict`` (with ``model`` and ``z_dim``) are required; ``optim_states`` and
``geco_states`` may be absent. Files are read with ``weights_only=True``, so no pickled code is ever executed.
``flag_dict`` may also hold ``image_size`` and ``channels`` (written for models other than 3x64x64, which the
authors' code does not have); they default to 64 and 3.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lns.errors import LNSError
from lns.models.autoencoder import Autoencoder
from lns.runs.checkpoints import read_checkpoint

MODEL_NAMES = {"AE_model": False, "BetaVAE_model": True}
_DATA_PARALLEL_PREFIX = "module."
_PLAIN_TYPES = (str, int, float, bool, type(None))
_SHOWN = 5


@dataclass
class AuthorsCheckpoint:
    """The contents of an authors' checkpoint, mapped onto our model."""

    model: Autoencoder
    step: int
    optimizer_state: dict | None
    geco_beta: float | None
    geco_err_ema: float | None
    flags: dict


def is_authors_checkpoint(obj: Mapping) -> bool:
    """True for a dict in the authors' layout (it has ``model_states`` and ``flag_dict``)."""
    return isinstance(obj, Mapping) and "model_states" in obj and "flag_dict" in obj


def _model_name(variational: bool) -> str:
    return "BetaVAE_model" if variational else "AE_model"


def _describe(variational: bool, z_dim: int) -> str:
    return f"{'a VAE' if variational else 'an AE'} ({_model_name(variational)}) with z_dim={z_dim}"


def _first(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def _require(mapping: Any, keys: tuple[str, ...], where: str, path: Path) -> None:
    if not isinstance(mapping, Mapping):
        raise LNSError(
            f"Checkpoint {path}: {where} is a {type(mapping).__name__}, expected a dict in the authors' "
            "layout (iter, model_states, optim_states, geco_states, flag_dict)."
        )
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise LNSError(
            f"Checkpoint {path}: {where} lacks the key(s) {', '.join(missing)}; it is not a checkpoint "
            f"written by the authors' training code (found keys: {', '.join(map(str, mapping))})."
        )


def _strip_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    keys = list(state)
    if keys and all(key.startswith(_DATA_PARALLEL_PREFIX) for key in keys):
        return {key[len(_DATA_PARALLEL_PREFIX) :]: value for key, value in state.items()}
    return dict(state)


def _check_state(model: Autoencoder, state: Mapping[str, Any], path: Path) -> None:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} {tuple(state[key].shape) if isinstance(state[key], Tensor) else type(state[key]).__name__} "
        f"(model: {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state and not (isinstance(state[key], Tensor) and state[key].shape == value.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_first(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches {_first(mismatched)}")
    if problems:
        raise LNSError(
            f"Checkpoint {path}: the network weights do not fit {_describe(model.variational, model.z_dim)} "
            f"at {model.image_size}x{model.image_size}: {'; '.join(problems)}. The file's flag_dict and its "
            "weights disagree, or it comes from a different architecture."
        )


def _as_float(value: Any, name: str, path: Path) -> float | None:
    if value is None:
        return None
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    raise LNSError(f"Checkpoint {path}: geco_states['{name}'] is {value!r}, expected a scalar tensor or None.")


def _int_flag(flags: Mapping, key: str, default: int | None, path: Path) -> int:
    value = flags.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LNSError(f"Checkpoint {path}: flag_dict['{key}'] is {value!r}, expected an integer.")
    return value


def load_authors_checkpoint(
    path: str | os.PathLike,
    *,
    expect_z_dim: int | None = None,
    expect_variational: bool | None = None,
    payload: Any = None,
) -> AuthorsCheckpoint:
    """Load an authors' checkpoint onto an ``Autoencoder``; every problem is an ``LNSError`` saying what.

    ``expect_z_dim`` / ``expect_variational`` are what the caller's config asks for; a file holding another
    model is refused. ``payload``: the file's content when the caller has already read it.
    """
    path = Path(path)
    payload = read_checkpoint(path) if payload is None else payload
    _require(payload, ("iter", "model_states", "flag_dict"), "the file", path)
    _require(payload["model_states"], ("net",), "model_states", path)
    _require(payload["flag_dict"], ("model", "z_dim"), "flag_dict", path)
    flags = dict(payload["flag_dict"])

    model_name = flags["model"]
    if model_name not in MODEL_NAMES:
        raise LNSError(
            f"Checkpoint {path}: flag_dict['model'] is {model_name!r}; supported models are {', '.join(MODEL_NAMES)}."
        )
    variational = MODEL_NAMES[model_name]
    z_dim = _int_flag(flags, "z_dim", None, path)
    if (expect_z_dim is not None and expect_z_dim != z_dim) or (
        expect_variational is not None and expect_variational != variational
    ):
        asked_variational = variational if expect_variational is None else expect_variational
        asked_z_dim = z_dim if expect_z_dim is None else expect_z_dim
        raise LNSError(
            f"Checkpoint {path} holds {_describe(variational, z_dim)}, but the config asks for "
            f"{_describe(asked_variational, asked_z_dim)}; set the model config to match the checkpoint or "
            "pick another checkpoint."
        )

    step = payload["iter"]
    if isinstance(step, Tensor) and step.numel() == 1:
        step = int(step)
    if isinstance(step, bool) or not isinstance(step, int):
        raise LNSError(f"Checkpoint {path}: 'iter' is {step!r}, expected an integer step.")

    model = Autoencoder(
        z_dim=z_dim,
        variational=variational,
        channels=_int_flag(flags, "channels", 3, path),
        image_size=_int_flag(flags, "image_size", 64, path),
    )
    net = payload["model_states"]["net"]
    _require(net, (), "model_states['net']", path)
    state = _strip_prefix(net)
    _check_state(model, state, path)
    model.load_state_dict(state)

    optimizer_state = None
    optim_states = payload.get("optim_states")
    if optim_states is not None:
        _require(optim_states, ("optim",), "optim_states", path)
        optimizer_state = optim_states["optim"]
        if optimizer_state is not None:
            _require(optimizer_state, ("state", "param_groups"), "optim_states['optim']", path)
            optimizer_state = dict(optimizer_state)

    geco_beta = geco_err_ema = None
    geco_states = payload.get("geco_states")
    if geco_states is not None:
        _require(geco_states, ("err_ema", "beta"), "geco_states", path)
        geco_beta = _as_float(geco_states["beta"], "beta", path)
        geco_err_ema = _as_float(geco_states["err_ema"], "err_ema", path)

    return AuthorsCheckpoint(
        model=model,
        step=step,
        optimizer_state=optimizer_state,
        geco_beta=geco_beta,
        geco_err_ema=geco_err_ema,
        flags=flags,
    )


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
    elif not isinstance(value, _PLAIN_TYPES):
        raise LNSError(
            f"{where} is a {type(value).__name__}; checkpoint flags must be plain values (str, int, float, "
            "bool, None, lists and dicts of them) so the file loads with weights_only=True."
        )


def _geco_tensor(value: float | Tensor | None) -> Tensor | None:
    if value is None:
        return None
    return torch.as_tensor(value, dtype=torch.float32).detach().cpu().clone().reshape(())


def write_authors_checkpoint(
    path: str | os.PathLike,
    model: Autoencoder,
    *,
    step: int,
    optimizer_state: dict | None = None,
    geco: Mapping[str, float | Tensor | None] | None = None,
    flags: Mapping[str, Any],
) -> None:
    """Write ``model`` (and optionally Adam and GECO state) in the authors' layout, atomically.

    ``geco`` holds ``beta`` and ``err_ema`` (floats or scalar tensors; ``err_ema`` may be None). ``flags``
    is the flag dict; ``model`` and ``z_dim`` (and ``image_size`` / ``channels`` when not 64 / 3) are filled
    in from the model, and a conflicting value given in ``flags`` raises ``LNSError``.
    """
    derived: dict[str, Any] = {"model": _model_name(model.variational), "z_dim": model.z_dim}
    if model.image_size != 64:
        derived["image_size"] = model.image_size
    if model.channels != 3:
        derived["channels"] = model.channels
    conflicts = [
        f"{key}={flags[key]!r} (model: {value!r})"
        for key, value in derived.items()
        if key in flags and flags[key] != value
    ]
    if conflicts:
        raise LNSError(f"The flags given for the checkpoint contradict the model: {', '.join(conflicts)}.")
    flag_dict = {**dict(flags), **derived}
    _check_plain(flag_dict, "flag_dict")

    geco_states = None
    if geco is not None:
        missing = [key for key in ("beta", "err_ema") if key not in geco]
        if missing:
            raise LNSError(f"The GECO state to write lacks {', '.join(missing)}; give both beta and err_ema.")
        geco_states = {"err_ema": _geco_tensor(geco["err_ema"]), "beta": _geco_tensor(geco["beta"])}

    payload = {
        "iter": int(step),
        "model_states": {"net": {key: value.detach().cpu() for key, value in model.state_dict().items()}},
        "optim_states": {"optim": optimizer_state},
        "geco_states": geco_states,
        "flag_dict": flag_dict,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
