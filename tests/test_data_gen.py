"""The dataset generator: Pillow-identical geometry, the spec's shapes and colours, determinism, safety."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from data_gen import raster
from data_gen.common import compose
from data_gen.generate import MODULES, Request, generate, parse_datasets, plan_splits, render
from lns.data.catalog import DATASETS, GG_DATASETS, dataset_dir
from lns.data.npz import SPLITS, load_split
from lns.errors import LNSError

REPO = Path(__file__).resolve().parents[1]
COUNTS = {"n_train": 16, "n_valid": 4, "n_test": 16}
TEST_LABELS = {
    "closure": {0, 1},
    "continuity": {0, 1},
    "illusory_occlusion": {0, 1},
    "gradient_occlusion": {0, 1, 2},
    "kanizsa": {0, 1, 2},
    "proximity": {0, 1, 2, 3},
}
DETAILED = {"closure", "illusory_occlusion", "gradient_occlusion"}


def _request(data_dir: Path, *names: str, **changes: object) -> Request:
    return Request(datasets=names, data_dir=data_dir, **{**COUNTS, **changes})


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All six datasets at tiny sizes (64x64)."""
    data_dir = tmp_path_factory.mktemp("gg")
    generate(_request(data_dir, *GG_DATASETS), progress=False)
    return data_dir


# ----------------------------------------------------------------------------------------------- raster


def _pillow(draw: object) -> np.ndarray:
    image = Image.new("L", (256, 256), 0)
    draw(ImageDraw.Draw(image))
    return np.asarray(image) > 0


def test_raster_matches_pillow_pixel_for_pixel() -> None:
    rng = np.random.default_rng(7)
    grid = raster.Grid.sampled(256)
    for h, w, stroke in [(48, 48, 24), (160, 160, 10), (31, 58, 4), (9, 7, 2)]:
        for _ in range(8):
            top, left = (int(v) for v in rng.integers(-h, 256, 2))
            start = int(rng.integers(0, 361))
            end = start + int(rng.choice([30, 100, 250, 360]))
            box = ((left, top), (left + w - 1, top + h - 1))
            arc = _pillow(lambda d, box=box, s=start, e=end, w=stroke: d.arc(box, start=s, end=e, fill=255, width=w))
            ours = raster.arcs(grid, np.array([top]), np.array([left]), h, w, stroke, start, end)[0]
            np.testing.assert_array_equal(ours, arc, err_msg=f"arc {h}x{w}/{stroke} at {top},{left} {start}..{end}")
            disc = _pillow(lambda d, box=box: d.ellipse(box, fill=255))
            np.testing.assert_array_equal(raster.ellipses(grid, np.array([top]), np.array([left]), h, w)[0], disc)
    for _ in range(10):
        (r0, c0), (r1, c1) = rng.integers(-20, 276, (2, 2)).tolist()
        width = int(rng.integers(2, 14))
        line = _pillow(lambda d, p=(c0, r0, c1, r1), w=width: d.line([p[:2], p[2:]], fill=255, width=w))
        np.testing.assert_array_equal(
            raster.thick_lines(grid, np.array([[r0, c0]]), np.array([[r1, c1]]), width)[0], line
        )
    rect = _pillow(lambda d: d.rectangle(((10, 20), (49, 99)), fill=255))
    np.testing.assert_array_equal(raster.rectangles(grid, np.array([20]), np.array([10]), 80, 40)[0], rect)


def test_sampled_grid_equals_subsampled_canvas() -> None:
    rng = np.random.default_rng(3)
    top, left = rng.integers(-100, 200, (2, 12))
    start = rng.integers(0, 361, 12)
    full = raster.arcs(raster.Grid.sampled(256), top, left, 160, 160, 10, start, start + 30)
    sampled = raster.arcs(raster.Grid.sampled(256, 4), top, left, 160, 160, 10, start, start + 30)
    np.testing.assert_array_equal(sampled, full[:, ::4, ::4])


# ----------------------------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", GG_DATASETS)
def test_files_shapes_dtypes_and_labels(generated: Path, name: str) -> None:
    folder = dataset_dir(generated, name)
    manifest = json.loads((folder / "manifest.json").read_text())
    counts = {"train": 16, "valid": 4, "test_1": 16, "test": 16}
    for split in SPLITS:
        with np.load(folder / f"{split}.npz") as raw:
            keys = {"images"} if split in ("train", "valid") else {"images", "masks"}
            assert set(raw.files) == keys | (
                {"detailed_masks"} if split in ("test_1", "test") and _has_detailed(name, split) else set()
            )
            images = raw["images"]
            assert images.dtype == np.float32 and images.shape == (counts[split], 3, 64, 64)
            assert images.min() >= 0 and images.max() <= 1
            if "masks" in raw.files:
                assert raw["masks"].dtype == np.uint8 and raw["masks"].shape == (counts[split], 64, 64)
        entry = manifest["splits"][split]
        assert entry["count"] == counts[split]
        assert entry["sha256"] == hashlib.sha256((folder / f"{split}.npz").read_bytes()).hexdigest()
    assert set(np.unique(load_split(folder, "test").masks)) == TEST_LABELS[name]
    for figure in manifest["figures"]:
        assert (folder / figure).stat().st_size > 0
    assert not list(generated.glob(".*"))  # no temporary folders left behind


def _has_detailed(name: str, split: str) -> bool:
    return name in DETAILED or (name == "continuity" and split == "test")


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path: Path, generated: Path) -> None:
    generate(_request(tmp_path / "again", "kanizsa", "continuity"), progress=False)
    generate(_request(tmp_path / "other", "kanizsa", seed=7, test_seed=8), progress=False)
    for name in ("kanizsa", "continuity"):
        for split in SPLITS:
            first = (dataset_dir(generated, name) / f"{split}.npz").read_bytes()
            assert (dataset_dir(tmp_path / "again", name) / f"{split}.npz").read_bytes() == first
    for split in SPLITS:
        other = (dataset_dir(tmp_path / "other", "kanizsa") / f"{split}.npz").read_bytes()
        assert other != (dataset_dir(generated, "kanizsa") / f"{split}.npz").read_bytes()


@pytest.mark.parametrize("name", GG_DATASETS)
def test_chunking_does_not_change_the_output(name: str) -> None:
    module = MODULES[name]
    request = _request(Path("unused"), name)
    for split, params in plan_splits(module, request).items():
        whole = list(render(module, params, split, 64, chunk=64))
        pieces = list(render(module, params, split, 64, chunk=3))
        for key in ("images", "masks", "detailed_masks"):
            joined = [getattr(c, key) for c in pieces]
            if joined[0] is None:
                assert getattr(whole[0], key) is None
                continue
            np.testing.assert_array_equal(np.concatenate(joined), getattr(whole[0], key))


def _values(images: np.ndarray) -> np.ndarray:
    values = np.unique(images)
    return values[values != 0]


@pytest.mark.parametrize("name", GG_DATASETS)
def test_splits_never_share_a_colour_value(generated: Path, name: str) -> None:
    folder = dataset_dir(generated, name)
    train, valid = (_values(load_split(folder, s).images) for s in ("train", "valid"))
    test = np.union1d(_values(load_split(folder, "test_1").images), _values(load_split(folder, "test").images))
    for first, second in ((train, valid), (train, test), (valid, test)):
        assert np.intersect1d(first, second).size == 0


# ----------------------------------------------------------------------------------------------- colours


def _region(images: np.ndarray, labels: np.ndarray, label: int) -> np.ndarray:
    """The single colour (n, 3) of ``label`` in each image (NaN where absent); asserts it is uniform."""
    colours = np.full((len(images), 3), np.nan)
    for i, (image, mask) in enumerate(zip(images, labels, strict=True)):
        pixels = image[:, mask == label]
        if pixels.size:
            assert (pixels == pixels[:, :1]).all(), f"label {label} is not one colour in image {i}"
            colours[i] = pixels[:, 0]
    return colours


def _in_range(colours: np.ndarray, low: float, high: float) -> None:
    present = colours[~np.isnan(colours).any(axis=1)]
    integers = np.round(present * 255)
    np.testing.assert_allclose(present * 255, integers, atol=1e-3)
    assert integers.min() >= np.ceil(low * 255) and integers.max() <= np.floor(high * 255)


def _ratio(part: np.ndarray, whole: np.ndarray, ratio: object) -> None:
    """part == float32(whole_n / 255 * ratio) exactly, whole being a stored n / 255 colour."""
    present = ~np.isnan(part).any(axis=1) & ~np.isnan(whole).any(axis=1)
    expected = (np.round(whole[present].astype(np.float64) * 255) / 255 * np.asarray(ratio)).astype(np.float32)
    np.testing.assert_array_equal(part[present].astype(np.float32), expected)


def _split(generated: Path, name: str, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    arrays = load_split(dataset_dir(generated, name), split)
    return arrays.images, arrays.masks, arrays.detailed_masks


def test_closure_colours(generated: Path) -> None:
    images, _, parts = _split(generated, "closure", "test_1")
    background, outline, interior = (_region(images, parts, k) for k in range(3))
    _in_range(background, 0, 4 / 7)
    _in_range(interior, 3 / 7, 1)
    _ratio(outline, interior, (0.4, 0.5, 0.7))
    images, masks, parts = _split(generated, "closure", "test")
    assert (masks == (parts > 0)).all()
    for image in images:  # one shared colour c, plus the outline c x ratio (blockiness moves it by a pixel)
        colours, counts = np.unique(image.reshape(3, -1), axis=1, return_counts=True)
        shared = colours[:, counts.argmax()]
        _in_range(shared[None], 3 / 7, 4 / 7)
        assert colours.shape[1] == 2
        _ratio(colours[:, counts.argmin()][None], shared[None], (0.4, 0.5, 0.7))


def test_continuity_colours(generated: Path) -> None:
    images, masks, _ = _split(generated, "continuity", "test_1")
    _in_range(_region(images, masks, 0), 6 / 7, 1)
    _in_range(_region(images, masks, 1), 0, 5 / 7)
    images, masks, parts = _split(generated, "continuity", "test")
    assert set(np.unique(parts)) == {0, 1, 2} and ((parts > 0) == (masks == 1)).all()
    assert 0.35 < (parts == 2).sum() / (parts > 0).sum() < 0.65  # six 30-degree dashes: half the path


def test_illusory_occlusion_colours(generated: Path) -> None:
    images, _, parts = _split(generated, "illusory_occlusion", "test_1")
    background, stripes, square, cross = (_region(images, parts, k) for k in range(4))
    _in_range(background, 0, 5 / 7)
    _in_range(square, 2 / 7, 1)
    _ratio(stripes, background, (0.2, 0.6, 0.3))
    _ratio(cross, square, (0.8, 0.7, 0.3))
    images, _, parts = _split(generated, "illusory_occlusion", "test")
    background, square, cross = (_region(images, parts, k) for k in (0, 2, 3))
    hidden_square = (background == square).all(axis=1)
    hidden_cross = (background == cross).all(axis=1)
    assert (hidden_square ^ hidden_cross).all() and hidden_square.any() and hidden_cross.any()


def test_gradient_occlusion_colours(generated: Path) -> None:
    images, masks, parts = _split(generated, "gradient_occlusion", "test_1")
    _in_range(_region(images, masks, 0), 6 / 7, 1)
    _in_range(_region(images, masks, 1), 3 / 7, 5 / 7)
    assert set(np.unique(parts)) <= {0, 1, 2, 3} and ((parts == 1) | (parts == 3) == (masks == 1)).all()
    images, masks, parts = _split(generated, "gradient_occlusion", "test")
    assert (parts == 3).any(axis=(1, 2)).all()  # the test bars always overlap
    row_means = [image[:, mask == 2].reshape(3, -1) for image, mask in zip(images, masks, strict=True)]
    assert all(values.min() < values.max() for values in row_means)  # the back bar carries a gradient


def test_kanizsa_colours(generated: Path) -> None:
    images, masks, _ = _split(generated, "kanizsa", "test_1")
    _in_range(_region(images, masks, 0), 5 / 7, 6 / 7)
    _in_range(_region(images, masks, 1), 2 / 7, 3 / 7)
    _in_range(_region(images, masks, 2), 5 / 7, 1)
    images, masks, _ = _split(generated, "kanizsa", "test")
    np.testing.assert_array_equal(_region(images, masks, 0), _region(images, masks, 2))


def test_proximity_colours(generated: Path) -> None:
    images, masks, _ = _split(generated, "proximity", "test_1")
    _in_range(_region(images, masks, 0), 6 / 7, 1)
    for group in (1, 2, 3):
        _in_range(_region(images, masks, group), 3 / 7, 5 / 7)
    images, masks, _ = _split(generated, "proximity", "test")
    one, three = _region(images, masks, 1), _region(images, masks, 3)
    pairs = ~np.isnan(three).any(axis=1)
    np.testing.assert_array_equal(one[pairs], three[pairs])


# ----------------------------------------------------------------------------------------------- variants


def test_high_resolution_variants_match_the_64_pixel_sets(tmp_path: Path, generated: Path) -> None:
    generate(
        _request(tmp_path, "closure", "kanizsa", image_size=256),
        progress=False,
    )
    for name in ("closure", "kanizsa"):
        folder = dataset_dir(tmp_path, name, 256)
        assert folder.name.endswith("_256")
        for split in ("test", "test_1"):
            big, small = load_split(folder, split), load_split(dataset_dir(generated, name), split)
            assert big.images.shape[-1] == 256
            np.testing.assert_array_equal(big.images[..., ::4, ::4], small.images)
            np.testing.assert_array_equal(big.masks[..., ::4, ::4], small.masks)
    closure = load_split(dataset_dir(tmp_path, "closure", 256), "test").images
    np.testing.assert_array_equal(closure, closure[..., ::4, ::4].repeat(4, axis=-2).repeat(4, axis=-1))


# ----------------------------------------------------------------------------------------------- safety


def test_existing_dataset_is_never_overwritten_silently(tmp_path: Path) -> None:
    request = _request(tmp_path, "proximity", n_train=4, n_valid=2, n_test=2)
    generate(request, progress=False)
    manifest = dataset_dir(tmp_path, "proximity") / "manifest.json"
    before = manifest.read_text()
    with pytest.raises(LNSError, match="overwrite=true"):
        generate(request, progress=False)
    assert manifest.read_text() == before
    generate(_request(tmp_path, "proximity", n_train=5, n_valid=2, n_test=2, overwrite=True), progress=False)
    assert json.loads(manifest.read_text())["splits"]["train"]["count"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dProximity"]


def test_a_failed_generation_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = MODULES["kanizsa"]
    calls = []

    def failing_draw(params: dict, grid: raster.Grid) -> object:
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("disk full")
        return original(params, grid)

    original = module.draw
    monkeypatch.setattr(module, "draw", failing_draw)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(_request(tmp_path, "kanizsa"), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_compose_keeps_exact_palette_values() -> None:
    palette = np.array([[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]])
    paint = np.array([[[0, 1], [1, 0]]], dtype=np.uint8)
    images = compose(paint, palette, 0.999)
    assert images.shape == (1, 3, 2, 2) and images.dtype == np.float32
    assert images[0, 2, 0, 1] == np.float32(0.6 * 0.999)


def test_dataset_names_parse() -> None:
    assert parse_datasets("all") == GG_DATASETS
    assert parse_datasets("kanizsa, closure") == ("kanizsa", "closure")
    assert parse_datasets(["Kanizsa", "all"])[0] == "kanizsa"
    with pytest.raises(LNSError, match="Unknown dataset"):
        parse_datasets("kanisza")


# ----------------------------------------------------------------------------------------------- celeba


def _fake_celeba(root: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    (root / "CelebA-HQ-img").mkdir(parents=True)
    for j in range(count):
        pixels = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "CelebA-HQ-img" / f"{j}.jpg")
        masks = root / "CelebAMask-HQ-mask-anno" / str(j // 2000)
        masks.mkdir(parents=True, exist_ok=True)
        skin = np.zeros((64, 64), np.uint8)
        skin[8:56, 8:56] = 255
        Image.fromarray(skin).save(masks / f"{j:05d}_skin.png")
        hair = np.zeros((64, 64), np.uint8)
        hair[:16] = 255
        Image.fromarray(hair).save(masks / f"{j:05d}_hair.png")
    return root


def test_celeba_from_a_tiny_fake_folder(tmp_path: Path) -> None:
    source = _fake_celeba(tmp_path / "CelebAMask-HQ", 9)
    request = _request(tmp_path / "data", "celeba", n_train=100, n_valid=3, n_test=2, celeba_dir=source)
    (folder,) = generate(request, progress=False)
    assert load_split(folder, "train").images.shape == (4, 3, 64, 64)
    test = load_split(folder, "test")
    assert set(np.unique(test.masks)) == {0, 1, 17}  # background, skin, hair (drawn over skin)
    assert (test.masks[:, :8] == 17).all() and (test.masks[:, 30, 30] == 1).all()
    np.testing.assert_array_equal(test.masks, test.detailed_masks)
    expected = np.asarray(Image.open(source / "CelebA-HQ-img" / "0.jpg").convert("RGB"))[::2, ::2] / 255
    np.testing.assert_allclose(test.images[0].transpose(1, 2, 0), expected, atol=1e-6)


def test_celeba_without_the_download_names_it(tmp_path: Path) -> None:
    for celeba_dir in (None, tmp_path / "missing"):
        with pytest.raises(LNSError, match=r"CelebAMask-HQ.*github.com/switchablenorms/CelebAMask-HQ.*CelebA-HQ-img"):
            generate(_request(tmp_path, "celeba", celeba_dir=celeba_dir), progress=False)


# ----------------------------------------------------------------------------------------------- CLI


def _cli(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "data_gen", *overrides]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.e2e
def test_command_line(tmp_path: Path) -> None:
    args = ("dataset=kanizsa", "paths.data_dir=data", "n_train=8", "n_valid=2", "n_test=2", "image_size=64")
    result = _cli(tmp_path, *args, "seed=42", "overwrite=false")
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_split(tmp_path / "data" / "dKanizsa", "test").masks.shape == (2, 64, 64)
    assert (tmp_path / "outputs" / "generate").is_dir()
    again = _cli(tmp_path, *args)
    assert again.returncode == 1
    assert "overwrite=true" in again.stderr and "Traceback" not in again.stderr
    assert again.stderr.strip().startswith("error: ") and "\n\n" not in again.stderr.strip()


@pytest.mark.e2e
def test_a_refusal_is_one_paragraph_headed_error_like_every_other_command(tmp_path: Path) -> None:
    result = _cli(tmp_path, "dataset=kanisza")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    paragraph = result.stderr.strip()
    assert paragraph.startswith("error: Unknown dataset 'kanisza'") and "\n\n" not in paragraph
    assert not (tmp_path / "outputs").exists()


@pytest.mark.e2e
def test_the_job_log_holds_the_lines_the_console_printed(tmp_path: Path) -> None:
    result = _cli(tmp_path, "dataset=kanizsa", "paths.data_dir=data", "n_train=4", "n_valid=2", "n_test=2")
    assert result.returncode == 0, result.stderr[-2000:]
    (log,) = (tmp_path / "outputs" / "generate").glob("*/*.log")
    written = f"{tmp_path / 'data' / 'dKanizsa'} written in "
    assert written in result.stdout and written in log.read_text()


def test_the_catalog_is_the_one_list_of_datasets() -> None:
    """Every dataset of the catalog has its config, every drawn one its generator module, and nothing else has."""
    conf = Path(__file__).parents[1] / "conf" / "data"
    names = {dataset.name for dataset in DATASETS}
    assert {path.stem for path in conf.glob("*.yaml") if not path.stem.startswith("_")} == names
    generators = {path.stem for path in (Path(__file__).parents[1] / "data_gen").glob("*.py")}
    assert set(MODULES) == set(GG_DATASETS) == {dataset.name for dataset in DATASETS if dataset.drawn} <= generators
    assert all(callable(module.sample) and callable(module.draw) for module in MODULES.values())
