"""What a config value may be: a whole number in a range, a number, a flag, one of some choices, text, a path of a
given kind, a list, or one of several such. Each rule checks a value and describes itself in words, for the
refusal and for the configuration reference (the same words in both)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUT_OF_RANGE = "is out of range"


class Rule:
    """A kind of value. ``problem`` says what is wrong with a value (None: nothing); ``allowed`` says in words what
    may be given."""

    def problem(self, value: Any) -> str | None:
        raise NotImplementedError

    def allowed(self) -> str:
        raise NotImplementedError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounds(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '≥'} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '≤'} {high:g}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Whole(Rule):
    """An integer from ``low`` to ``high`` (either end open when None); ``1.5`` or ``2.0`` is no whole number."""

    low: int | None = None
    high: int | None = None

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return "is not a whole number"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return OUT_OF_RANGE
        return None

    def allowed(self) -> str:
        bounds = _bounds(self.low, self.high)
        return f"a whole number {bounds}" if bounds else "a whole number"


@dataclass(frozen=True)
class Number(Rule):
    """A finite real number in a range (an integer is a number too)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def problem(self, value: Any) -> str | None:
        if not _is_number(value) or not math.isfinite(value):
            return "is not a finite number"
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return OUT_OF_RANGE if too_low or too_high else None

    def allowed(self) -> str:
        bounds = _bounds(self.low, self.high, self.low_open, self.high_open)
        return f"a number {bounds}" if bounds else "a finite number"


@dataclass(frozen=True)
class Flag(Rule):
    """``true`` or ``false``."""

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else "is not true or false"

    def allowed(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Choice(Rule):
    """One of ``choices`` (compared as given: ``64`` is not ``"64"``)."""

    choices: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        matches = any(type(value) is type(choice) and value == choice for choice in self.choices)
        return None if matches else "is not one of the choices"

    def allowed(self) -> str:
        return "one of " + ", ".join(str(choice) for choice in self.choices)


@dataclass(frozen=True)
class Text(Rule):
    """A string of at most ``max_length`` printable characters (``empty``: may be ``""``)."""

    empty: bool = False
    max_length: int = 200

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return "is not text"
        if not value and not self.empty:
            return "is empty"
        if len(value) > self.max_length:
            return f"is longer than {self.max_length} characters"
        if not value.isprintable():
            return "holds characters that cannot be printed (a line break, a tab, a control character)"
        return None

    def allowed(self) -> str:
        return "text" if self.empty else "non-empty text"


@dataclass(frozen=True)
class Name(Rule):
    """A Python dotted name (``pytorch_lightning.Trainer``, ``mypackage.MyModel``): what ``_target_`` holds."""

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value or not all(part.isidentifier() for part in value.split(".")):
            return "is not a dotted Python name"
        return None

    def allowed(self) -> str:
        return "a dotted Python name (package.module.Class)"


PATH_KINDS = ("folder", "file", "new folder")


@dataclass(frozen=True)
class PathOf(Rule):
    """A path of one ``kind``: an existing, readable ``folder`` or ``file``, or a ``new folder``: one that exists and
    is writable, or can be made in the nearest existing folder above it. ``may_be_missing``: a folder or file that
    does not exist passes (a later check explains what belongs there), one of the wrong kind does not."""

    kind: str
    may_be_missing: bool = False

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return "is not a path"
        if not value.isprintable() or "\x00" in value or len(value) > os.pathconf("/", "PC_PATH_MAX"):
            return "is not a usable path"
        path = Path(value).expanduser()
        if self.kind == "new folder":
            return _writable_folder_problem(path)
        if not path.exists():
            return None if self.may_be_missing else "does not exist"
        if self.kind == "folder" and not path.is_dir():
            return "is a file, not a folder"
        if self.kind == "file" and not path.is_file():
            return "is a folder, not a file" if path.is_dir() else "is not a regular file"
        if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
            return "cannot be read (no permission)"
        return None

    def allowed(self) -> str:
        if self.may_be_missing:
            return f"the path of a {self.kind}"
        return {
            "folder": "an existing folder",
            "file": "an existing file",
            "new folder": "a folder that exists and is writable, or can be created",
        }[self.kind]


def _writable_folder_problem(path: Path) -> str | None:
    if path.exists():
        if not path.is_dir():
            return "is a file, not a folder"
        return None if os.access(path, os.W_OK | os.X_OK) else "is not writable (no permission)"
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created: {parent} is a file"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"cannot be created: {parent} is not writable"


@dataclass(frozen=True)
class ListOf(Rule):
    """A list whose items follow ``item``; ``length``: exactly that many items."""

    item: Rule
    length: int | None = None

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, Sequence) or isinstance(value, str):
            return "is not a list"
        if self.length is not None and len(value) != self.length:
            return f"does not have {self.length} items"
        for position, entry in enumerate(value):
            if (problem := self.item.problem(entry)) is not None:
                return f"has an item ({entry!r}, position {position}) that {problem}"
        return None

    def allowed(self) -> str:
        count = f"{self.length} " if self.length is not None else ""
        return f"a list of {count}items, each {self.item.allowed()}"


@dataclass(frozen=True)
class AnyOf(Rule):
    """A value that follows one of ``rules``."""

    rules: tuple[Rule, ...]

    def problem(self, value: Any) -> str | None:
        problems = [rule.problem(value) for rule in self.rules]
        if any(problem is None for problem in problems):
            return None
        if OUT_OF_RANGE in problems:  # the right kind of value, but too small or too large
            return OUT_OF_RANGE
        return problems[0] if len(set(problems)) == 1 else "is none of the allowed kinds"

    def allowed(self) -> str:
        return " or ".join(rule.allowed() for rule in self.rules)
