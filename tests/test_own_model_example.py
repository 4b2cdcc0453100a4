"""docs/examples/own_model.py, the example of the 'Bring your own model' page, runs as it is."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from tests.helpers import REPO


def test_the_own_model_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(REPO / "docs" / "examples" / "own_model.py"), run_name="__main__")
    assert namespace["result"].labels.shape == (2, 32, 32)
    assert namespace["jacobian"].labels.shape == (2, 32, 32)
    assert "torch.Size([2, 32, 32])" in capsys.readouterr().out
