"""The README's paths as a newcomer takes them: from another working directory, with the data elsewhere and tiny
settings. Every workflow works out of the box, and every failure says so in one paragraph, answers before the heavy
imports where it can, and leaves nothing behind. The SLURM paths on a real cluster are in ``tests/test_slurm.py``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra.utils import instantiate

from lns.cli.refused_run import clear_refused_run
from lns.report import write_report
from lns.runs.run_lock import run_lock
from lns.runs.user_errors import user_error
from lns.segment import segment
from lns.sweeps.slurm_submission import refusal_message, sbatch_reason
from tests.helpers import REPO, compose_config, compose_with_hydra

# A run shorter than the default logging interval (50) and health start (100): what a newcomer's first try is.
SIX_STEPS = [
    "data.batch_size=8",
    "model.z_dim=4",
    "trainer.max_steps=6",
    "trainer.val_check_interval=6",
    "callbacks.checkpoint.every_n_train_steps=6",
    "~callbacks.reconstructions",
    "~callbacks.curves",
]
SEGMENT_FEW = ["test_num=3", "noise.perturb_num=6", "clustering.backend.workers=1", "figures_num=1"]
LIBRARY_NOISE = ("srun", "💡 Tip", "deprecated", "GPU available", "logging interval", "weights_only")


ENTRY_POINTS = ("run_train.py", "run_segment.py")


def command(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python <args>`` run from ``cwd``; the entry points are the repository's (``python /repo/run_train.py``)."""
    argv = [sys.executable, *(str(REPO / arg) if arg in ENTRY_POINTS else arg for arg in args)]
    environment = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run(argv, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)


def error_paragraph(result: subprocess.CompletedProcess) -> str:
    """The one ``error:`` paragraph of a failed command, unwrapped; the command must not show a traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "error: " in result.stderr, result.stderr[-3000:]
    return " ".join(result.stderr.split("error: ", 1)[1].split("\n\n", 1)[0].split())


def imported(result: subprocess.CompletedProcess) -> set[str]:
    """The modules a command run with ``python -X importtime`` imported."""
    lines = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    return set(lines)


@dataclass(frozen=True)
class ShortRun:
    cwd: Path
    run_dir: Path
    output: str


@pytest.fixture(scope="module")
def short_run(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ShortRun:
    """A six-step training run, started like the README's first command from another working directory."""
    cwd = tmp_path_factory.mktemp("newcomer")
    result = command(cwd, "run_train.py", f"paths.data_dir={tiny_data_dir}", *SIX_STEPS)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("run directory: ")]
    return ShortRun(cwd, Path(line.removeprefix("run directory: ")), result.stdout + result.stderr)


# ----------------------------------------------------------------------------------------------- a first run


@pytest.mark.e2e
def test_a_short_run_prints_absolute_paths_logs_its_last_step_and_no_library_noise(short_run: ShortRun) -> None:
    assert short_run.run_dir.is_absolute() and short_run.run_dir.parent == short_run.cwd / "outputs" / "train"
    assert [noise for noise in LIBRARY_NOISE if noise in short_run.output] == []
    with (short_run.run_dir / "logs" / "metrics.csv").open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["train/loss"]]
    assert [int(row["step"]) for row in rows] == [6]  # after the last of six steps, though the interval is 50


@pytest.mark.e2e
def test_a_run_too_short_for_the_health_checks_is_not_checked_and_the_report_says_so(
    short_run: ShortRun, tiny_data_dir: Path, tmp_path: Path
) -> None:
    health = json.loads((short_run.run_dir / "health.json").read_text())
    assert health["healthy"] is None and health["checked"] is False
    assert "ended at step 6" in health["not_checked"] and "callbacks.health.start_step" in health["not_checked"]
    assert f"Training health not checked: {health['not_checked']}." in short_run.output
    signal_shown = ["health.min_noise_response=0", "health.max_zero_fraction=1"]
    overrides = [f"run_dir={short_run.run_dir}", *SEGMENT_FEW, *signal_shown]
    summary = segment(compose_config("segment", overrides, tmp_path / "seg"))["summary"]
    assert summary["health"]["training_healthy"] is None
    assert "ended at step 6" in summary["health"]["training_not_checked"]
    report = write_report([tmp_path / "seg"])
    assert "(n=1, health not checked) |" in report.markdown
    assert "1 of these runs are marked 'health not checked'" in report.markdown


@pytest.mark.e2e
def test_network_free_methods_are_labelled_by_their_method(short_run: ShortRun, tmp_path: Path) -> None:
    overrides = [f"run_dir={short_run.run_dir}", "method=rgb", "weights=random", *SEGMENT_FEW]
    table = segment(compose_config("segment", overrides, tmp_path / "rgb"))["table"]
    row = table.splitlines()[-1]
    assert row.startswith("| kanizsa | – | test | rgb | ward |") and "weights" not in row and "AE" not in row


# ----------------------------------------------------------------------------------------------- refusals


@pytest.mark.e2e
@pytest.mark.parametrize("setting", ["trainer.max_steps=0", "trainer.max_epochs=0"])
def test_settings_that_train_nothing_are_refused_before_anything_loads_or_is_written(
    setting: str, tiny_data_dir: Path, tmp_path: Path
) -> None:
    result = command(tmp_path, "-X", "importtime", "run_train.py", f"paths.data_dir={tiny_data_dir}", setting)
    assert result.returncode == 1
    assert f"{setting} trains nothing" in error_paragraph(result)
    assert "torch" not in imported(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_a_first_run_without_data_is_told_to_generate_it_at_the_quick_start_size(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere" / "data"
    result = command(tmp_path, "run_train.py", f"paths.data_dir={data}")
    assert result.returncode == 1
    message = error_paragraph(result)
    expected = f"python -m data_gen dataset=kanizsa paths.data_dir={data} image_size=64 n_train=3000 n_valid=300"
    assert f"Generate it with `{expected} n_test=100`" in message and "Regenerate" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_a_training_refused_while_lightning_sets_it_up_leaves_no_folder(tiny_data_dir: Path, tmp_path: Path) -> None:
    result = command(tmp_path, "run_train.py", f"paths.data_dir={tiny_data_dir}", "data.batch_size=64")
    assert result.returncode == 1
    assert "is larger than the 32 training images" in error_paragraph(result)
    assert list(tmp_path.iterdir()) == []  # no .hydra/, run.lock, logs/ or run_train.log in a new run folder


@pytest.mark.e2e
@pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import torch; assert not torch.cuda.is_available()"]).returncode != 0,
    reason="this machine has a GPU",
)
def test_trainer_gpu_without_a_gpu_is_refused_in_one_paragraph(tiny_data_dir: Path, tmp_path: Path) -> None:
    result = command(tmp_path, "-X", "importtime", "run_train.py", f"paths.data_dir={tiny_data_dir}", "trainer=gpu")
    assert result.returncode == 1
    assert "asks for a GPU, but torch" in error_paragraph(result) and "trainer=cpu" in error_paragraph(result)
    assert "pytorch_lightning" not in imported(result)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_wandb_login_is_explained_with_the_offline_way() -> None:
    from wandb.errors import UsageError

    try:
        raise RuntimeError("logger failed") from UsageError("No API key configured. Use `wandb login` to log in.")
    except RuntimeError as error:
        explained = user_error(error)
    assert explained is not None and "wandb login" in str(explained) and "WANDB_MODE=offline" in str(explained)


@pytest.mark.e2e
def test_config_errors_answer_before_torch_and_lightning_load(short_run: ShortRun, tmp_path: Path) -> None:
    run = f"run_dir={short_run.run_dir}"
    missing = command(tmp_path, "-X", "importtime", "run_segment.py", f"run_dir={tmp_path / 'nowhere'}")
    assert missing.returncode == 1 and "is not a training run directory" in error_paragraph(missing)
    negative = command(tmp_path, "-X", "importtime", "run_segment.py", run, "noise.std=-1")
    assert negative.returncode == 1 and "noise.std=-1 is out of range" in error_paragraph(negative)
    assert "torch" not in imported(missing) | imported(negative)
    site = command(tmp_path, "-X", "importtime", "run_segment.py", run, "noise.site=decoder.99")
    assert site.returncode == 1 and "noise.site=decoder.99 is not a layer" in error_paragraph(site)
    assert "pytorch_lightning" not in imported(site)  # the layer names need torch, not Lightning
    assert list(tmp_path.iterdir()) == []  # no lone run_segment.log


@pytest.mark.e2e
def test_refused_data_generation_leaves_no_run_folder(tmp_path: Path) -> None:
    args = ("-m", "data_gen", "dataset=kanizsa", "paths.data_dir=data", "n_train=4", "n_valid=2", "n_test=2")
    assert command(tmp_path, *args).returncode == 0
    (record,) = (tmp_path / "outputs" / "generate").iterdir()
    assert (record / ".hydra" / "config.yaml").is_file()
    again = command(tmp_path, *args)
    assert again.returncode == 1 and str(tmp_path / "data" / "dKanizsa") in again.stderr
    assert list((tmp_path / "outputs" / "generate").iterdir()) == [record]
    misspelt = command(tmp_path / "data", "-m", "data_gen", "dataset=kanisza")
    assert misspelt.returncode == 1 and sorted(p.name for p in (tmp_path / "data").iterdir()) == ["dKanizsa"]


@pytest.mark.e2e
def test_a_refused_sweep_job_keeps_one_folder_with_error_txt_and_the_report_path_is_absolute(tmp_path: Path) -> None:
    result = command(tmp_path, "run_segment.py", "-m", f"run_dir={tmp_path / 'a'},{tmp_path / 'b'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (sweep,) = (tmp_path / "outputs" / "segment" / "multirun").iterdir()
    assert f"sweep report: {sweep / 'jobs.md'}" in result.stderr
    for job in ("0", "1"):
        assert [path.name for path in (sweep / job).iterdir()] == ["error.txt"]
        assert "is not a training run directory" in (sweep / job / "error.txt").read_text()
    assert "0 of 2 jobs finished" in (sweep / "jobs.md").read_text()


def test_only_a_folder_of_bookkeeping_that_nobody_holds_is_cleared(tmp_path: Path) -> None:
    def refused_run(name: str, *files: str) -> Path:
        folder = tmp_path / "outputs" / name
        for file in ("run_train.log", ".hydra/config.yaml", "run.lock", "logs/hparams.yaml", *files):
            (folder / file).parent.mkdir(parents=True, exist_ok=True)
            (folder / file).write_text("")
        return folder

    started = refused_run("started", "checkpoints/last.ckpt")
    assert not clear_refused_run(started, keep_error=False, stop_at=tmp_path) and started.is_dir()
    held = refused_run("held")
    with run_lock(held):
        assert not clear_refused_run(held, keep_error=False, stop_at=tmp_path) and held.is_dir()
    assert clear_refused_run(held, keep_error=False, stop_at=tmp_path) and not held.exists()
    in_sweep = refused_run("sweep/0", "error.txt")
    assert clear_refused_run(in_sweep, keep_error=True, stop_at=tmp_path)
    assert [path.name for path in in_sweep.iterdir()] == ["error.txt"]


# ----------------------------------------------------------------------------------------------- the report


def write_summary(folder: Path, *, ari: float, site: str = "latent", health: dict | None = None, **extra) -> Path:
    folder.mkdir(parents=True)
    data = {
        "dataset": "kanizsa",
        "model": "ae",
        "features": "noise",
        "ari_mean": ari,
        "noise": {"std": 0.001, "perturb_num": 40, "site": site},
        "health": health,
        **extra,
    }
    (folder / "summary.json").write_text(json.dumps(data))
    return folder


NO_SIGNAL = {"signal": False, "training_healthy": None}
NOT_CHECKED = {"signal": True, "training_healthy": None, "training_not_checked": "the run ended at step 6"}


def test_table_csv_carries_the_marks_that_table_md_shows(tmp_path: Path) -> None:
    write_summary(tmp_path / "runs" / "a", ari=0.0, health=NO_SIGNAL)
    write_summary(tmp_path / "runs" / "b", ari=0.4, health=NOT_CHECKED)
    write_summary(tmp_path / "runs" / "c", ari=0.1, site="output")
    report = write_report([tmp_path / "runs"])
    assert "| kanizsa | 0.200 ± 0.200 (n=2, 1 no signal, 1 health not checked) | 0.100 ± 0.000 (n=1) |" in (
        report.markdown
    )
    with (tmp_path / "runs" / "table.csv").open(newline="") as file:
        (row,) = csv.DictReader(file)
    assert row["AE marks"] == "1 no signal; 1 health not checked" and row["AE (output noise) marks"] == ""


@pytest.mark.e2e
def test_a_report_over_several_folders_leaves_their_own_reports_alone(tmp_path: Path) -> None:
    sweeps = [write_summary(tmp_path / "sweeps" / name / "0", ari=0.5).parent for name in ("a", "b")]
    for sweep in sweeps:
        (sweep / "table.md").write_text("the sweep's own report\n")
    work = tmp_path / "work"
    work.mkdir()
    result = command(work, "-m", "lns.report", *map(str, sweeps))
    assert result.returncode == 0, result.stderr[-2000:]
    assert all((sweep / "table.md").read_text() == "the sweep's own report\n" for sweep in sweeps)
    (out,) = (work / "outputs" / "report").iterdir()
    assert f"wrote {out / 'table.md'}, {out / 'table.csv'}" in result.stdout
    assert "(n=2)" in (out / "table.md").read_text()


def test_claims_say_which_runs_were_left_out_and_why(tmp_path: Path) -> None:
    write_summary(tmp_path / "latent", ari=0.0, health=NO_SIGNAL)
    write_summary(tmp_path / "output", ari=0.1, site="output")
    write_report([tmp_path])
    claims = (tmp_path / "claims.md").read_text()
    section = claims.split("## 2.", 1)[1].split("## 3.", 1)[0]
    assert "no dataset has both" not in section
    assert "left out because their model learned nothing (kanizsa AE: no signal, 1 of 1 run)" in section


def test_ari_vs_depth_is_drawn_only_when_a_site_inside_the_network_was_run(tmp_path: Path) -> None:
    write_summary(tmp_path / "runs" / "latent", ari=0.5)
    write_summary(tmp_path / "runs" / "output", ari=0.0, site="output")
    assert not any(path.name == "ari_vs_depth.png" for path in write_report([tmp_path / "runs"]).files)
    write_summary(tmp_path / "runs" / "inner", ari=0.3, site="decoder.5")
    assert tmp_path / "runs" / "ari_vs_depth.png" in write_report([tmp_path / "runs"]).files


# ----------------------------------------------------------------------------------------------- SLURM settings


def test_slurm_jobs_ask_for_what_the_trainer_uses_and_no_fixed_memory() -> None:
    cpu = compose_with_hydra("train", ["launcher=slurm"]).hydra.launcher
    assert (cpu.gpus_per_node, cpu.cpus_per_task, cpu.mem_gb, cpu.tasks_per_node) == (0, 4, None, 1)
    gpu = compose_with_hydra("train", ["launcher=slurm", "trainer=ddp", "trainer.devices=2"]).hydra.launcher
    assert (gpu.gpus_per_node, gpu.cpus_per_task, gpu.tasks_per_node) == (2, 8, 2)
    segmentation = compose_with_hydra("segment", ["launcher=slurm"]).hydra.launcher
    assert segmentation.gpus_per_node == 0
    callback = compose_with_hydra("train", ["launcher=slurm"]).hydra.callbacks.refused_submission
    assert type(instantiate(callback)).__name__ == "ExplainRefusedSubmission"


def test_a_refused_submission_names_sbatch_reason_and_the_key_to_change(tmp_path: Path) -> None:
    from submitit.core.utils import FailedJobError

    reason = "sbatch: error: Memory specification can not be satisfied"
    refused = subprocess.CalledProcessError(1, ["sbatch", "job.sh"], output="", stderr=reason)
    try:
        raise FailedJobError(reason) from refused
    except FailedJobError as error:
        found = sbatch_reason(error)
    assert found == "Memory specification can not be satisfied"
    message = refusal_message(found, tmp_path)
    assert f'"{found}"' in message and "hydra.launcher.mem_gb" in message and str(tmp_path) in message
    assert sbatch_reason(FailedJobError("a job failed")) is None
