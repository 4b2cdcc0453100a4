"""Build the model a config names (``model._target_`` and its arguments), with a clear error for every way it fails."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lns.errors import LNSError
from lns.models.protocol import check_protocol

CUSTOM_HELP = (
    "model=custom needs model._target_=<package.module.Class> (importable from where lns runs: an installed "
    "package or a folder on PYTHONPATH) and the class's arguments as +model.<arg>=<value>."
)


def model_target(config: Mapping[str, Any] | DictConfig) -> str:
    """The ``_target_`` of a model config; a missing one is an :class:`LNSError`."""
    missing = isinstance(config, DictConfig) and OmegaConf.is_missing(config, "_target_")
    target = None if missing else config.get("_target_")
    if not isinstance(target, str) or not target:
        raise LNSError(f"The model config names no class (model._target_ is unset). {CUSTOM_HELP}")
    return target


def model_class(target: str) -> Any:
    """The class (or factory) called ``target``; one that cannot be imported is an :class:`LNSError` naming it."""
    try:
        found = hydra.utils.get_object(target)
    except Exception as error:  # the import runs the user's module, which may raise anything
        cause = error.__cause__ or error
        raise LNSError(
            f"The model class {target} cannot be imported ({type(cause).__name__}: "
            f"{str(cause).splitlines()[0] if str(cause) else ''}). {CUSTOM_HELP}"
        ) from None
    return found


def build_model(config: Mapping[str, Any] | DictConfig) -> nn.Module:
    """Instantiate the model of ``config`` and check that it follows the protocol (``encode`` and ``decode``)."""
    target = model_target(config)
    model_class(target)
    node = config if isinstance(config, DictConfig) else OmegaConf.create(dict(config))
    try:
        model = hydra.utils.instantiate(node)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, LNSError):
            raise cause from None
        detail = str(cause or error).splitlines()[0] if str(cause or error) else type(cause or error).__name__
        raise LNSError(
            f"Building the model {target} failed ({type(cause or error).__name__}: {detail}); check its arguments "
            "(model.<arg>=... to change one, +model.<arg>=... to add one)."
        ) from None
    check_protocol(model)
    return model
