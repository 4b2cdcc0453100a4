"""The one description of the settable keys (lns/cli/keys.py) covers every key the configs can compose, its choices
are the config groups' options, the configuration reference shows it as it is, and the check refuses with one
paragraph naming the key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from omegaconf import DictConfig

from lns.cli.keys import CLUSTERINGS, DATASET_NAMES, KEYS, METHODS, WEIGHTS, find_key, with_allowed_values
from lns.cli.rules import AnyOf, Choice, Flag, ListOf, Name, Number, PathOf, Text, Whole
from lns.cli.validation import check_values
from lns.errors import LNSError
from tests.helpers import CONF, REPO, compose_config

ROOTS = {"train": "train", "segment": "segment", "generate": "generate"}
# Group options to compose, one at a time, per command (sweep presets set Hydra's sweeper only).
GROUPS = {
    "train": ("data", "model", "objective", "trainer", "logger", "experiment", "segment", "launcher"),
    "segment": ("data", "method", "weights", "clustering", "logger", "launcher", "noise"),
    "generate": (),
}


def _options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml") if not path.stem.startswith("_"))


def _variants(command: str) -> list[list[str]]:
    variants = [[]]
    for group in GROUPS[command]:
        variants += [[f"{group}={option}"] for option in _options(group)]
    return variants


def _leaf_paths(node: DictConfig, prefix: str = "") -> list[str]:
    paths = []
    for name in node:
        child = node._get_node(name)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_interpolation():
            paths += _leaf_paths(child, f"{prefix}{name}.")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def _compose(command: str, overrides: list[str], tmp_path: Path) -> DictConfig:
    return compose_config(ROOTS[command], [*overrides, f"paths.data_dir={tmp_path}"], tmp_path / "out")


@pytest.mark.parametrize("command", sorted(KEYS))
def test_every_key_of_every_option_is_described_and_every_default_passes(command: str, tmp_path: Path) -> None:
    undescribed, refused = set(), []
    for overrides in _variants(command):
        cfg = _compose(command, overrides, tmp_path)
        undescribed |= {
            path
            for path in _leaf_paths(cfg)
            if not path.startswith("hydra.") and find_key(command, path) is None and "method.method." not in path
        }
        if overrides != ["model=custom"]:  # its _target_ is ??? until the user names a class
            try:
                check_values(command, cfg)
            except LNSError as error:
                refused.append(f"{overrides}: {error}")
    assert not undescribed, f"keys of {command} missing from lns/cli/keys.py: {sorted(undescribed)}"
    assert not refused, "defaults refused:\n" + "\n".join(refused)


@pytest.mark.parametrize(
    ("choices", "group"),
    [(METHODS, "method"), (CLUSTERINGS, "clustering"), (WEIGHTS, "weights"), (DATASET_NAMES, "data")],
)
def test_the_choices_are_the_options_of_their_config_group(choices: tuple[str, ...], group: str) -> None:
    assert sorted(choices) == _options(group)


def test_the_configuration_reference_shows_the_description_as_it_is() -> None:
    reference = REPO / "docs" / "configuration.md"
    text = reference.read_text()
    assert with_allowed_values(text) == text, "run: python -m lns.cli.keys docs/configuration.md"


@pytest.mark.parametrize(
    ("rule", "good", "bad"),
    [
        (Whole(1), [1, 7], [0, 1.5, 2.0, "3", True, None]),
        (Whole(-1, 5), [-1, 5], [-2, 6]),
        (Number(0, low_open=True), [1e-9, 3, 0.5], [0, -1, math.nan, math.inf, "abc", False]),
        (Number(0, 1, high_open=True), [0, 0.99], [1, 1.0, -0.1]),
        (Flag(), [True, False], [0, 1, "true", None]),
        (Choice((64, 256)), [64, 256], [65, "64", 64.0]),
        (Text(), ["a", "x" * 200], ["", "x" * 201, "a\nb", "a\tb", 3]),
        (Name(), ["a.b.C", "x"], ["", "1a", "a..b", "a b", 3]),
        (ListOf(Whole(1), length=2), [[1, 2]], [[1], [1, 0], 3, "12"]),
        (AnyOf((Whole(1), Choice(("auto",)))), [3, "auto"], [0, "x", 1.5]),
    ],
)
def test_rules_accept_what_they_describe_and_nothing_else(rule, good: list, bad: list) -> None:
    assert [rule.problem(value) for value in good] == [None] * len(good)
    assert all(rule.problem(value) is not None for value in bad), [v for v in bad if rule.problem(v) is None]


def test_path_rules_tell_folders_files_missing_and_unwritable_apart(tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert PathOf("folder").problem(str(tmp_path)) is None
    assert PathOf("folder").problem(str(a_file)) == "is a file, not a folder"
    assert PathOf("folder").problem(str(tmp_path / "gone")) == "does not exist"
    assert PathOf("folder", may_be_missing=True).problem(str(tmp_path / "gone")) is None
    assert PathOf("folder", may_be_missing=True).problem(str(a_file)) == "is a file, not a folder"
    assert PathOf("file").problem(str(a_file)) is None
    assert PathOf("file").problem(str(tmp_path)) == "is a folder, not a file"
    assert PathOf("new folder").problem(str(tmp_path / "a" / "b")) is None
    assert "is a file" in PathOf("new folder").problem(str(a_file / "sub"))
    assert PathOf("folder").problem("") == "is not a path"


@pytest.mark.parametrize(
    ("command", "overrides", "message"),
    [
        ("segment", ["noise.std=abc"], "noise.std='abc' is not a finite number: noise.std takes a number > 0."),
        ("segment", ["n_clusters=1.5"], "n_clusters=1.5 is not a whole number: n_clusters takes a whole number."),
        ("segment", ["+noise.stdd=1"], "noise.stdd is no setting of python run_segment.py. Did you mean noise.std"),
        ("train", ["trainer.val_check_interval=-5"], "trainer.val_check_interval=-5 is out of range"),
        ("train", ["data.name=kanisza"], "Did you mean kanizsa?"),
        ("train", ["model=custom"], "model._target_ has no value (??? in the config); set it: model._target_="),
        (
            "train",
            ["segment=paper", "segment.jobs.paper.noise.perturb_num=1"],
            "segment.jobs.paper.noise.perturb_num=1",
        ),
        ("generate", ["n_train=-5"], "n_train=-5 is out of range: n_train takes a whole number ≥ 1."),
    ],
)
def test_a_bad_value_is_refused_in_one_paragraph_naming_the_key(
    command: str, overrides: list[str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(LNSError) as refused:
        check_values(command, _compose(command, overrides, tmp_path))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_keys_of_a_class_that_is_not_lns_go_to_it_unchecked(tmp_path: Path) -> None:
    cfg = _compose("train", ["model=custom", "model._target_=mypackage.MyModel", "+model.depth=deep"], tmp_path)
    check_values("train", cfg)
    cfg = _compose("train", ["+trainer.gradient_clip_val=0.5"], tmp_path)
    check_values("train", cfg)
