"""End-to-end segmentation: run_segment.py on a trained run and on an authors' checkpoint, outputs, resume."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from lns.data.npz import load_split
from lns.models import Autoencoder, write_authors_checkpoint
from lns.segment import segment
from lns.segmentation.clustering import WardClustering
from lns.segmentation.features import image_generators, noise_features
from lns.segmentation.source import load_source
from tests.helpers import LAST, REPO, TINY_SEGMENT, compose_config


def run_segment_cli(data_dir: Path, out_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "run_segment.py",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out_dir}",
        *overrides,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_segmenting_a_training_run_writes_every_output(trained_run: Path, tiny_data_dir: Path, tmp_path: Path):
    out = tmp_path / "seg"
    result = run_segment_cli(
        tiny_data_dir, out, f"run_dir={trained_run}", *TINY_SEGMENT, "umap_num=1", "umap_neighbors=15"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| kanizsa | AE | test |" in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    for key in ("ari_mean", "ari_std", "ari_fg_mean", "ari_fg_std"):
        assert isinstance(summary[key], float)
    assert summary["n_images"] == 4
    assert summary["noise"] == {"std": 0.001, "perturb_num": 6, "site": "latent", "relative": False}
    assert (summary["dataset"], summary["model"], summary["clustering"]) == ("kanizsa", "ae", "ward")

    with open(out / "per_image.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["index"] for row in rows] == ["0", "1", "2", "3"]
    assert set(rows[0]) == {"index", "ari", "ari_fg", "n_clusters"}
    assert np.isclose(np.mean([float(r["ari"]) for r in rows]), summary["ari_mean"], atol=1e-5)
    assert {row["n_clusters"] for row in rows} == {"3"}

    predictions = np.load(out / "predictions.npz")
    assert predictions["labels"].shape == (4, 64, 64)
    assert predictions["reconstructions"].shape == (4, 3, 64, 64)
    assert predictions["index"].tolist() == [0, 1, 2, 3]
    assert (out / "figures" / "segmentations.png").stat().st_size > 0
    assert (out / "figures" / "umap_0000.png").stat().st_size > 0


def reference_tester_labels(model: Autoencoder, image: torch.Tensor, k: int, generator) -> np.ndarray:
    """The authors' tester: one image and one perturbation at a time, then sklearn's ward."""
    with torch.no_grad():
        mean = model.latent_mean(image[None])
        noise = torch.randn(6, mean.shape[1], generator=generator, dtype=mean.dtype)
        decodings = torch.cat([torch.sigmoid(model.decode(mean + 1e-3 * noise[t : t + 1])) for t in range(6)])
    differences = decodings[:-1] - decodings[1:]
    differences = differences / differences.norm(dim=0, keepdim=True).clamp_min(1e-12)
    features = differences.permute(2, 3, 1, 0).reshape(64 * 64, -1).numpy()
    return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(features)


@pytest.fixture
def authors_checkpoint(tmp_path: Path) -> tuple[Path, Autoencoder]:
    torch.manual_seed(3)
    model = Autoencoder(z_dim=5, variational=True).eval()
    checkpoint = tmp_path / "authors.pth"
    flags = {"model": "BetaVAE_model", "z_dim": 5, "dataset": "dKanizsa", "lr": 5e-5, "g_goal": 0.0006}
    write_authors_checkpoint(checkpoint, model, step=1234, geco={"beta": 0.5, "err_ema": 10.0}, flags=flags)
    return checkpoint, model


@pytest.mark.e2e
def test_run_segment_takes_an_authors_checkpoint(authors_checkpoint, tiny_data_dir: Path, tmp_path: Path) -> None:
    checkpoint, _ = authors_checkpoint
    out = tmp_path / "seg"
    result = run_segment_cli(tiny_data_dir, out, f"ckpt_path={checkpoint}", *TINY_SEGMENT)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["dataset"], summary["model"], summary["z_dim"]) == ("kanizsa", "vae", 5)
    assert summary["run_dir"] is None
    assert summary["health"]["resolved"] is True  # an authors'-format model in float32: no false alarm


def test_pipeline_on_authors_weights_equals_their_one_image_tester(authors_checkpoint, tiny_data_dir: Path):
    """Same weights, same noise draws: identical label maps.

    Float64 keeps batched and single decoding equal; in float32 at sigma=1e-3 rounding alone moves ward's
    near-ties, as between two runs of the authors' code.
    """
    checkpoint, written = authors_checkpoint
    source = load_source(None, checkpoint)
    for name, tensor in written.state_dict().items():
        torch.testing.assert_close(source.model.state_dict()[name], tensor, rtol=0, atol=0)
    model = source.model.double().eval()
    test = load_split(tiny_data_dir / "dKanizsa", "test")
    images = torch.from_numpy(test.images[:3]).double()
    counts = [len(np.unique(mask)) for mask in test.masks[:3]]
    with torch.no_grad():
        means = model.latent_mean(images)
    features = noise_features(
        model.decode, means, std=1e-3, perturb_num=6, generators=image_generators(range(3), 0, "cpu")
    )
    labels = WardClustering(workers=1)(features, counts)
    for i, generator in enumerate(image_generators(range(3), 0, "cpu")):
        expected = reference_tester_labels(model, images[i], counts[i], generator)
        assert adjusted_rand_score(expected, labels[i]) == 1.0


@pytest.mark.e2e
def test_interrupted_segmentation_resumes_without_recomputing(trained_run: Path, tiny_data_dir: Path, tmp_path):
    out = tmp_path / "seg"
    first = run_segment_cli(tiny_data_dir, out, f"run_dir={trained_run}", *TINY_SEGMENT)
    assert first.returncode == 0, first.stderr[-3000:]
    complete = np.load(out / "predictions.npz")["labels"]

    (out / "summary.json").unlink()
    (out / "parts" / "part-000003.npz").unlink()
    done_before = (out / "parts" / "part-000000.npz").stat().st_mtime_ns
    again = run_segment_cli(tiny_data_dir, out, f"run_dir={trained_run}", *TINY_SEGMENT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "parts" / "part-000000.npz").stat().st_mtime_ns == done_before
    np.testing.assert_array_equal(np.load(out / "predictions.npz")["labels"], complete)


@pytest.mark.e2e
def test_finished_results_are_never_overwritten(trained_run: Path, tiny_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    assert run_segment_cli(tiny_data_dir, out, f"run_dir={trained_run}", *TINY_SEGMENT).returncode == 0
    again = run_segment_cli(tiny_data_dir, out, f"run_dir={trained_run}", *TINY_SEGMENT)
    assert again.returncode == 1
    assert "nothing was overwritten" in again.stderr


@pytest.mark.e2e
def test_resuming_with_other_settings_is_refused(trained_run: Path, tiny_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    assert run_segment_cli(tiny_data_dir, out, f"run_dir={trained_run}", *TINY_SEGMENT).returncode == 0
    (out / "summary.json").unlink()
    other = run_segment_cli(tiny_data_dir, out, f"run_dir={trained_run}", *TINY_SEGMENT, "noise.std=0.01")
    assert other.returncode == 1
    assert "other settings" in other.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["noise.std=0"], "noise.std=0"),
        (["noise.perturb_num=1"], "noise.perturb_num takes a whole number ≥ 2"),
        (["noise.site=decoder.99"], "noise.site=decoder.99 is not a layer"),
        (["method=jacobian", "method.directions=0"], "method.directions=0 is out of range"),
        (["test_num=99"], "holds 6 images"),
        (["split=train"], "split takes one of test_1, test"),
        (["n_clusters=1.5"], "n_clusters=1.5 is not a whole number"),
        (["noise.std=abc"], "noise.std='abc' is not a finite number"),
    ],
)
@pytest.mark.e2e
def test_bad_settings_fail_with_one_paragraph(
    trained_run: Path, tiny_data_dir: Path, tmp_path: Path, overrides: list[str], message: str
) -> None:
    result = run_segment_cli(tiny_data_dir, tmp_path / "seg", f"run_dir={trained_run}", *TINY_SEGMENT, *overrides)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_checkpoint_that_does_not_fit_the_config_is_explained(trained_run: Path, tiny_data_dir: Path, tmp_path):
    model = Autoencoder(z_dim=5)
    checkpoint = tmp_path / "authors.pth"
    write_authors_checkpoint(checkpoint, model, step=1, flags={"model": "AE_model", "z_dim": 5})
    result = run_segment_cli(
        tiny_data_dir,
        tmp_path / "seg",
        f"ckpt_path={checkpoint}",
        "data=kanizsa",
        "+model.z_dim=15",
        *TINY_SEGMENT,
    )
    assert result.returncode == 1
    assert "z_dim" in result.stderr


@pytest.mark.e2e
def test_label_maps_do_not_depend_on_batch_size(trained_run: Path, tiny_data_dir: Path, tmp_path: Path) -> None:
    labels = {}
    for batch_size in (1, 4):
        overrides = [f"run_dir={trained_run}", f"paths.data_dir={tiny_data_dir}", *TINY_SEGMENT]
        cfg = compose_config("segment", [*overrides, f"batch_size={batch_size}"], tmp_path / f"b{batch_size}")
        segment(cfg)
        labels[batch_size] = np.load(tmp_path / f"b{batch_size}" / "predictions.npz")["labels"]
    np.testing.assert_array_equal(labels[1], labels[4])


@pytest.mark.e2e
def test_float64_precision_is_recorded_and_segments(trained_run: Path, tiny_data_dir: Path, tmp_path: Path) -> None:
    overrides = [f"run_dir={trained_run}", f"paths.data_dir={tiny_data_dir}", *TINY_SEGMENT, "precision=float64"]
    result = segment(compose_config("segment", overrides, tmp_path))
    assert result["summary"]["precision"] == "float64"
    assert result["summary"]["n_images"] == 4


def test_trainer_enable_progress_bar_false_silences_every_bar_and_stored_paths_are_absolute(
    trained_run: Path, tiny_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    monkeypatch.chdir(trained_run.parent)
    overrides = [f"run_dir={trained_run.name}", f"paths.data_dir={tiny_data_dir}", *TINY_SEGMENT]
    overrides += ["umap_num=2", "umap_neighbors=15", "trainer.enable_progress_bar=false"]
    segment(compose_config("segment", overrides, tmp_path / "seg"))
    printed = capfd.readouterr().err
    assert "Testing" not in printed and "UMAP" not in printed
    summary = json.loads((tmp_path / "seg" / "summary.json").read_text())
    assert summary["run_dir"] == str(trained_run.resolve())
    assert summary["checkpoint"] == str((trained_run / LAST).resolve())
