"""Both feature backends run through the same entry point, sweep and report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, TINY_SEGMENT

pytestmark = pytest.mark.e2e


def test_noise_and_jacobian_in_one_multirun_and_one_report(trained_run: Path, tiny_data_dir: Path, tmp_path):
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "run_segment.py",
        "-m",
        f"run_dir={trained_run}",
        f"paths.data_dir={tiny_data_dir}",
        f"hydra.sweep.dir={sweep}",
        "method=noise,jacobian",
        *TINY_SEGMENT,
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = sorted(json.loads(p.read_text())["features"] for p in sweep.glob("*/summary.json"))
    assert summaries == ["jacobian", "noise"]

    command = [sys.executable, "-m", "lns.report", str(sweep)]
    report = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr[-3000:]
    header = (sweep / "table.md").read_text()
    assert "| AE " in header or "AE |" in header
    assert "AE (jacobian)" in header
