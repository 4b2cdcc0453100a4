"""The Python API against the command line: one core, the same labels bit for bit; load_model for every source."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

import lns
from lns.data.npz import load_split
from lns.errors import LNSError
from lns.models import Autoencoder, write_authors_checkpoint
from lns.segment import segment
from lns.segmentation.layout import CHANNELS_LAST
from tests.helpers import LAST, TINY_SEGMENT, compose_config


@pytest.mark.e2e
def test_our_autoencoder_through_the_api_gives_run_segments_labels_bit_for_bit(
    trained_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "seg"
    segment(compose_config("segment", [f"run_dir={trained_run}", *TINY_SEGMENT, "umap_num=0"], out))
    expected = np.load(out / "predictions.npz")["labels"]

    model = lns.load_model(trained_run)  # both entry points with their defaults
    test = load_split(tiny_data_dir / "dKanizsa", "test")
    counts = [len(np.unique(mask)) for mask in test.masks[:4]]
    result = lns.segment_images(model, torch.from_numpy(test.images[:4]), n_clusters=counts, perturbations=6)
    assert np.array_equal(result.labels.numpy(), expected)  # and batch_size 10 here, 3 there
    assert model.decoder[5].weight.is_contiguous()  # the model's own layout is given back
    ari = lns.adjusted_rand_index(result.labels, torch.from_numpy(test.masks[:4]))
    assert ari.shape == (4,) and ari.dtype == torch.float64

    plain = tmp_path / "plain"
    segment(compose_config("segment", [f"run_dir={trained_run}", *TINY_SEGMENT, "channels_last=false"], plain))
    images = torch.from_numpy(test.images[:4])
    result = lns.segment_images(model, images, n_clusters=counts, perturbations=6, channels_last=False)
    assert np.array_equal(result.labels.numpy(), np.load(plain / "predictions.npz")["labels"])


def test_the_api_and_run_segment_share_one_default_layout() -> None:
    defaults = compose_config("segment", ["run_dir=x"], Path("unused"))
    signature = inspect.signature(lns.segment_images)
    assert signature.parameters["channels_last"].default is defaults.channels_last is CHANNELS_LAST


def test_load_model_reads_runs_lone_checkpoints_and_authors_files(trained_run: Path, tmp_path: Path) -> None:
    from_run = lns.load_model(trained_run)
    assert isinstance(from_run, Autoencoder) and not from_run.training
    lone = tmp_path / "elsewhere.ckpt"
    lone.write_bytes((trained_run / LAST).read_bytes())  # the checkpoint records the model's class and arguments
    for name, tensor in lns.load_model(lone).state_dict().items():
        assert torch.equal(tensor, from_run.state_dict()[name])
    authors = tmp_path / "authors.pth"
    write_authors_checkpoint(authors, Autoencoder(z_dim=5), step=1, flags={"model": "AE_model", "z_dim": 5})
    assert lns.load_model(authors).z_dim == 5
    with pytest.raises(LNSError, match="is not a training run directory"):
        lns.load_model(tmp_path)
