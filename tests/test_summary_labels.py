"""One description of a segmentation's method labels it everywhere: the printed table row and the report's column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lns.cli.segment_folder import _table as folder_table
from lns.report.collect import read_summary
from lns.report.summary import column_label, format_table, method_record, scores

SUMMARY = {
    "dataset": "kanizsa",
    "model": "ae",
    "split": "test",
    "clustering": "ward",
    "features": "activations",
    "method": {"name": "activations", "uses_model": True, "layer": "decoder.14", "upsample": "bilinear"},
    "weights": {"name": "random", "seed": 3},
    "ari_mean": 0.5,
    "ari_std": 0.1,
    "ari_fg_mean": None,
    "ari_fg_std": None,
    "n_images": 4,
}


def test_the_table_row_and_the_report_column_label_one_summary_alike(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(SUMMARY))
    row = format_table(SUMMARY).splitlines()[-1]
    assert row == (
        "| kanizsa | AE | test | activations layer=decoder.14 upsample=bilinear, random weights seed 3 | ward | 4 "
        "| 0.500 ± 0.100 | n/a |"
    )
    assert (
        read_summary(path).variant
        == column_label(method_record(SUMMARY))
        == "AE (activations decoder.14, random weights)"
    )


def test_network_free_methods_name_neither_model_nor_weights() -> None:
    summary = {**SUMMARY, "features": "rgb", "method": {"name": "rgb", "uses_model": False}}
    assert "| – | test | rgb | ward |" in format_table(summary)
    assert column_label(method_record(summary)) == "rgb"


def test_both_tables_name_lns_autoencoders_in_capitals_and_any_other_model_by_its_class_name() -> None:
    method = "activations layer=decoder.14 upsample=bilinear, random weights seed 3"
    for model, label in [("ae", "AE"), ("vae", "VAE"), ("MyModel", "MyModel"), ("DiffusersKL", "DiffusersKL")]:
        summary = {**SUMMARY, "model": model}
        assert f"| kanizsa | {label} | test | {method} | ward |" in format_table(summary)
        assert column_label(method_record(summary)) == f"{label} (activations decoder.14, random weights)"
        pictures = {**summary, "images": "/home/me/pictures"}  # folder_summary.json: pictures, no dataset or split
        assert f"| /home/me/pictures | {label} | {method} | ward | 4 |" in folder_table(pictures)


def test_scores_leave_the_foreground_score_out_where_no_image_has_a_foreground() -> None:
    values = scores(np.array([0.2, 0.4]), np.array([np.nan, np.nan]), 2)
    assert values["ari_mean"] == pytest.approx(0.3) and values["ari_std"] == pytest.approx(0.1)
    assert (values["ari_fg_mean"], values["ari_fg_std"], values["n_images"]) == (None, None, 2)
