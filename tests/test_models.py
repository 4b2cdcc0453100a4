"""Autoencoder layout, initialisation and forward shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lns.errors import LNSError
from lns.models import Autoencoder


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _expected_params(z_dim: int, variational: bool, extra_stages: int = 0) -> int:
    out = 2 * z_dim if variational else z_dim
    encoder = (
        _conv(3, 32, 3)
        + _conv(32, 64, 4)
        + _conv(64, 64, 4)
        + _conv(64, 128, 4)
        + _conv(128, 128, 4)
        + _conv(128, 256, 4)
        + _linear(256, 128)
        + _linear(128, out)
    )
    decoder = (
        _linear(z_dim, 128)
        + _linear(128, 256)
        + _conv(256, 128, 4)
        + _conv(128, 128, 4)
        + _conv(128, 64, 4)
        + _conv(64, 64, 4)
        + _conv(64, 32, 4)
        + _conv(32, 3, 3)
    )
    return encoder + decoder + 2 * extra_stages * _conv(32, 32, 4)


@pytest.mark.parametrize("variational", [False, True])
def test_parameter_count_64(variational: bool) -> None:
    model = Autoencoder(z_dim=15, variational=variational)
    assert sum(p.numel() for p in model.parameters()) == _expected_params(15, variational)


def test_parameter_count_known_value() -> None:
    assert sum(p.numel() for p in Autoencoder(z_dim=15).parameters()) == 2_104_338


def test_parameter_count_256() -> None:
    model = Autoencoder(z_dim=15, variational=True, image_size=256)
    assert sum(p.numel() for p in model.parameters()) == _expected_params(15, True, extra_stages=2)


def test_state_dict_keys_match_authors_indices() -> None:
    model = Autoencoder(z_dim=15, variational=True)
    keys = set(model.state_dict())
    expected = {f"encoder.{i}.{p}" for i in (0, 2, 4, 6, 8, 10, 13, 15) for p in ("weight", "bias")}
    expected |= {f"decoder.{i}.{p}" for i in (0, 2, 5, 7, 9, 11, 13, 15) for p in ("weight", "bias")}
    assert keys == expected
    state = model.state_dict()
    assert state["encoder.0.weight"].shape == (32, 3, 3, 3)
    assert state["encoder.10.weight"].shape == (256, 128, 4, 4)
    assert state["encoder.15.weight"].shape == (30, 128)
    assert state["decoder.0.weight"].shape == (128, 15)
    assert state["decoder.5.weight"].shape == (256, 128, 4, 4)
    assert state["decoder.15.weight"].shape == (32, 3, 3, 3)
    assert isinstance(model.encoder[12], nn.Flatten)
    assert isinstance(model.decoder[3], nn.Unflatten)
    assert isinstance(model.decoder[4], nn.ReLU)
    assert len(model.encoder) == 16 and len(model.decoder) == 16


def test_initialisation() -> None:
    torch.manual_seed(0)
    model = Autoencoder()
    for layer in model.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            assert torch.count_nonzero(layer.bias) == 0
        if isinstance(layer, nn.ConvTranspose2d):
            assert torch.count_nonzero(layer.bias) > 0
    weight = model.encoder[8].weight  # fan_in 128 * 16
    assert weight.std().item() == pytest.approx((2 / (128 * 16)) ** 0.5, rel=0.03)
    bound = 1 / (128 * 16) ** 0.5  # PyTorch default for decoder[7] (fan_in = weight.size(1) * k * k)
    assert model.decoder[7].weight.abs().max().item() <= bound


@pytest.mark.parametrize(("variational", "image_size", "channels"), [(False, 64, 3), (True, 64, 1), (True, 256, 3)])
def test_forward_shapes(variational: bool, image_size: int, channels: int) -> None:
    model = Autoencoder(z_dim=7, variational=variational, channels=channels, image_size=image_size)
    x = torch.rand(2, channels, image_size, image_size)
    logits, mu, logvar = model(x)
    assert logits.shape == x.shape
    assert mu.shape == (2, 7)
    assert (logvar is not None) == variational
    if variational:
        assert logvar.shape == (2, 7)
    assert model.latent_mean(x).shape == (2, 7)
    assert model.decode(torch.zeros(3, 7)).shape == (3, channels, image_size, image_size)


def test_vae_samples_only_in_training() -> None:
    torch.manual_seed(0)
    model = Autoencoder(z_dim=5, variational=True)
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    logits, mu, _ = model(x)
    assert torch.equal(logits, model.decode(mu))
    assert torch.equal(model(x)[0], logits)
    model.train()
    assert not torch.allclose(model(x)[0], logits)


def test_ae_is_deterministic_in_training() -> None:
    model = Autoencoder(z_dim=5).train()
    x = torch.rand(2, 3, 64, 64)
    logits, mu, _ = model(x)
    assert torch.equal(logits, model.decode(mu))


@pytest.mark.parametrize("image_size", [32, 128, 65])
def test_unsupported_image_size(image_size: int) -> None:
    with pytest.raises(LNSError, match=r"64 and 256.*" + str(image_size)):
        Autoencoder(image_size=image_size)


def test_wrong_input_shape() -> None:
    with pytest.raises(LNSError, match=r"\(B, 3, 64, 64\)"):
        Autoencoder().encode(torch.rand(1, 3, 32, 32))
