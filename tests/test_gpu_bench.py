"""``bench/gpu.py`` end to end on the CPU at small sizes: it exits 0 and writes every section with measured steps/s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO


def row_cells(text: str, first_cell: str) -> list[str]:
    """The cells of the Markdown table row whose first cell is ``first_cell``."""
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row {first_cell!r} in:\n{text}")


def is_number(cell: str) -> bool:
    try:
        return float(cell) > 0
    except ValueError:
        return False


@pytest.mark.e2e
def test_gpu_bench_on_the_cpu_writes_every_section(tmp_path: Path) -> None:
    output = tmp_path / "gpu_cpu.md"
    small = ["--levers", "steps_per_call", "--steps-per-call", "2", "--runs-per-gpu", "2"]
    command = [sys.executable, "bench/gpu.py", "--device", "cpu", "--budget-min", "1.5", *small, "--output", output]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text()
    for line in ("- command: `python bench/gpu.py --device cpu", "- code: ", "- date: ", "- software: torch "):
        assert line in text
    for heading in ("## What was measured", "## One run", "## Runs at once on one CPU", "## Projections"):
        assert heading in text
    columns = row_cells(text, "measurement")
    for row in ("plain PyTorch loop, float32", "plain PyTorch loop, bf16 autocast", "lns.train, as configured"):
        cells = dict(zip(columns, row_cells(text, row), strict=True))
        assert is_number(cells["steps/s"]), cells
        # Counted on a GPU only.
        assert cells["GPU busy"] == cells["kernels per step"] == cells["host syncs per step"] == "n/a", cells
    # Within the budget these are measured, or say why not; the bench goes on either way.
    for row in ("lns.train, speed.steps_per_call=2", "2"):
        cell = row_cells(text, row)[1]
        assert is_number(cell) or cell.startswith(("failed: ", "skipped: ")), cell
    assert "One paper-length run (1,100,000 steps)" in text
