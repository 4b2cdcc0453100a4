"""Fixtures shared by the test modules: a tiny dataset on disk, a trained run, the fault-injection processes.

Plain helpers (paths, composed configs, the tiny settings) live in ``tests/helpers``; import them from there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# The fixtures below use compose_config, TINY_TRAIN and write_tiny_dataset. Test modules import every helper from
# tests.helpers; the other names stay importable from here too.
from tests.helpers import (  # noqa: F401
    CONF,
    REPO,
    TINY_SEGMENT,
    TINY_TRAIN,
    compose_config,
    two_square_images,
    write_tiny_dataset,
)

if TYPE_CHECKING:
    from tests.helpers.fault_harness import Zygote
    from tests.helpers.fault_scenarios import Reference

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("data")
    write_tiny_dataset(data_dir)
    return data_dir


@pytest.fixture(scope="session")
def trained_run(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training run directory (4 steps on the tiny dataset) to segment."""
    from lns.train import train

    run_dir = tmp_path_factory.mktemp("trained")
    train(compose_config("train", [*TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", "logger=none"], run_dir))
    return run_dir


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """A pre-imported process that forks the fault-injection tests' entry-point processes (one per test module)."""
    from tests.helpers.fault_harness import Zygote

    server = Zygote()
    yield server
    server.close()


@pytest.fixture(scope="module")
def reference(zygote: Zygote, tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """An uninterrupted training that the fault-injected ones are compared with."""
    from tests.helpers.fault_scenarios import reference_training

    return reference_training(zygote, tiny_data_dir, tmp_path_factory.mktemp("reference"))
