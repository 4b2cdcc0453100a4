"""Every value of a composed config checked against :mod:`lns.cli.keys` before any work starts: a wrong type, a value
out of range, a path of the wrong kind, a key that is no setting, a value left unset, each refused with one
paragraph naming the key, the value, what the key takes and an example."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lns.cli.keys import COMMANDS, KEYS, Key, find_key
from lns.cli.rules import Choice, Rule
from lns.errors import LNSError

SKIPPED = ("hydra",)
"""Top-level nodes that are not lns's to check (Hydra's own settings)."""
SHOWN_CHARACTERS = 80
OWN_TARGETS = "lns."


def _shown(value: Any) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 3] + "..."


def _leaves(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, DictConfig]]:
    """(dotted path, parent node) of every leaf under ``node``; lists are leaves."""
    for name in node:
        path = f"{prefix}{name}"
        child = node._get_node(name)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_interpolation():
            yield from _leaves(child, path + ".")
        else:
            yield path, node


def _foreign_target(cfg: DictConfig, path: str) -> bool:
    """Whether a node above ``path`` names a ``_target_`` that is not lns's own (its keys are the target's)."""
    parts = path.split(".")
    for end in range(len(parts) - 1, 0, -1):
        target = OmegaConf.select(cfg, ".".join([*parts[:end], "_target_"]), throw_on_resolution_failure=False)
        if isinstance(target, str):
            return not target.startswith(OWN_TARGETS)
    return False


def _unknown(command: str, path: str) -> LNSError:
    names = [key.path for key in KEYS[command]]
    close = difflib.get_close_matches(path, names, n=3, cutoff=0.6)
    suggestion = f" Did you mean {' or '.join(close)}?" if close else ""
    return LNSError(
        f"{path} is no setting of {COMMANDS[command]}.{suggestion} The keys and what they take are listed in "
        "docs/configuration.md (Allowed values); a key added with + must be one of them, or an argument of a "
        "_target_ class that is not lns's own."
    )


def _suggestion(rule: Rule, value: Any) -> str:
    """ " Did you mean ...?" for text close to one of a choice's options (a misspelt dataset name)."""
    if not isinstance(rule, Choice) or not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(choice) for choice in rule.choices], n=2, cutoff=0.6)
    return f" Did you mean {' or '.join(close)}?" if close else ""


def refusal(key: Key, path: str, value: Any, problem: str) -> LNSError:
    """The one-paragraph refusal of ``value`` for ``path`` (described by ``key``)."""
    return LNSError(
        f"{path}={_shown(value)} {problem}: {path} takes {key.allowed()}.{_suggestion(key.rule, value)} "
        f"Example: {path}={key.example}."
    )


class _Unresolved:
    """An interpolation of the config's own that cannot be resolved here (e.g. ``${data.name}`` where the dataset
    comes from the run): the code that uses it resolves it, not this check."""


UNRESOLVED = _Unresolved()


def _value(cfg: DictConfig, path: str) -> Any:
    try:
        value = OmegaConf.select(cfg, path, throw_on_missing=True)
    except OmegaConfBaseException:
        return UNRESOLVED
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def check_values(command: str, cfg: DictConfig) -> None:
    """Refuse the first value of ``cfg`` that breaks its key's rule, or a key that is no setting of ``command``
    (``train``, ``segment`` or ``generate``); see the module docstring."""
    for path, parent in _leaves(cfg):
        if path.split(".", 1)[0] in SKIPPED:
            continue
        name = path.rsplit(".", 1)[-1]
        key = find_key(command, path)
        if key is None:
            if _foreign_target(cfg, path) or parent._get_node(name)._is_interpolation():
                continue
            raise _unknown(command, path)
        if OmegaConf.is_missing(parent, name):
            raise LNSError(f"{path} has no value (??? in the config); set it: {path}={key.example}.")
        value = _value(cfg, path)
        if value is UNRESOLVED:
            continue
        if value is None:
            if not key.nullable:
                raise refusal(key, path, value, "is not allowed")
            continue
        problem = key.rule.problem(value)
        if problem is not None:
            raise refusal(key, path, value, problem)
