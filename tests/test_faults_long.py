"""The long fault-injection runs: the scenarios of ``test_faults.py`` with many more faults (``-m faults_long``).

    .venv/bin/python -m pytest -m faults_long tests/test_faults_long.py

Each test prints its counts (faults injected, resumes, files compared); ``bench/fault_injection.py`` runs these
and the fast ones and writes the totals to ``bench/results/fault_injection.md``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.helpers.fault_harness import Zygote
from tests.helpers.fault_scenarios import (
    Reference,
    fault_training,
    kill_generation,
    kill_segmentation,
    two_trainings,
)

pytestmark = [pytest.mark.faults_long, pytest.mark.e2e, pytest.mark.timeout(1800)]

KILLS = 20
SIGNALS = 5
SEGMENTATION_KILLS = 10
GENERATION_KILLS = 10
LOCK_RACES = 3


def test_training_killed_20_times_including_inside_checkpoint_writes(
    zygote: Zygote, tiny_data_dir: Path, reference: Reference, tmp_path: Path
) -> None:
    """One in three kills lands inside an atomic write (deterministically); the rest at random moments."""
    faults = ["kill_in_write" if i % 3 == 2 else "kill" for i in range(KILLS)]
    counts = fault_training(zygote, tiny_data_dir, tmp_path, reference, faults, seed=1600)
    assert counts.injections >= KILLS // 2


@pytest.mark.parametrize("kind", ["SIGTERM", "SIGUSR2", "SIGTERM_in_setup"])
def test_training_signalled_at_random_moments(
    kind: str, zygote: Zygote, tiny_data_dir: Path, reference: Reference, tmp_path: Path
) -> None:
    counts = fault_training(zygote, tiny_data_dir, tmp_path, reference, [kind] * SIGNALS, seed=1601)
    assert counts.injections >= SIGNALS // 2


def test_trainings_started_together_or_moments_apart_exactly_one_runs(
    zygote: Zygote, tiny_data_dir: Path, tmp_path: Path
) -> None:
    rng = random.Random(1602)
    for race in range(LOCK_RACES):
        two_trainings(zygote, tiny_data_dir, tmp_path / f"race-{race}", delay_s=rng.uniform(0, 2))


def test_segmentation_killed_10_times_resumes_to_identical_predictions(
    zygote: Zygote, trained_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    kill_segmentation(zygote, trained_run, tiny_data_dir, tmp_path, injections=SEGMENTATION_KILLS, seed=1603)


def test_data_generation_killed_10_times_never_leaves_a_loadable_half_dataset(zygote: Zygote, tmp_path: Path) -> None:
    kill_generation(zygote, tmp_path, injections=GENERATION_KILLS, seed=1604)
