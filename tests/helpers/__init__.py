"""Helpers shared by the test modules: paths, composed configs, the tiny dataset, W&B offline files, fault injection.

Test modules import from here (``from tests.helpers import REPO, compose_config``), never from one another;
``tests/conftest.py`` holds the fixtures built on these helpers.
"""

from tests.helpers.configs import (
    CONF,
    LAST,
    LEAN,
    REPO,
    TINY_SEGMENT,
    TINY_TRAIN,
    compose_config,
    compose_with_hydra,
    sweep_jobs,
)
from tests.helpers.datasets import two_square_images, write_tiny_dataset

__all__ = [
    "CONF",
    "LAST",
    "LEAN",
    "REPO",
    "TINY_SEGMENT",
    "TINY_TRAIN",
    "compose_config",
    "compose_with_hydra",
    "sweep_jobs",
    "two_square_images",
    "write_tiny_dataset",
]
