"""Baselines and controls: colour, colour + position, superpixels, activations, random weights, and the report's
comparison of LNS with them; tiny images with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.segmentation
import torch
from PIL import Image

from lns.errors import LNSError
from lns.metrics import adjusted_rand_index
from lns.models import Autoencoder
from lns.report import write_report
from lns.report.comparisons import lns_vs_baselines, mean_relative
from lns.segment import segment
from lns.segmentation.activations import ActivationMethod
from lns.segmentation.baselines import (
    ColourMethod,
    ColourPositionMethod,
    FelzenszwalbMethod,
    SlicMethod,
    ward_merge,
)
from lns.segmentation.clustering import WardClustering
from lns.segmentation.methods import MethodInput
from lns.segmentation.source import load_source
from lns.segmentation.weights import apply_weights, fresh_model
from tests.helpers import REPO, TINY_SEGMENT, compose_config, compose_with_hydra, sweep_jobs

RED, GREEN, BLUE = (1.0, 0.1, 0.1), (0.1, 0.8, 0.2), (0.2, 0.3, 0.9)


def painted(regions: dict[int, tuple[slice, slice, tuple[float, float, float]]], size: int = 16):
    """An image (1, 3, size, size) on grey and its mask: each label's (rows, columns) painted in its colour."""
    image = torch.full((1, 3, size, size), 0.5)
    mask = torch.zeros(1, size, size, dtype=torch.long)
    for label, (rows, columns, colour) in regions.items():
        image[0, :, rows, columns] = torch.tensor(colour)[:, None, None]
        mask[0, rows, columns] = label
    return image, mask


def batch_of(image: torch.Tensor, mask: torch.Tensor, k: int | None = None) -> MethodInput:
    count = int(mask.unique().numel()) if k is None else k
    return MethodInput(None, image, torch.zeros(1, 2), torch.tensor([0]), [count])


def segment_ari(method, image: torch.Tensor, mask: torch.Tensor, k: int | None = None) -> float:
    batch = batch_of(image, mask, k)
    output = method(batch)
    labels = output.labels if output.labels is not None else WardClustering(workers=1)(output.features, batch.counts)
    return float(adjusted_rand_index(torch.from_numpy(labels), mask.flatten(1))[0])


def test_rgb_separates_objects_that_differ_only_in_colour():
    image, mask = painted({1: (slice(2, 8), slice(2, 14), RED), 2: (slice(9, 15), slice(2, 14), GREEN)})
    assert segment_ari(ColourMethod(), image, mask) == pytest.approx(1.0)


def test_rgbxy_separates_far_objects_of_one_colour_and_rgb_does_not():
    # Two red bars at the left and right edges; the grey between them is two shades (top/bottom), one mask label.
    image, mask = painted({1: (slice(0, 16), slice(0, 5), RED), 2: (slice(0, 16), slice(11, 16), RED)})
    image[0, :, 8:, 5:11] = 0.52
    assert segment_ari(ColourPositionMethod(position_weight=1.0), image, mask) == pytest.approx(1.0)
    assert segment_ari(ColourMethod(), image, mask) < 0.5
    with pytest.raises(LNSError, match="position_weight"):
        ColourPositionMethod(position_weight=-1.0).check(None)


def test_weighted_ward_merges_by_region_size():
    # Unweighted ward would join the middle point to its nearer neighbour 0.0; with sizes (100, 1, 1) joining the
    # big region costs 100/101 * 0.45^2 = 0.200 > 1/2 * 0.55^2 = 0.151, so the middle joins 1.0 instead.
    points, sizes = np.array([[0.0], [0.45], [1.0]]), np.array([100, 1, 1])
    assert ward_merge(points, sizes, 2).tolist() == [0, 1, 1]
    assert ward_merge(points, np.ones(3), 2).tolist() == [0, 0, 1]
    assert ward_merge(points, sizes, 3).tolist() == [0, 1, 2]


@pytest.mark.parametrize("method", [SlicMethod(n_segments=30, workers=1), FelzenszwalbMethod(workers=1)])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_superpixels_are_merged_to_exactly_k_labels(method, k):
    image, mask = painted(
        {
            1: (slice(1, 7), slice(1, 7), RED),
            2: (slice(9, 15), slice(1, 7), GREEN),
            3: (slice(4, 12), slice(9, 15), BLUE),
        }
    )
    output = method(batch_of(image, mask, k))
    assert sorted(np.unique(output.labels).tolist()) == list(range(k))
    assert output.features.shape == (1, 256, 3)
    if k == 4:
        assert segment_ari(method, image, mask) == pytest.approx(1.0)


def test_superpixel_parameters_reach_scikit_image(monkeypatch):
    calls = []

    def recording(name):
        original = getattr(skimage.segmentation, name)

        def wrapper(image, **kwargs):
            calls.append((name, kwargs))
            return original(image, **kwargs)

        return wrapper

    for name in ("slic", "felzenszwalb"):
        monkeypatch.setattr(skimage.segmentation, name, recording(name))
    image, mask = painted({1: (slice(2, 8), slice(2, 14), RED)})
    SlicMethod(n_segments=7, compactness=3.5, max_num_iter=4, sigma=0.25, workers=1)(batch_of(image, mask))
    FelzenszwalbMethod(scale=2.5, sigma=0.3, min_size=5, workers=1)(batch_of(image, mask))
    assert calls == [
        ("slic", {"channel_axis": -1, "n_segments": 7, "compactness": 3.5, "max_num_iter": 4, "sigma": 0.25}),
        ("felzenszwalb", {"channel_axis": -1, "scale": 2.5, "sigma": 0.3, "min_size": 5}),
    ]


def test_superpixel_errors_are_one_paragraph():
    with pytest.raises(LNSError, match=r"method\.compactness=0 .* must be a number > 0"):
        SlicMethod(compactness=0).check(None)
    with pytest.raises(LNSError, match=r"method\.min_size=-1"):
        FelzenszwalbMethod(min_size=-1).check(None)
    with pytest.raises(LNSError, match="workers"):
        SlicMethod(workers=-2).check(None)
    flat = torch.full((1, 3, 16, 16), 0.5)
    with pytest.raises(LNSError, match=r"felzenszwalb produced 1 regions in test image 0, fewer than the 3"):
        FelzenszwalbMethod(workers=1)(batch_of(flat, torch.zeros(1, 16, 16, dtype=torch.long), k=3))


def test_activations_of_an_unknown_layer_list_the_valid_names():
    model = Autoencoder(z_dim=4)
    with pytest.raises(LNSError, match=r"method\.layer=decoder\.99 .*encoder\.0, encoder\.1, .*decoder\.15"):
        ActivationMethod(layer="decoder.99").check(model)
    with pytest.raises(LNSError, match=r"method\.upsample=cubic"):
        ActivationMethod(upsample="cubic").check(model)


def test_activations_are_the_layer_output_upsampled_to_pixels():
    model = Autoencoder(z_dim=4).eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    batch = MethodInput(model, images, torch.zeros(2, 4), torch.tensor([0, 1]), [2, 2])
    full = ActivationMethod(layer="encoder.1")(batch).features
    with torch.no_grad():
        expected = model.encoder[:2](images)
    assert torch.allclose(full, expected.flatten(2).transpose(1, 2), atol=1e-6)
    coarse = ActivationMethod(layer="encoder.3", upsample="nearest")(batch).features  # 32x32 -> 64x64
    with torch.no_grad():
        grid = model.encoder[:4](images)
    assert coarse.shape == (2, 64 * 64, 64)
    assert torch.allclose(coarse.reshape(2, 64, 64, 64)[:, ::2, ::2], grid.permute(0, 2, 3, 1), atol=1e-6)


@pytest.mark.e2e
def test_random_weights_are_seeded_and_differ_from_the_trained_ones(trained_run: Path, tiny_data_dir: Path):
    source = load_source(trained_run, None)
    state = torch.get_rng_state()
    first, second = fresh_model(source.model, 3), fresh_model(source.model, 3)
    assert torch.equal(torch.get_rng_state(), state)
    other = fresh_model(source.model, 4)
    for name, value in source.model.state_dict().items():
        assert torch.equal(first.state_dict()[name], second.state_dict()[name])
        if name.endswith("weight"):
            assert not torch.equal(first.state_dict()[name], value)
            assert not torch.equal(first.state_dict()[name], other.state_dict()[name])
    assert apply_weights(source, "trained", 3) is source
    assert torch.equal(apply_weights(source, "random", 3).model.decoder[0].weight, first.decoder[0].weight)
    with pytest.raises(LNSError, match="valid: trained, random"):
        apply_weights(source, "pretrained", 3)


@pytest.mark.parametrize(
    ("overrides", "method"),
    [
        (["method=rgbxy", "method.position_weight=0.5"], {"name": "rgbxy", "position_weight": 0.5}),
        (["method=felzenszwalb", "method.workers=1"], {"name": "felzenszwalb", "scale": 1.0, "min_size": 20}),
        (["method=activations", "weights=random", "weights.seed=2"], {"name": "activations", "layer": "decoder.14"}),
    ],
)
@pytest.mark.e2e
def test_run_segment_records_method_weights_and_speed(
    trained_run: Path, tiny_data_dir: Path, tmp_path: Path, overrides: list[str], method: dict
):
    settings = [f"run_dir={trained_run}", f"paths.data_dir={tiny_data_dir}", *TINY_SEGMENT, *overrides]
    result = segment(compose_config("segment", settings, tmp_path / "seg"))
    summary = json.loads((tmp_path / "seg" / "summary.json").read_text())
    assert summary["features"] == method["name"]
    assert method.items() <= summary["method"].items()
    assert summary["seconds_per_image"] > 0
    random = "weights=random" in overrides
    assert summary["weights"] == ({"name": "random", "seed": 2} if random else {"name": "trained"})
    assert "noise" not in summary
    assert (tmp_path / "seg" / "figures" / "segmentations.png").stat().st_size > 0
    assert method["name"] in result["table"]


def _summary(root: Path, name: str, dataset: str, features: str, ari: float, **extra) -> None:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    data = {"ari_mean": ari, "dataset": dataset, "model": "ae", "features": features, **extra}
    if features == "noise":
        data["noise"] = {"std": 0.001, "perturb_num": 40, "site": extra.pop("site", "latent")}
    (run_dir / "summary.json").write_text(json.dumps(data))


def test_report_compares_lns_with_the_best_other_method_exactly(tmp_path: Path):
    free = {"method": {"uses_model": False}}
    _summary(tmp_path, "k_lns", "kanizsa", "noise", 0.6)
    _summary(tmp_path, "k_vae", "kanizsa", "noise", 0.45, model="vae")
    _summary(tmp_path, "k_rgb", "kanizsa", "rgb", 0.4, **free)
    _summary(tmp_path, "k_slic", "kanizsa", "slic", 0.5, **free)
    _summary(tmp_path, "k_out", "kanizsa", "noise", 0.9, site="output")
    _summary(tmp_path, "k_rand", "kanizsa", "noise", 0.2, weights={"name": "random", "seed": 0})
    _summary(tmp_path, "c_lns", "closure", "noise", 0.3)
    _summary(tmp_path, "c_act", "closure", "activations", 0.6, method={"layer": "decoder.14"})
    _summary(tmp_path, "i_lns", "illusory_occlusion", "noise", 0.7)  # the best other is at chance: no ratio
    _summary(tmp_path, "i_rgb", "illusory_occlusion", "rgb", 0.01, **free)
    report = write_report([tmp_path], out=tmp_path / "out")
    assert report.table.columns == [
        "AE",
        "VAE",
        "AE (output noise)",
        "AE (activations decoder.14)",
        "AE (random weights)",
        "rgb",
        "slic",
    ]
    comparisons = lns_vs_baselines(report.table)
    assert [(c.dataset, c.lns_column, c.baseline_column) for c in comparisons] == [
        ("closure", "AE", "AE (activations decoder.14)"),
        ("illusory_occlusion", "AE", "rgb"),
        ("kanizsa", "AE", "slic"),
    ]
    assert comparisons[0].relative == pytest.approx(-0.5)
    assert comparisons[1].relative is None and comparisons[1].difference == pytest.approx(0.69)
    assert comparisons[2].relative == pytest.approx(0.2)
    assert mean_relative(comparisons) == pytest.approx(-0.15)
    claims = (tmp_path / "out" / "claims.md").read_text()
    assert "-15.0% on average over the 2 datasets" in claims and "+24.9%" in claims
    assert "left out: illusory_occlusion" in claims
    assert "| kanizsa | AE | 0.600 | slic | 0.500 | +0.100 | +20.0% |" in claims
    assert "| illusory_occlusion | AE | 0.700 | rgb | 0.010 | +0.690 | n/a (best other below ARI 0.05) |" in claims
    assert "| kanizsa | AE | 0.600 ± 0.000 (n=1) | 0.200 ± 0.000 (n=1) | +0.400 |" in claims


@pytest.mark.e2e
def test_report_draws_one_row_per_method_under_the_recorded_input_images(
    trained_run: Path, tiny_data_dir: Path, tmp_path: Path
):
    common = [f"run_dir={trained_run}", f"paths.data_dir={tiny_data_dir}", *TINY_SEGMENT]
    for name, extra in (("rgb", []), ("felzenszwalb", ["method.workers=1"])):
        segment(compose_config("segment", [*common, f"method={name}", *extra], tmp_path / "runs" / name))
    summaries = sorted((tmp_path / "runs").glob("*/summary.json"))
    assert {json.loads(path.read_text())["data_dir"] for path in summaries} == {str(tiny_data_dir.resolve())}
    report = write_report([tmp_path / "runs"], out=tmp_path / "given", data_dir=tiny_data_dir)
    picture = tmp_path / "given" / "methods_kanizsa.png"
    assert picture in report.files and picture.stat().st_size > 0
    assert report.table.columns == ["felzenszwalb", "rgb"]
    write_report([tmp_path / "runs"], out=tmp_path / "recorded")  # no data_dir: the folder the summaries name
    for path in summaries:  # summaries written before the folder was recorded
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "data_dir"}))
    write_report([tmp_path / "runs"], out=tmp_path / "unknown")
    size = {name: Image.open(tmp_path / name / "methods_kanizsa.png").size for name in ("given", "recorded", "unknown")}
    assert size["recorded"] == size["given"]
    assert size["unknown"][1] < size["given"][1]  # without the input and ground-truth rows


def test_baselines_preset_runs_every_method_on_every_run():
    cfg = compose_with_hydra("segment", ["sweep=baselines", "run_dir=/runs/a"])
    jobs = sweep_jobs(cfg, ["run_dir=/runs/a,/runs/b"])
    methods = ["noise", "jacobian", "activations", "rgb", "rgbxy", "slic", "felzenszwalb"]
    assert sorted((job["run_dir"], job["method"]) for job in jobs) == sorted(
        (run, method) for run in ("/runs/a", "/runs/b") for method in methods
    )
    assert {path.stem for path in (REPO / "conf" / "method").glob("*.yaml")} == set(methods)
    controls = sweep_jobs(cfg, ["run_dir=/runs/a", "weights=random", "method=noise,activations"])
    assert [(job["weights"], job["method"]) for job in controls] == [("random", "noise"), ("random", "activations")]
