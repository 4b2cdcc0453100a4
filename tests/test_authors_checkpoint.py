"""Import and export of checkpoints in the authors' layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lns.errors import LNSError
from lns.models import (
    AuthorsCheckpoint,
    Autoencoder,
    is_authors_checkpoint,
    load_authors_checkpoint,
    write_authors_checkpoint,
)

FLAGS = {"dataset": "dKanizsa", "lr": 5e-5, "g_goal": 0.0006, "batch_size": 64}


def _payload(model: Autoencoder, **overrides: object) -> dict:
    payload = {
        "iter": 1234,
        "model_states": {"net": model.state_dict()},
        "optim_states": {"optim": None},
        "geco_states": None,
        "flag_dict": {"model": "BetaVAE_model" if model.variational else "AE_model", "z_dim": model.z_dim},
    }
    payload.update(overrides)
    return payload


def _assert_same_weights(a: Autoencoder, b: Autoencoder) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[key], state_b[key]) for key in state_a)


@pytest.mark.parametrize("variational", [False, True])
def test_round_trip(tmp_path: Path, variational: bool) -> None:
    torch.manual_seed(0)
    model = Autoencoder(z_dim=6, variational=variational)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-5)
    model(torch.rand(2, 3, 64, 64))[0].sum().backward()
    optimizer.step()
    path = tmp_path / "sub" / "last.pth"
    write_authors_checkpoint(
        path,
        model,
        step=77,
        optimizer_state=optimizer.state_dict(),
        geco={"beta": torch.tensor(0.125), "err_ema": 42.5},
        flags=FLAGS,
    )
    raw = torch.load(path, weights_only=True)
    assert is_authors_checkpoint(raw)
    assert set(raw) == {"iter", "model_states", "optim_states", "geco_states", "flag_dict"}
    assert isinstance(raw["geco_states"]["beta"], torch.Tensor)

    loaded = load_authors_checkpoint(path, expect_z_dim=6, expect_variational=variational)
    assert isinstance(loaded, AuthorsCheckpoint)
    assert loaded.model.variational == variational and loaded.model.z_dim == 6
    _assert_same_weights(loaded.model, model)
    assert loaded.step == 77
    assert loaded.geco_beta == 0.125 and loaded.geco_err_ema == 42.5
    assert loaded.flags == {**FLAGS, "model": "BetaVAE_model" if variational else "AE_model", "z_dim": 6}
    resumed = torch.optim.Adam(loaded.model.parameters(), lr=1.0)
    resumed.load_state_dict(loaded.optimizer_state)
    assert resumed.param_groups[0]["lr"] == 5e-5
    assert not list(tmp_path.glob("sub/*.tmp"))


def test_round_trip_256_single_channel(tmp_path: Path) -> None:
    model = Autoencoder(z_dim=4, channels=1, image_size=256)
    write_authors_checkpoint(tmp_path / "c.pth", model, step=0, flags={})
    loaded = load_authors_checkpoint(tmp_path / "c.pth")
    assert (loaded.model.image_size, loaded.model.channels) == (256, 1)
    _assert_same_weights(loaded.model, model)
    assert loaded.optimizer_state is None and loaded.geco_beta is None and loaded.geco_err_ema is None


def test_authors_style_file_with_data_parallel_prefix(tmp_path: Path) -> None:
    model = Autoencoder(z_dim=15, variational=True)
    net = {f"module.{key}": value for key, value in model.state_dict().items()}
    geco = {"err_ema": None, "beta": torch.tensor(1.0)}
    torch.save(_payload(model, model_states={"net": net}, iter=torch.tensor(5), geco_states=geco), tmp_path / "c")
    loaded = load_authors_checkpoint(tmp_path / "c")
    _assert_same_weights(loaded.model, model)
    assert loaded.step == 5 and loaded.geco_beta == 1.0 and loaded.geco_err_ema is None


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LNSError, match="does not exist"):
        load_authors_checkpoint(tmp_path / "nope.pth")


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "c.pth"
    write_authors_checkpoint(path, Autoencoder(z_dim=3), step=1, flags={})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LNSError, match="truncated or corrupt"):
        load_authors_checkpoint(path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "c.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(LNSError, match="cannot be read"):
        load_authors_checkpoint(path)


def test_not_a_dict(tmp_path: Path) -> None:
    torch.save([1, 2, 3], tmp_path / "c")
    with pytest.raises(LNSError, match="is a list"):
        load_authors_checkpoint(tmp_path / "c")


def test_missing_keys_are_named(tmp_path: Path) -> None:
    model = Autoencoder(z_dim=3)
    payload = _payload(model)
    del payload["model_states"]
    torch.save(payload, tmp_path / "a")
    with pytest.raises(LNSError, match="lacks the key\\(s\\) model_states"):
        load_authors_checkpoint(tmp_path / "a")
    torch.save(_payload(model, flag_dict={"model": "AE_model"}), tmp_path / "b")
    with pytest.raises(LNSError, match="flag_dict lacks the key\\(s\\) z_dim"):
        load_authors_checkpoint(tmp_path / "b")
    torch.save(_payload(model, geco_states={"beta": torch.tensor(1.0)}), tmp_path / "c")
    with pytest.raises(LNSError, match="geco_states lacks the key\\(s\\) err_ema"):
        load_authors_checkpoint(tmp_path / "c")


def test_unknown_model_name(tmp_path: Path) -> None:
    model = Autoencoder(z_dim=3)
    torch.save(_payload(model, flag_dict={"model": "Genesis", "z_dim": 3}), tmp_path / "c")
    with pytest.raises(LNSError, match="AE_model, BetaVAE_model"):
        load_authors_checkpoint(tmp_path / "c")


def test_weights_that_do_not_fit_the_flags(tmp_path: Path) -> None:
    model = Autoencoder(z_dim=10)
    torch.save(_payload(model, flag_dict={"model": "AE_model", "z_dim": 15}), tmp_path / "a")
    with pytest.raises(LNSError, match=r"shape mismatches encoder\.15\.weight \(10, 128\) \(model: \(15, 128\)\)"):
        load_authors_checkpoint(tmp_path / "a")
    net = dict(model.state_dict())
    del net["decoder.15.bias"]
    net["extra.weight"] = torch.zeros(1)
    torch.save(_payload(model, model_states={"net": net}), tmp_path / "b")
    with pytest.raises(LNSError, match=r"missing keys decoder\.15\.bias; unexpected keys extra\.weight"):
        load_authors_checkpoint(tmp_path / "b")


def test_expected_model_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "c.pth"
    write_authors_checkpoint(path, Autoencoder(z_dim=15, variational=True), step=1, flags={})
    with pytest.raises(LNSError, match=r"holds a VAE \(BetaVAE_model\) with z_dim=15.*asks for a VAE .* z_dim=10"):
        load_authors_checkpoint(path, expect_z_dim=10)
    with pytest.raises(LNSError, match=r"holds a VAE .*asks for an AE \(AE_model\) with z_dim=15"):
        load_authors_checkpoint(path, expect_variational=False)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_pickled_objects_are_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    model = Autoencoder(z_dim=3)
    torch.save(_payload(model, flag_dict={"model": "AE_model", "z_dim": 3, "x": _Exploit(marker)}), tmp_path / "c")
    with pytest.raises(LNSError, match="refused without running"):
        load_authors_checkpoint(tmp_path / "c")
    assert not marker.exists()
    torch.load(tmp_path / "c", weights_only=False)  # the payload is real: an unsafe load runs it
    assert marker.exists()


def test_write_rejects_contradicting_or_non_plain_flags(tmp_path: Path) -> None:
    model = Autoencoder(z_dim=3)
    with pytest.raises(LNSError, match="z_dim=4 \\(model: 3\\)"):
        write_authors_checkpoint(tmp_path / "a", model, step=0, flags={"z_dim": 4})
    with pytest.raises(LNSError, match=r"flag_dict\['paths'\]\[0\] is a \w*Path"):
        write_authors_checkpoint(tmp_path / "b", model, step=0, flags={"paths": [tmp_path]})
    with pytest.raises(LNSError, match="err_ema"):
        write_authors_checkpoint(tmp_path / "c", model, step=0, flags={}, geco={"beta": 1.0})
    assert not list(tmp_path.iterdir())


def test_is_authors_checkpoint() -> None:
    assert is_authors_checkpoint({"model_states": {}, "flag_dict": {}})
    assert not is_authors_checkpoint({"state_dict": {}, "pytorch-lightning_version": "2.4"})
    assert not is_authors_checkpoint([])  # type: ignore[arg-type]
