"""Bad values for every key of ``lns/cli/keys.py``, made invalid by construction from the key's rule (never by asking
the rule), and how to set one: the overrides under which the key exists, its concrete path, the value as Hydra reads
it.

Values are what a command line can carry: ``None``, bools, ints, floats (nan and inf too), strings without NUL or
lone surrogates, and lists of these. No string holds ``${`` or is ``???`` (OmegaConf would read an interpolation or
a missing value).
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from lns.cli.keys import KEYS, Key
from lns.cli.rules import AnyOf, Choice, Flag, ListOf, Name, Number, PathOf, Rule, Text, Whole
from tests.helpers.configs import REPO, compose_config

Strategy = st.SearchStrategy[Any]

# ----------------------------------------------------------------------------------------------- where a key exists

BASE: dict[str, tuple[str, ...]] = {"train": (f"paths.data_dir={REPO}",), "segment": (), "generate": ()}
"""Overrides of every composed config: run_train.py's default data folder (<repo>/data) may not exist."""

OUTPUT_DIR = Path("outputs") / "bad_input"
"""The run folder of the composed configs (nothing is written there)."""

HYDRA_SETS = "Hydra sets it (compose_config too): a value given for it never reaches the checked config"
SKIPPED: dict[tuple[str, str], str] = {
    **{(command, path): HYDRA_SETS for command in KEYS for path in ("paths.root_dir", "paths.output_dir")},
    ("train", "segment"): "segment is a config group too: segment=<value> picks an option of conf/segment/",
}
"""Keys no bad value can be given to from the command line, and why."""

# Per command: the overrides under which keys exist (fnmatch patterns of key paths; each key matches one pattern).
NEEDS: dict[str, dict[tuple[str, ...], tuple[str, ...]]] = {
    "train": {
        (): (
            "task_name",
            "experiment_name",
            "tags",
            "data.*",
            "logger.csv.*",
            "trainer._target_",
            "trainer.accelerator",
            "trainer.devices",
            "trainer.enable_*",
            "trainer.num_nodes",
            "trainer.max_*",
            "trainer.val_check_interval",
            "trainer.check_val_every_n_epoch",
            "trainer.limit_val_batches",
            "trainer.log_every_n_steps",
            "trainer.precision",
            "trainer.deterministic",
            "trainer.default_root_dir",
            "trainer.num_sanity_val_steps",
            "seed",
            "deterministic",
            "ckpt_path",
            "auto_resume",
            "lock_run_dir",
            "optimizer.*",
            "speed.*",
            "check_finite_every_n_steps",
            "paths.data_dir",
            "model._target_",
            "model.z_dim",
            "model.variational",
            "model.channels",
            "model.image_size",
            "objective._target_",
            "objective.goal",
            "objective.step_size",
            "objective.alpha",
            "objective.speedup",
            "objective.beta_*",
            "objective.image_shape",
            "callbacks.*",
        ),
        ("logger=wandb",): ("logger.wandb.*",),
        ("launcher=slurm",): ("slurm_resources.*",),
        ("launcher=local",): ("local_launcher.*",),
        ("model=diffusers_kl",): (
            "model.latent_channels",
            "model.block_out_channels",
            "model.layers_per_block",
            "model.norm_num_groups",
        ),
        ("objective=beta",): ("objective.beta",),
        ("objective=capacity",): ("objective.gamma", "objective.c_max", "objective.c_stop_iter"),
        ("trainer=ddp_sim",): ("trainer.strategy",),
        ("trainer=ddp",): ("trainer.strategy.*",),
        ("segment=table",): ("segment.*",),
    },
    "segment": {
        (): (
            "task_name",
            "experiment_name",
            "tags",
            "trainer.*",
            "run_dir",
            "ckpt_path",
            "images.*",
            "masks",
            "split",
            "test_num",
            "n_clusters",
            "seed",
            "batch_size",
            "precision",
            "channels_last",
            "figures_num",
            "umap_*",
            "health.*",
            "paths.data_dir",
            "noise.*",
            "method.name",
            "method.chunk_size",
            "weights.name",
            "clustering.name",
            "clustering.backend._target_",
            "clustering.backend.workers",
        ),
        ("data=kanizsa",): ("data.*",),
        ("logger=csv",): ("logger.csv.*",),
        ("logger=wandb",): ("logger.wandb.*",),
        ("launcher=slurm",): ("slurm_resources.*",),
        ("launcher=local",): ("local_launcher.*",),
        ("method=jacobian",): ("method.directions",),
        ("method=activations",): ("method.layer", "method.upsample"),
        ("method=rgbxy",): ("method.position_weight",),
        ("method=slic",): ("method.n_segments", "method.compactness", "method.max_num_iter", "method.sigma"),
        ("method=felzenszwalb",): ("method.scale", "method.min_size", "method.workers", "method.method._target_"),
        ("weights=random",): ("weights.seed",),
        ("clustering=kmeans",): ("clustering.backend.n_init", "clustering.backend.max_iter", "clustering.backend.seed"),
    },
    "generate": {
        (): ("dataset", "n_*", "image_size", "seed", "test_seed", "overwrite", "celeba_dir", "paths.data_dir"),
    },
}


def setups(command: str, path: str) -> list[tuple[str, ...]]:
    """Every entry of :data:`NEEDS` whose patterns match key ``path`` of ``command`` (one, when the table is right)."""
    return [
        overrides
        for overrides, patterns in NEEDS[command].items()
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)
    ]


def checked_keys(command: str) -> list[Key]:
    """The keys of ``command`` that the bad-input tests set (all but :data:`SKIPPED`)."""
    return [key for key in KEYS[command] if (command, key.path) not in SKIPPED]


@cache
def composed(command: str, setup: tuple[str, ...]) -> DictConfig:
    """``command``'s config under :data:`BASE` and ``setup``, composed once."""
    return compose_config(command, [*BASE[command], *setup], OUTPUT_DIR)


def concrete_paths(key: Key, cfg: DictConfig) -> list[str]:
    """The key's path with its ``*`` replaced by each name ``cfg`` has there (``callbacks.health._target_``)."""
    if "*" not in key.path:
        return [key.path]
    above, below = key.path.split(".*", 1)
    return [f"{above}.{name}{below}" for name in sorted(OmegaConf.select(cfg, above))]


def has_key(cfg: DictConfig, path: str) -> bool:
    """Whether ``cfg`` has the key ``path`` (whatever its value: null, ???, an interpolation it cannot resolve)."""
    above, _, name = path.rpartition(".")
    node = OmegaConf.select(cfg, above, throw_on_resolution_failure=False) if above else cfg
    return isinstance(node, DictConfig) and name in list(node)  # "in node" is false for ???


def override(cfg: DictConfig, path: str, value: Any) -> str:
    """``path=value`` as typed on the command line, ``+path=value`` where ``cfg`` has no such key yet."""
    return f"{'' if has_key(cfg, path) else '+'}{path}={hydra_value(value)}"


# ----------------------------------------------------------------------------------------------- Hydra's reading

BEFORE_QUOTE_OR_END = re.compile(r"(\\*)('|\Z)")


def quoted(text: str) -> str:
    """``text`` single-quoted as Hydra's override grammar reads it: a quote escaped, and so every backslash that
    comes before a quote or the end (other backslashes stay as they are)."""
    return "'" + BEFORE_QUOTE_OR_END.sub(lambda match: match[1] * 2 + ("\\'" if match[2] else ""), text) + "'"


def hydra_value(value: Any) -> str:
    """``value`` written so that a Hydra override gives back the same value of the same type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    raise TypeError(f"a command line cannot give {value!r}")


def same(a: Any, b: Any) -> bool:
    """Equal and of one type (nan equal to nan), item by item for lists."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    nans = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return type(a) is type(b) and (nans or a == b)


# ----------------------------------------------------------------------------------------------- values


def _carried(text: str) -> bool:
    return "${" not in text and text != "???"


CHARACTERS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
PRINTABLE_CHARACTERS = st.characters(categories=("L", "M", "N", "P", "S"))
TEXT = st.text(CHARACTERS, max_size=12).filter(_carried)
"""Any text a command line can carry."""
PRINTABLE = st.text(PRINTABLE_CHARACTERS, max_size=12).filter(_carried)
NON_PRINTABLE = ("\t", "\n", "\r", "\x0b", "\x0c", "\x01", "\x1b", "\x7f", "\x85", "\u2028", "\u200b")
"""Tab, line breaks, control and format characters: str.isprintable() is false for each."""
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
FINITE = st.floats(allow_nan=False, allow_infinity=False)
IDENTIFIER = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
FILE_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@dataclass(frozen=True)
class Places:
    """An existing folder ``root`` holding an existing file ``file`` and folder ``folder``; ``root/missing`` does
    not exist."""

    root: Path

    @property
    def file(self) -> Path:
        return self.root / "a_file.txt"

    @property
    def folder(self) -> Path:
        return self.root / "a_folder"

    @property
    def missing(self) -> Path:
        return self.root / "missing"

    def make(self) -> Places:
        """Create the file and the folder; return self."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file.write_text("not a folder, not a checkpoint\n")
        return self


def _among(value: Any, choices: tuple[Any, ...]) -> bool:
    return any(type(value) is type(choice) and value == choice for choice in choices)


def _with_odd_character(texts: Strategy) -> Strategy:
    return st.builds(lambda a, odd, b: a + odd + b, texts, st.sampled_from(NON_PRINTABLE), texts)


def _outside(low: float | None, high: float | None, low_open: bool, high_open: bool, floats: bool) -> list[Strategy]:
    """Numbers below ``low`` or above ``high`` (an open end itself too): integers, and floats when ``floats``."""
    kinds: list[Strategy] = []
    if low is not None:
        kinds.append(st.integers(max_value=math.floor(low) if low_open else math.ceil(low) - 1))
        if floats:
            kinds.append(st.floats(max_value=low, exclude_max=not low_open, allow_nan=False, allow_infinity=False))
    if high is not None:
        kinds.append(st.integers(min_value=math.ceil(high) if high_open else math.floor(high) + 1))
        if floats:
            kinds.append(st.floats(min_value=high, exclude_min=not high_open, allow_nan=False, allow_infinity=False))
    return kinds


def good_values(rule: Rule) -> Strategy:
    """Values ``rule`` takes (for the items of a list)."""
    match rule:
        case Whole(low=low, high=high):
            return st.integers(min_value=low, max_value=high)
        case Number(low=low, high=high, low_open=low_open, high_open=high_open):
            return st.floats(
                min_value=low,
                max_value=high,
                exclude_min=low_open and low is not None,
                exclude_max=high_open and high is not None,
                allow_nan=False,
                allow_infinity=False,
            )
        case Choice(choices=choices):
            return st.sampled_from(choices)
        case Text(max_length=max_length):
            return st.text(PRINTABLE_CHARACTERS, min_size=1, max_size=min(12, max_length)).filter(_carried)
    raise TypeError(f"no good values for {rule!r}: add them here")


def accepts(rule: Rule, value: Any) -> bool:
    """Whether ``rule`` takes ``value``, as the rule's docstring describes it: a reference written apart from
    ``lns/cli/rules.py``, used only to keep the values that none of an ``AnyOf``'s rules takes."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    match rule:
        case Whole(low=low, high=high):
            return type(value) is int and (low is None or value >= low) and (high is None or value <= high)
        case Number(low=low, high=high, low_open=low_open, high_open=high_open):
            if not number or not math.isfinite(value):
                return False
            above = low is None or value > low or (not low_open and value == low)
            return above and (high is None or value < high or (not high_open and value == high))
        case Flag():
            return type(value) is bool
        case Choice(choices=choices):
            return _among(value, choices)
        case Text(empty=empty, max_length=max_length):
            return (
                isinstance(value, str) and (empty or value != "") and len(value) <= max_length and value.isprintable()
            )
        case ListOf(item=item, length=length):
            fits = isinstance(value, list) and length in (None, len(value))
            return fits and all(accepts(item, entry) for entry in value)
    raise TypeError(f"no reference for {rule!r}: add it here")


def _bad_choice(choices: tuple[Any, ...]) -> list[Strategy]:
    near = [str(choice) for choice in choices]
    near += [
        f(choice) for choice in choices if isinstance(choice, str) for f in (str.upper, " {}".format, "{}s".format)
    ]
    near += [float(choice) for choice in choices if isinstance(choice, int)]
    return [
        st.sampled_from([value for value in near if not _among(value, choices)]),
        TEXT.filter(lambda text: not _among(text, choices)),
        st.integers().filter(lambda number: not _among(number, choices)),
        FINITE,
        st.booleans(),
        st.lists(st.sampled_from(choices), max_size=2),
    ]


def _bad_name() -> list[Strategy]:
    return [
        st.sampled_from(["1abc", "a..b", "", "has space", ".a", "a.", "a-b.c", "a.1b"]),
        st.builds(str.__add__, st.sampled_from("0123456789"), IDENTIFIER),
        st.lists(IDENTIFIER, min_size=1, max_size=3).map(lambda parts: ".".join([*parts, ""])),
        st.builds(lambda a, odd, b: a + odd + b, IDENTIFIER, st.sampled_from(" -+/:@#%()=,;!?'\"\\\t\n"), IDENTIFIER),
        st.integers(),
        st.booleans(),
        st.lists(IDENTIFIER, min_size=1, max_size=2),
    ]


def _bad_path(rule: PathOf, places: Places) -> list[Strategy]:
    missing = [] if rule.may_be_missing else [FILE_NAME.map(lambda name: str(places.missing / name))]
    under_file = st.lists(FILE_NAME, min_size=1, max_size=3).map(lambda names: str(places.file.joinpath(*names)))
    wrong_kind = {
        "folder": [*missing, st.just(str(places.file))],
        "file": [*missing, st.just(str(places.folder)), st.just(str(places.root))],
        "new folder": [under_file, st.just(str(places.file))],
    }[rule.kind]
    return [
        *wrong_kind,
        st.sampled_from(["", " ", "\t"]),
        _with_odd_character(FILE_NAME).map(lambda name: str(places.root / name)),
        st.integers(),
        st.booleans(),
        st.lists(st.just(str(places.folder)), min_size=1, max_size=2),
    ]


def _bad_list(rule: ListOf, places: Places) -> list[Strategy]:
    good = good_values(rule.item)
    bad_item = st.one_of(bad_values(rule.item, places), st.none())
    others = (
        st.lists(good, min_size=0, max_size=3)
        if rule.length is None
        else st.lists(good, min_size=rule.length - 1, max_size=rule.length - 1)
    )
    kinds = [
        good,
        st.builds(
            lambda items, index, item: [*items[:index], item, *items[index:]], others, st.integers(0, 3), bad_item
        ),
        st.integers(),
        TEXT,
    ]
    if rule.length is not None:
        kinds.append(st.lists(good, max_size=rule.length + 2).filter(lambda items: len(items) != rule.length))
    return kinds


def bad_kinds(rule: Rule, places: Places) -> list[Strategy]:
    """Kinds of values ``rule`` refuses, each a strategy, in the order the rule's docstring gives its limits."""
    match rule:
        case Whole(low=low, high=high):
            return [
                *_outside(low, high, low_open=False, high_open=False, floats=False),
                st.integers(-1000, 1000).map(float),
                FINITE.filter(lambda number: not number.is_integer()),
                NON_FINITE,
                TEXT,
                st.integers().map(str),
                st.booleans(),
                st.lists(st.integers(), max_size=2),
            ]
        case Number(low=low, high=high, low_open=low_open, high_open=high_open):
            return [
                *_outside(low, high, low_open, high_open, floats=True),
                NON_FINITE,
                TEXT,
                FINITE.map(repr),
                st.booleans(),
                st.lists(FINITE, max_size=2),
            ]
        case Flag():
            return [
                st.integers(0, 1),
                st.sampled_from(["true", "false", "True", "yes", "no", "maybe", "on", "1"]),
                st.integers(),
                FINITE,
                TEXT,
                st.lists(st.booleans(), max_size=2),
            ]
        case Choice(choices=choices):
            return _bad_choice(choices)
        case Text(empty=empty, max_length=max_length):
            return [
                *([] if empty else [st.just("")]),
                st.text(PRINTABLE_CHARACTERS, min_size=max_length + 1, max_size=max_length + 30).filter(_carried),
                _with_odd_character(PRINTABLE),
                st.integers(),
                FINITE,
                st.booleans(),
                st.lists(PRINTABLE, max_size=2),
            ]
        case Name():
            return _bad_name()
        case PathOf():
            return _bad_path(rule, places)
        case ListOf():
            return _bad_list(rule, places)
        case AnyOf(rules=rules):
            kinds = [kind for sub in rules for kind in bad_kinds(sub, places)]
            return [kind.filter(lambda value: not any(accepts(sub, value) for sub in rules)) for kind in kinds]
    raise TypeError(f"no bad values for {rule!r}: add them here")


def bad_values(rule: Rule, places: Places, first: int = 0) -> Strategy:
    """Values ``rule`` refuses; ``first``: which kind comes first (Hypothesis's simplest example is of that kind)."""
    kinds = bad_kinds(rule, places)
    first %= len(kinds)
    return st.one_of(*kinds[first:], *kinds[:first])


def bad_key_values(key: Key, places: Places, first: int = 0) -> Strategy:
    """Values ``key`` refuses: its rule's, and null where the key may not be null."""
    values = bad_values(key.rule, places, first)
    return values if key.nullable else st.one_of(values, st.none())
