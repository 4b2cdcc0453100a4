"""The former name of the method group, ``features``, still works on the command line, with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import initialize_config_dir

from lns.cli.renamed_keys import renamed_arguments
from lns.sweeps.final_segmentation import segmentation_configs
from lns.sweeps.renamed_settings import renamed_settings
from tests.helpers import CONF, compose_config


def test_features_on_the_command_line_is_read_as_method(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run_segment.py", "-m", "features=rgb,slic", "features.workers=1", "+features.x=2", "noise.std=0.1"]
    assert renamed_arguments(argv) == [
        "run_segment.py",
        "-m",
        "method=rgb,slic",
        "method.workers=1",
        "+method.x=2",
        "noise.std=0.1",
    ]
    assert capsys.readouterr().err.count("\n") == 1
    train = ["run_train.py", "segment=all", "segment.jobs.jacobian.features=noise", "experiment_name=features=x"]
    assert renamed_arguments(train)[2:] == ["segment.jobs.jacobian.method=noise", "experiment_name=features=x"]
    capsys.readouterr()
    unchanged = ["run_segment.py", "method=rgb", "hydra.run.dir=outputs/features", "segment.jobs.features=1"]
    assert renamed_arguments(unchanged) == unchanged and capsys.readouterr().err == ""


def test_a_segment_job_that_names_features_segments_with_that_method(tmp_path: Path) -> None:
    assert renamed_settings({"method": "noise", "features": "rgb"}, "segment.jobs.x") == {"method": "rgb"}
    cfg = compose_config("train", ["segment=paper", "+segment.jobs.paper.features=jacobian"], tmp_path)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        configs = segmentation_configs(cfg, tmp_path)
    assert configs["paper"].method.name == "jacobian"
