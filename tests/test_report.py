"""Report: summary.json files with known values -> table cells, reference columns, plots, claims, errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from lns.errors import LNSError
from lns.report import write_report


def _summary(root, name, *, dataset="kanizsa", model="ae", ari=0.5, std=0.01, num=10, site="latent", **extra):
    run_dir = root / name
    run_dir.mkdir(parents=True)
    data = {
        "ari_mean": ari,
        "ari_std": 0.1,
        "ari_fg_mean": ari,
        "ari_fg_std": 0.1,
        "n_images": 100,
        "dataset": dataset,
        "model": model,
        "train_seed": 0,
        "split": "test",
        "features": "noise",
        "noise": {"std": std, "perturb_num": num, "site": site},
        "clustering": "ward",
        "n_clusters": 4,
        "seed": 0,
        "checkpoint": "ckpt",
        "run_dir": None,
    }
    data.update(extra)
    (run_dir / "summary.json").write_text(json.dumps(data))
    return run_dir


def _read_csv(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_cell_is_mean_and_population_std_over_runs(tmp_path):
    for seed, ari in enumerate((0.5, 0.6, 0.7)):
        _summary(tmp_path / "runs", f"seed{seed}", ari=ari)
    report = write_report([tmp_path / "runs"], out=tmp_path / "out")
    cell = report.table.get("kanizsa", "AE")
    assert cell.mean == pytest.approx(0.6) and cell.n == 3
    assert cell.std == pytest.approx(np.std([0.5, 0.6, 0.7])) == pytest.approx(0.08165, abs=1e-5)
    assert report.table.columns == ["AE"]
    table_md = (tmp_path / "out" / "table.md").read_text()
    assert "0.600 ± 0.082 (n=3)" in table_md and "population std" in table_md
    (row,) = _read_csv(tmp_path / "out" / "table.csv")
    assert row["dataset"] == "kanizsa" and float(row["AE mean"]) == pytest.approx(0.6)
    assert float(row["AE std"]) == pytest.approx(0.08165, abs=1e-5) and row["AE n"] == "3"
    assert (tmp_path / "out" / "claims.md").is_file()
    assert not (tmp_path / "out" / "ari_vs_std.png").exists()


def test_rows_in_gg_order_and_control_columns(tmp_path):
    _summary(tmp_path, "a", dataset="celeba", ari=0.2)
    _summary(tmp_path, "b", dataset="proximity", ari=0.8)
    _summary(tmp_path, "c", dataset="closure", ari=0.7)
    _summary(tmp_path, "d", dataset="closure", ari=0.05, site="output")
    _summary(tmp_path, "e", dataset="closure", model="vae", ari=0.3, features="jacobian", noise=None)
    report = write_report([tmp_path])
    assert report.table.datasets == ["closure", "proximity", "celeba"]
    assert report.table.columns == ["AE", "AE (output noise)", "VAE (jacobian)"]
    assert report.table.get("closure", "AE (output noise)").mean == pytest.approx(0.05)
    assert report.table.get("proximity", "AE (output noise)") is None
    claims = (tmp_path / "claims.md").read_text()
    assert "| closure | AE | 0.700 ± 0.000 (n=1) | 0.050 ± 0.000 (n=1) | +0.650 | yes |" in claims
    assert "Not checkable: no dataset has both AE and VAE" in claims


def test_reference_column_beside_matching_variant(tmp_path):
    _summary(tmp_path / "runs", "ae", ari=0.6)
    _summary(tmp_path / "runs", "vae", model="vae", ari=0.5)
    reference = tmp_path / "paper.csv"
    reference.write_text(
        "dataset,model,ari_mean,ari_std,source\n"
        "dKanizsa,AE,0.71,0.05,paper\n"
        "kanizsa,VAE,0.66,,paper\n"
        "closure,AE,0.9,0.01,paper\n"
    )
    report = write_report([tmp_path / "runs"], reference=reference)
    assert report.table.columns == ["AE", "AE (paper)", "VAE", "VAE (paper)"]
    assert report.table.get("kanizsa", "AE (paper)").mean == pytest.approx(0.71)
    assert "| kanizsa | 0.600 ± 0.000 (n=1) | 0.710 ± 0.050 | 0.500 ± 0.000 (n=1) | 0.660 |" in report.markdown
    assert any("closure/AE (paper)" in note for note in report.notes)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("dataset,model,ari_mean\nkanizsa,AE,0.7\n", "missing"),
        ("dataset,model,ari_mean,ari_std,source\nkanizsa,AE,high,0.1,paper\n", "non-numeric"),
        ("dataset,model,ari_mean,ari_std,source\n", "no data rows"),
        ("dataset,model,ari_mean,ari_std,source\nkanizsa,AE,0.7,0.1,p\nkanizsa,ae,0.6,0.1,p\n", "repeats"),
    ],
)
def test_malformed_reference_raises(tmp_path, content, problem):
    _summary(tmp_path, "ae")
    reference = tmp_path / "ref.csv"
    reference.write_text(content)
    with pytest.raises(LNSError, match=problem):
        write_report([tmp_path], reference=reference)


def test_sensitivity_plots_and_claims(tmp_path):
    for std, ari in ((1e-4, 0.70), (1e-3, 0.72), (1e-2, 0.75), (1e-1, 0.40)):
        for seed in range(2):
            _summary(tmp_path, f"std{std}_s{seed}", std=std, num=10, ari=ari + 0.01 * seed)
    for num, ari in ((2, 0.3), (5, 0.70), (20, 0.76)):
        _summary(tmp_path, f"num{num}", std=1e-2, num=num, ari=ari)
    report = write_report([tmp_path], out=tmp_path / "report")
    for name in ("ari_vs_std.png", "ari_vs_perturb_num.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    claims = (tmp_path / "report" / "claims.md").read_text()
    assert "| kanizsa | AE | 10 | 0.0001 | 0.705 | 0.01 | 0.755 | yes |" in claims
    assert "| kanizsa | AE | 0.01 | 2, 5, 10, 20 | 0.760 | 5 |" in claims
    assert any("pools 7 settings" in note for note in report.notes)


def test_std_and_perturb_num_filters(tmp_path):
    _summary(tmp_path, "a", std=0.01, num=10, ari=0.8)
    _summary(tmp_path, "b", std=0.5, num=10, ari=0.1)
    _summary(tmp_path, "c", features="jacobian", noise=None, ari=0.4)
    report = write_report([tmp_path], std=0.01, perturb_num=10)
    assert report.table.get("kanizsa", "AE").mean == pytest.approx(0.8)
    assert report.table.get("kanizsa", "AE (jacobian)").mean == pytest.approx(0.4)
    with pytest.raises(LNSError, match="No run matches"):
        write_report([tmp_path / "a"], std=0.3)


def test_missing_or_malformed_inputs(tmp_path):
    with pytest.raises(LNSError, match="not a directory"):
        write_report([tmp_path / "absent"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(LNSError, match=r"No summary\.json"):
        write_report([tmp_path / "empty"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    with pytest.raises(LNSError, match="not readable JSON"):
        write_report([broken])
    _summary(tmp_path, "nomodel", model="gan")
    with pytest.raises(LNSError, match="'model'"):
        write_report([tmp_path / "nomodel"])
    _summary(tmp_path, "nomean", ari=None)
    with pytest.raises(LNSError, match="ari_mean"):
        write_report([tmp_path / "nomean"])


@pytest.mark.e2e
def test_cli(tmp_path):
    _summary(tmp_path / "runs", "one", ari=0.6)
    command = [sys.executable, "-m", "lns.report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "| kanizsa | 0.600 ± 0.000 (n=1) |" in done.stdout
    assert (tmp_path / "out" / "table.md").is_file()
    failed = subprocess.run([*command[:3], str(tmp_path / "nowhere")], capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert "not a directory" in failed.stderr and "Traceback" not in failed.stderr
