import pytest

from lns.errors import LNSError
from lns.models import Autoencoder
from lns.models.layers import layer_by_name, layer_names


def test_names_follow_print_order():
    names = layer_names(Autoencoder(z_dim=4))
    assert names[:3] == ["encoder", "encoder.0", "encoder.1"]
    assert "decoder.15" in names and "" not in names


def test_lookup_returns_the_module():
    model = Autoencoder(z_dim=4)
    assert layer_by_name(model, "decoder.5") is model.decoder[5]


def test_unknown_name_lists_valid_ones():
    with pytest.raises(LNSError, match=r"noise\.site=decoder\.99 .*decoder\.15"):
        layer_by_name(Autoencoder(z_dim=4), "decoder.99", key="noise.site")
