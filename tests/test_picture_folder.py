"""run_segment.py images=<folder>: a folder of one's own PNG/JPEG pictures, with or without masks."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lns.cli.images_argument import images_argument
from lns.cli.segment_folder import segment_picture_folder
from lns.data.image_folder import read_masks, read_pictures
from lns.data.npz import load_split
from lns.errors import LNSError
from tests.helpers import LAST, REPO, compose_config

FAST = ["noise.perturb_num=4", "clustering.backend.workers=1", "batch_size=2"]


def write_pictures(folder: Path, images: np.ndarray, masks: np.ndarray | None = None) -> list[str]:
    """The images (N, 3, H, W) as PNG pictures pic0.png, ... (and the masks as 8-bit PNGs of the same names)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"pic{i}" for i in range(len(images))]
    for i, name in enumerate(names):
        rgb = np.round(images[i].transpose(1, 2, 0) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{name}.png")
        if masks is not None:
            Image.fromarray(masks[i].astype(np.uint8)).save(folder.parent / "masks" / f"{name}.png")
    return names


@pytest.fixture
def pictures(tiny_data_dir: Path, tmp_path: Path) -> tuple[Path, np.ndarray]:
    test = load_split(tiny_data_dir / "dKanizsa", "test")
    (tmp_path / "masks").mkdir()
    write_pictures(tmp_path / "pictures", test.images[:3], test.masks[:3])
    return tmp_path / "pictures", test.masks[:3]


@pytest.mark.e2e
def test_a_folder_of_pngs_segments_without_masks_from_any_directory(
    trained_run: Path, pictures: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    folder, _ = pictures
    out = tmp_path / "seg"
    command = [sys.executable, str(REPO / "run_segment.py"), f"run_dir={trained_run}", f"images={folder}"]
    command += ["n_clusters=3", f"hydra.run.dir={out}", *FAST]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = np.load(out / "labels.npz")
    assert saved["labels"].shape == (3, 64, 64) and saved["names"].tolist() == ["pic0", "pic1", "pic2"]
    assert sorted(path.name for path in (out / "pictures").iterdir()) == ["pic0.png", "pic1.png", "pic2.png"]
    summary = json.loads((out / "folder_summary.json").read_text())
    assert summary["ari_mean"] is None and summary["n_clusters"] == [3, 3, 3]
    assert not (out / "per_picture.csv").exists()


def test_masks_give_each_picture_its_count_and_an_ari(
    trained_run: Path, pictures: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    folder, masks = pictures
    overrides = [f"run_dir={trained_run}", f"images.folder={folder}", f"masks={folder.parent / 'masks'}", *FAST]
    result = segment_picture_folder(compose_config("segment", overrides, tmp_path / "seg"))
    with open(tmp_path / "seg" / "per_picture.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["n_clusters"]) for row in rows] == [len(np.unique(mask)) for mask in masks]
    assert result["summary"]["ari_mean"] == pytest.approx(np.mean([float(row["ari"]) for row in rows]), abs=1e-6)
    assert "| ARI |" in result["table"]


def test_the_folder_table_labels_like_a_dataset_run_and_the_checkpoint_is_stored_absolute(
    trained_run: Path, pictures: tuple[Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = pictures
    monkeypatch.chdir(trained_run.parent)
    overrides = [f"run_dir={trained_run.name}", f"images.folder={folder}", "n_clusters=3", *FAST]
    result = segment_picture_folder(compose_config("segment", overrides, tmp_path / "seg"))
    assert f"| {folder.resolve()} | AE | latent σ=0.001 T=4 | ward | 3 |" in result["table"]
    summary = json.loads((tmp_path / "seg" / "folder_summary.json").read_text())
    assert summary["checkpoint"] == str((trained_run / LAST).resolve())


def test_picture_errors_name_the_file_and_the_fix(pictures: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder, _ = pictures
    Image.new("RGB", (32, 32)).save(folder / "small.png")
    with pytest.raises(LNSError, match=r"small.png is 32x32 pixels, but the model takes 64x64.*images.resize=true"):
        read_pictures(folder, size=64)
    assert read_pictures(folder, size=64, resize=True).images.shape == (4, 3, 64, 64)
    (folder / "broken.png").write_bytes(b"not a picture")
    with pytest.raises(LNSError, match=r"broken.png cannot be read as a picture"):
        read_pictures(folder, size=64, resize=True)
    with pytest.raises(LNSError, match=r"no mask for 1 picture\(s\), e.g. small"):
        read_masks(folder.parent / "masks", ["pic0", "small"], size=64)
    with pytest.raises(LNSError, match="holds no PNG or JPEG file"):
        read_pictures(tmp_path, size=64)


def test_colour_masks_number_their_colours_with_black_as_background(tmp_path: Path) -> None:
    colours = np.zeros((4, 4, 3), np.uint8)
    colours[:2, :2] = (255, 0, 0)
    colours[2:, 2:] = (0, 0, 255)
    Image.fromarray(colours).save(tmp_path / "a.png")
    labels = read_masks(tmp_path, ["a"], size=4)[0]
    assert labels[3, 0] == 0 and len(np.unique(labels)) == 3 and labels[0, 0] != labels[3, 3]


def test_images_on_the_command_line_means_the_folder() -> None:
    argv = ["run_segment.py", "images=/data/mine", "images.resize=true", "masks=/data/m"]
    assert images_argument(argv) == [
        "run_segment.py",
        "images.folder=/data/mine",
        "images.resize=true",
        "masks=/data/m",
    ]
