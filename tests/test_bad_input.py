"""Bad input is refused in one paragraph naming what is wrong: a bad value for every key of every command, drawn by
Hypothesis from the key's rule (``tests/helpers/bad_values.py``); an unknown key; the entry points as processes;
the Python API's arguments.

The default run draws few examples; the same properties with many more run only when asked:

    python -m pytest -m bad_input_long tests/test_bad_input.py
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

import lns
from lns.cli.keys import KEYS, Key, find_key
from lns.cli.validation import check_values
from lns.models import Autoencoder
from lns.segmentation.names import CLUSTERINGS, METHODS
from tests.helpers import REPO, compose_config
from tests.helpers.bad_values import (
    BASE,
    FILE_NAME,
    FINITE,
    IDENTIFIER,
    NEEDS,
    NON_FINITE,
    OUTPUT_DIR,
    SKIPPED,
    TEXT,
    Places,
    bad_key_values,
    checked_keys,
    composed,
    concrete_paths,
    has_key,
    hydra_value,
    override,
    same,
    setups,
)

LONG = pytest.mark.bad_input_long
COMMANDS = tuple(KEYS)
CHECKED = [(command, key) for command in COMMANDS for key in checked_keys(command)]
KEY_IDS = [f"{command}:{key.path}" for command, key in CHECKED]


def profile(max_examples: int) -> settings:
    """Reproducible settings: the same examples on every run, no example database, no deadline."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Places:
    return Places(tmp_path_factory.mktemp("places")).make()


# ----------------------------------------------------------------------------------------------- the table


def test_every_key_has_one_setup_or_a_reason_to_be_skipped() -> None:
    for command, keys in KEYS.items():
        for key in keys:
            found = setups(command, key.path)
            skipped = (command, key.path) in SKIPPED
            assert len(found) == (0 if skipped else 1), f"{command} {key.path}: {found} (skipped: {skipped})"


def test_the_table_names_no_key_that_is_gone() -> None:
    for command, entries in NEEDS.items():
        for pattern in (pattern for patterns in entries.values() for pattern in patterns):
            assert any(fnmatch.fnmatchcase(key.path, pattern) for key in KEYS[command]), (command, pattern)
    assert all(any(key.path == path for key in KEYS[command]) for command, path in SKIPPED)


@pytest.mark.parametrize(("command", "setup"), sorted({(c, s) for c in NEEDS for s in NEEDS[c]}))
def test_every_setup_composes_to_a_config_the_check_passes(command: str, setup: tuple[str, ...]) -> None:
    check_values(command, composed(command, setup))


def test_every_checked_key_exists_under_its_setup_or_can_be_added() -> None:
    for command, key in CHECKED:
        (setup,) = setups(command, key.path)
        paths = concrete_paths(key, composed(command, setup))
        assert paths and all(find_key(command, path) is key for path in paths), (command, key.path, paths)


# ----------------------------------------------------------------------------------------------- Hydra's reading

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), FINITE, NON_FINITE, TEXT)


@profile(200)
@given(value=st.one_of(SCALARS, st.lists(st.one_of(SCALARS, st.lists(SCALARS, max_size=2)), max_size=3)))
def test_a_rendered_value_reaches_hydra_as_the_same_value_of_the_same_type(value: Any) -> None:
    parsed = OverridesParser.create().parse_override(f"key={hydra_value(value)}").value()
    assert same(parsed, value), (value, parsed)


# ----------------------------------------------------------------------------------------------- check_values


def refuses_bad_value(command: str, key: Key, data: st.DataObject, places: Places, first: int = 0) -> None:
    """Set one bad value of ``key`` (with ``*`` a name the config has) and check the refusal."""
    (setup,) = setups(command, key.path)
    base = composed(command, setup)
    path = data.draw(st.sampled_from(concrete_paths(key, base)), label="path")
    value = data.draw(bad_key_values(key, places, first), label="value")
    cfg = compose_config(command, [*BASE[command], *setup, override(base, path, value)], OUTPUT_DIR)
    reached = OmegaConf.select(cfg, path)
    assert same(OmegaConf.to_container(reached) if OmegaConf.is_config(reached) else reached, value)
    with pytest.raises(lns.LNSError) as refused:
        check_values(command, cfg)
    message = str(refused.value)
    assert message.startswith(f"{path}="), message
    assert key.allowed() in message and f"Example: {path}={key.example}" in message, message
    assert "\n\n" not in message, message


@pytest.mark.parametrize(("command", "key", "first"), [(*case, i) for i, case in enumerate(CHECKED)], ids=KEY_IDS)
@profile(1)
@given(data=st.data())
def test_a_bad_value_of_every_key_is_refused_in_one_paragraph_naming_it(
    command: str, key: Key, first: int, data: st.DataObject, places: Places
) -> None:
    refuses_bad_value(command, key, data, places, first)


@LONG
@pytest.mark.parametrize(("command", "key"), CHECKED, ids=KEY_IDS)
@profile(10)
@given(data=st.data())
def test_many_bad_values_of_every_key_are_refused_in_one_paragraph_naming_it(
    command: str, key: Key, data: st.DataObject, places: Places
) -> None:
    refuses_bad_value(command, key, data, places)


def refuses_bad_value_of_any_key(data: st.DataObject, places: Places) -> None:
    command, key = data.draw(st.sampled_from(CHECKED), label="key")
    refuses_bad_value(command, key, data, places)


@profile(25)
@given(data=st.data())
def test_bad_values_of_keys_drawn_at_random_are_refused(data: st.DataObject, places: Places) -> None:
    refuses_bad_value_of_any_key(data, places)


@LONG
@profile(400)
@given(data=st.data())
def test_many_bad_values_of_keys_drawn_at_random_are_refused(data: st.DataObject, places: Places) -> None:
    refuses_bad_value_of_any_key(data, places)


# Nodes of lns's own (no _target_, or one of lns): a key added under one must be a setting.
OWN_NODES = {
    "train": ("", "model", "objective", "optimizer", "speed", "data", "callbacks.health"),
    "segment": ("", "noise", "health", "images", "method", "weights", "clustering"),
    "generate": ("",),
}


def refuses_unknown_key(command: str, data: st.DataObject) -> None:
    base = composed(command, ())
    node = data.draw(st.sampled_from(OWN_NODES[command]), label="node")
    name = data.draw(IDENTIFIER.filter(lambda name: name != "hydra"), label="name")
    path = f"{node}.{name}" if node else name
    assume(not has_key(base, path) and find_key(command, path) is None)  # not a key of the config or a setting
    cfg = compose_config(command, [*BASE[command], f"+{path}=1"], OUTPUT_DIR)
    with pytest.raises(lns.LNSError) as refused:
        check_values(command, cfg)
    message = str(refused.value)
    assert message.startswith(f"{path} is no setting of "), message
    assert "\n\n" not in message, message


@pytest.mark.parametrize("command", COMMANDS)
@profile(5)
@given(data=st.data())
def test_an_unknown_key_is_refused_at_the_top_and_under_lns_own_nodes(command: str, data: st.DataObject) -> None:
    refuses_unknown_key(command, data)


@LONG
@pytest.mark.parametrize("command", COMMANDS)
@profile(100)
@given(data=st.data())
def test_many_unknown_keys_are_refused_at_the_top_and_under_lns_own_nodes(command: str, data: st.DataObject) -> None:
    refuses_unknown_key(command, data)


# ----------------------------------------------------------------------------------------------- entry points

ARGV = {"train": ["run_train.py"], "segment": ["run_segment.py"], "generate": ["-m", "data_gen"]}
# If a bad value slipped through, these keep the run small: data_gen makes two images per split.
SMALL = {"train": (), "segment": (), "generate": ("dataset=kanizsa", "n_train=2", "n_valid=2", "n_test=2")}


def run_command(command: str, cwd: Path, overrides: list[str]) -> subprocess.CompletedProcess[str]:
    """``python <entry point> <overrides>`` from ``cwd`` (the entry point of the repository)."""
    entry = [str(REPO / part) if part.endswith(".py") else part for part in ARGV[command]]
    argv = [sys.executable, *entry, *BASE[command], *SMALL[command], *overrides]
    environment = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run(argv, cwd=cwd, env=environment, capture_output=True, text=True, timeout=120)


def error_paragraph(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal: exit status 1, no traceback, one ``error:`` paragraph (returned unwrapped)."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert re.search(r"error:\s", result.stderr), result.stderr[-3000:]
    return " ".join(re.split(r"error:\s", result.stderr, maxsplit=1)[1].split("\n\n", 1)[0].split())


def entry_point_refuses(command: str, data: st.DataObject, places: Places) -> None:
    """A bad value through the real entry point, in a fresh folder that stays empty."""
    key = data.draw(st.sampled_from(checked_keys(command)), label="key")
    (setup,) = setups(command, key.path)
    base = composed(command, setup)
    path = data.draw(st.sampled_from(concrete_paths(key, base)), label="path")
    value = data.draw(bad_key_values(key, places), label="value")
    folder = Path(tempfile.mkdtemp(dir=places.root))
    overrides = [*setup, override(base, path, value), f"hydra.run.dir={folder / 'outputs' / 'run'}"]
    assert path in error_paragraph(run_command(command, folder, overrides))
    assert list(folder.iterdir()) == []


@pytest.mark.e2e
@pytest.mark.parametrize("command", COMMANDS)
@profile(3)
@given(data=st.data())
def test_an_entry_point_refuses_a_bad_value_in_one_paragraph_and_leaves_nothing(
    command: str, data: st.DataObject, places: Places
) -> None:
    entry_point_refuses(command, data, places)


@LONG
@pytest.mark.e2e
@pytest.mark.parametrize("command", COMMANDS)
@profile(20)
@given(data=st.data())
def test_entry_points_refuse_many_bad_values_in_one_paragraph_and_leave_nothing(
    command: str, data: st.DataObject, places: Places
) -> None:
    entry_point_refuses(command, data, places)


RUN_FILES = {
    ".hydra/config.yaml": b"seed: 0\n",
    "run_config.yaml": b"model: {}\n",
    "checkpoints/last.ckpt": bytes(range(256)),
    "logs/metrics.csv": b"step,loss\n1,0.5\n",
    "run_train.log": b"[2026-01-01] trained\n",
}
BAD_SETTING = {"train": "model.z_dim=1.5", "segment": "noise.std=-1", "generate": "n_train=0"}


@pytest.mark.e2e
@pytest.mark.parametrize("command", COMMANDS)
def test_a_refused_command_keeps_every_file_of_an_existing_run_directory_byte_identical(
    command: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "outputs" / "run"
    for name, content in RUN_FILES.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_bytes(content)
    result = run_command(command, tmp_path, [BAD_SETTING[command], f"hydra.run.dir={run_dir}"])
    assert BAD_SETTING[command].split("=")[0] in error_paragraph(result)
    assert {name: (run_dir / name).read_bytes() for name in RUN_FILES} == RUN_FILES
    assert sorted(path.name for path in tmp_path.iterdir()) == ["outputs"]


# ----------------------------------------------------------------------------------------------- the Python API

IMAGES = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
GOOD = {"n_clusters": 2, "method": "noise", "perturbations": 2, "clustering": "kmeans"}
NOT_ARRAYS = st.sampled_from(["abc", None, {"a": 1}, np.array([object(), object()]), [[0.5, 0.5], [0.5]]])
NOT_INTEGERS = st.one_of(FINITE, NON_FINITE, st.booleans(), st.none(), TEXT, st.lists(st.integers(2, 3), max_size=2))


@pytest.fixture(scope="module")
def model() -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(z_dim=2)


def _set(images: torch.Tensor, value: float) -> torch.Tensor:
    images = images.clone()
    images[0, 0, 0, 0] = value
    return images


def bad_images() -> st.SearchStrategy[Any]:
    shapes = [(3, 64, 64), (64, 64), (1, 2, 3, 64, 64), (0, 3, 64, 64), (2, 3, 0, 64), (2, 1, 64, 64), (2, 3, 32, 32)]
    return st.one_of(
        NOT_ARRAYS,
        st.sampled_from(shapes).map(torch.rand),
        st.sampled_from([torch.uint8, torch.int64, torch.bool, torch.complex64]).map(IMAGES.to),
        st.sampled_from([math.nan, math.inf, -math.inf, -0.5, 1.5, 255.0]).map(lambda value: _set(IMAGES, value)),
    )


def bad_sites(model: Autoencoder) -> st.SearchStrategy[Any]:
    layers = {name for name, _ in model.named_modules()} | {"latent", "output"}
    names = st.from_regex(r"(encoder|decoder|[a-z]{1,6})(\.[0-9]{1,3}){0,2}", fullmatch=True)
    return st.one_of(
        st.sampled_from(["", "decoder.99", "a..b", "Latent"]),
        names.filter(lambda name: name not in layers),
        st.integers(),
        st.none(),
    )


def bad_arguments(model: Autoencoder) -> dict[str, st.SearchStrategy[Any]]:
    """Per argument of lns.segment_images, values it refuses."""
    unknown = TEXT.filter(lambda text: text not in METHODS + CLUSTERINGS)
    return {
        "model": st.sampled_from([3, "ae", None, object(), torch.nn.Linear(2, 2)]),
        "images": bad_images(),
        "n_clusters": st.one_of(
            st.integers(max_value=0),
            st.integers(min_value=64 * 64 + 1),
            st.one_of(FINITE, NON_FINITE, st.booleans(), st.none(), TEXT),
            st.lists(st.integers(1, 3), max_size=4).filter(lambda counts: len(counts) != 2),
            st.lists(st.one_of(st.integers(max_value=0), FINITE, st.booleans()), min_size=2, max_size=2),
            st.sampled_from([{1: 2, 3: 4}, {2, 3}, torch.tensor(2), torch.tensor([2.0, 2.0])]),
        ),
        "noise_std": st.one_of(
            st.floats(max_value=0, allow_nan=False), NON_FINITE, st.booleans(), st.none(), TEXT, st.just([0.001])
        ),
        "perturbations": st.one_of(st.integers(max_value=1), st.integers(2, 9).map(float), NOT_INTEGERS),
        "site": bad_sites(model),
        "method": st.one_of(unknown, st.integers(), st.none(), st.just(["noise"])),
        "clustering": st.one_of(unknown, st.integers(), st.none(), st.just(["ward"]), st.just({"ward": 1})),
        "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**64), NOT_INTEGERS),
        "batch_size": st.one_of(st.integers(max_value=0), NOT_INTEGERS.filter(lambda value: value is not None)),
        "channels_last": st.one_of(st.integers(), FINITE, TEXT, st.none()),
    }


def segment_images_refuses(model: Autoencoder, data: st.DataObject) -> None:
    arguments = bad_arguments(model)
    name = data.draw(st.sampled_from(sorted(arguments)), label="argument")
    value = data.draw(arguments[name], label="value")
    call = {"model": model, "images": IMAGES, **GOOD, name: value}
    with pytest.raises(lns.LNSError) as refused:
        lns.segment_images(call.pop("model"), call.pop("images"), **call)
    assert name in str(refused.value), str(refused.value)


@profile(100)
@given(data=st.data())
def test_segment_images_refuses_a_bad_argument_naming_it(model: Autoencoder, data: st.DataObject) -> None:
    segment_images_refuses(model, data)


@LONG
@profile(300)
@given(data=st.data())
def test_segment_images_refuses_many_bad_arguments_naming_them(model: Autoencoder, data: st.DataObject) -> None:
    segment_images_refuses(model, data)


@pytest.fixture(scope="module")
def not_models(places: Places) -> list[Path]:
    """Files that hold no model: empty, garbage, a list, a dictionary without weights."""
    files = [places.root / name for name in ("empty.ckpt", "garbage.ckpt", "list.pt", "dict.ckpt")]
    files[0].write_bytes(b"")
    files[1].write_bytes(bytes(range(256)) * 4)
    torch.save([1, 2], files[2])
    torch.save({"epoch": 1}, files[3])
    return files


def load_model_refuses(places: Places, not_models: list[Path], data: st.DataObject) -> None:
    path = data.draw(
        st.one_of(
            st.sampled_from([3, None, b"/tmp", 1.5, ["a"], "", "/dev/null", str(places.root / ("a" * 300))]),
            FILE_NAME.map(lambda name: places.missing / name),
            st.lists(FILE_NAME, min_size=1, max_size=2).map(lambda names: str(places.file.joinpath(*names))),
            FILE_NAME.map(lambda name: f"{places.root}/{name}\x00.ckpt"),
            st.sampled_from([places.file, places.folder, *not_models]),
        ),
        label="path",
    )
    with pytest.raises(lns.LNSError) as refused:
        lns.load_model(path)
    message = str(refused.value)
    assert "path" in message or (isinstance(path, str | Path) and str(path) in message), message


@profile(50)
@given(data=st.data())
def test_load_model_refuses_what_is_no_model_naming_the_path(
    places: Places, not_models: list[Path], data: st.DataObject
) -> None:
    load_model_refuses(places, not_models, data)


@LONG
@profile(200)
@given(data=st.data())
def test_load_model_refuses_many_paths_that_are_no_model(
    places: Places, not_models: list[Path], data: st.DataObject
) -> None:
    load_model_refuses(places, not_models, data)


LABELS = torch.zeros(2, 8, 8, dtype=torch.long)
BAD_LABELS = st.one_of(
    NOT_ARRAYS,
    st.sampled_from([torch.float32, torch.float64, torch.complex64]).map(lambda dtype: (LABELS + 1).to(dtype)),
    st.sampled_from([(), (8,), (2, 8, 4), (3, 8, 8)]).map(lambda shape: torch.zeros(shape, dtype=torch.long)),
)


def adjusted_rand_index_refuses(data: st.DataObject) -> None:
    name, arguments = data.draw(
        st.one_of(
            BAD_LABELS.map(lambda bad: ("labels", (bad, LABELS, False))),
            BAD_LABELS.map(lambda bad: ("masks", (LABELS, bad, False))),
            st.just(("labels", (LABELS[:0], LABELS[:0], False))),
            st.one_of(st.integers(), TEXT, st.none()).map(lambda bad: ("foreground_only", (LABELS, LABELS, bad))),
        ),
        label="arguments",
    )
    labels, masks, foreground_only = arguments
    with pytest.raises(lns.LNSError) as refused:
        lns.adjusted_rand_index(labels, masks, foreground_only=foreground_only)
    assert name in str(refused.value), str(refused.value)


@profile(100)
@given(data=st.data())
def test_adjusted_rand_index_refuses_a_bad_argument_naming_it(data: st.DataObject) -> None:
    adjusted_rand_index_refuses(data)


@LONG
@profile(300)
@given(data=st.data())
def test_adjusted_rand_index_refuses_many_bad_arguments_naming_them(data: st.DataObject) -> None:
    adjusted_rand_index_refuses(data)
