"""Look up a layer of a model by the dotted name that ``print(model)`` shows (``encoder.3``, ``decoder.5``)."""

from __future__ import annotations

from torch import nn

from lns.errors import LNSError


def layer_names(model: nn.Module) -> list[str]:
    """Every named sub-module of ``model`` (dotted names, in definition order), the model itself excluded."""
    return [name for name, _ in model.named_modules() if name]


def layer_by_name(model: nn.Module, name: str, *, key: str = "layer") -> nn.Module:
    """The sub-module called ``name``; an unknown name raises :class:`LNSError` listing the valid names.

    ``key`` is the config key the name came from (for example ``method.layer``), so the message says what to fix.
    """
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise LNSError(
            f"{key}={name} is not a layer of the {type(model).__name__}; valid names (as print(model) shows them): "
            f"{', '.join(layer_names(model))}."
        )
    return modules[name]
