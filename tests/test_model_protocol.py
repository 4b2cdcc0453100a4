"""The model protocol through the Python API: hand-wired models with known answers, the hook-based noise sites, and a
clear error for every way a model can break the protocol."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import lns
from lns.errors import LNSError
from lns.models import Autoencoder
from lns.segmentation.features import image_generators
from lns.segmentation.sites import jacobian_at_site, noise_at_site

MASK = torch.zeros(8, 8, dtype=torch.long)
MASK[1:4, 1:7] = 1
MASK[5:7, 2:8] = 2
WEIGHTS = 0.5 + torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
IMAGES = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))


def drive_objects(first: Tensor, second: Tensor) -> Tensor:
    """Logits (M, 3, 8, 8): object 1 moves only with ``first``, object 2 only with ``second``; background fixed."""
    return -1.0 + WEIGHTS * ((MASK == 1) * first[:, None, None, None] + (MASK == 2) * second[:, None, None, None])


class VectorModel(nn.Module):
    """Latent (B, 3), variational encode, decode returns images in [0, 1]; the third latent drives nothing."""

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        mean = torch.stack([images.mean((1, 2, 3)), images[:, 0].mean((1, 2)), images[:, 1].mean((1, 2))], 1)
        return mean, torch.zeros_like(mean)

    def decode(self, latent: Tensor) -> Tensor:
        return torch.sigmoid(drive_objects(latent[:, 0], latent[:, 1]))


class GridModel(nn.Module):
    """Latent grid (B, 2, 2, 2): channel 0 drives object 1, channel 1 object 2; decode returns logits."""

    decodes_logits = True

    def encode(self, images: Tensor) -> Tensor:
        return images[:, :2, ::4, ::4].clone()

    def decode(self, latent: Tensor) -> Tensor:
        return drive_objects(latent[:, 0].sum((1, 2)), latent[:, 1].sum((1, 2)))


@pytest.mark.parametrize("model", [VectorModel(), GridModel()], ids=["vector", "grid"])
@pytest.mark.parametrize("method", ["noise", "jacobian"])
def test_each_object_driven_by_its_own_latent_direction_is_split_exactly(model: nn.Module, method: str) -> None:
    result = lns.segment_images(model, IMAGES, n_clusters=3, method=method, perturbations=10, clustering="ward_lean")
    assert result.labels.shape == (3, 8, 8) and result.labels.dtype == torch.int64
    ari = lns.adjusted_rand_index(result.labels, MASK.expand(3, -1, -1))
    assert torch.equal(ari, torch.ones(3, dtype=torch.float64))
    assert torch.all((result.reconstructions >= 0) & (result.reconstructions <= 1))


def test_labels_do_not_depend_on_the_batch_size_and_the_mode_is_restored() -> None:
    torch.manual_seed(0)
    model = Autoencoder(z_dim=3).train()
    images = torch.rand(3, 3, 64, 64)
    options = {"n_clusters": [2, 3, 4], "perturbations": 4, "clustering": "ward_lean"}
    one_at_a_time = lns.segment_images(model, images, batch_size=1, **options).labels
    assert torch.equal(lns.segment_images(model, images, **options).labels, one_at_a_time)
    assert model.training
    assert [len(labels.unique()) for labels in one_at_a_time] == [2, 3, 4]


class Wrapped(nn.Module):
    """lns's autoencoder behind a class of another name: segmentation must take the hook-based path."""

    decodes_logits = True

    def __init__(self, inner: Autoencoder) -> None:
        super().__init__()
        self.inner = inner

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.inner.encode(images)

    def decode(self, latent: Tensor) -> Tensor:
        return self.inner.decode(latent)


@pytest.mark.parametrize("site", ["encoder.4", "decoder.9"])
def test_hooks_put_the_noise_where_cutting_the_autoencoder_does(site: str) -> None:
    torch.manual_seed(5)
    model = Autoencoder(z_dim=3, variational=True).double().eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4)).double()
    with torch.no_grad():
        means = torch.cat([model.latent_mean(image[None]) for image in images])
    options = {"std": 1e-2, "perturb_num": 3, "chunk_size": 4}
    cut = noise_at_site(model, images, means, site=site, generators=image_generators([5, 9], 1, "cpu"), **options)
    hooked = noise_at_site(
        Wrapped(model), images, means, site=f"inner.{site}", generators=image_generators([5, 9], 1, "cpu"), **options
    )
    assert cut.abs().sum() > 0
    torch.testing.assert_close(hooked, cut, rtol=0, atol=1e-9)
    jacobian = {"directions": 3, "seed": 0, "chunk_size": 1}
    torch.testing.assert_close(
        jacobian_at_site(Wrapped(model), images, means, site=f"inner.{site}", **jacobian),
        jacobian_at_site(model, images, means, site=site, **jacobian),
        rtol=0,
        atol=1e-9,
    )


# --- every way a model can break the protocol: one clear LNSError ------------------------------------------------


class NoDecode:
    def encode(self, images: Tensor) -> Tensor:
        return images.flatten(1)


class Faulty(VectorModel):
    """VectorModel with one fault: ``fault`` names it."""

    def __init__(self, fault: str) -> None:
        super().__init__()
        self.fault = fault
        self.twice = nn.ReLU()

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_variance = super().encode(images)
        if self.fault == "nan_latent":
            mean = mean / 0 * 0
        if self.fault == "batch":
            mean, log_variance = mean.repeat(2, 1), log_variance.repeat(2, 1)
        return mean, log_variance

    def decode(self, latent: Tensor) -> Tensor:
        if self.fault == "range":
            return drive_objects(latent[:, 0], latent[:, 1])
        if self.fault == "nan_output":
            return torch.full((len(latent), 3, 8, 8), float("nan"))
        if self.fault == "rounding":
            return torch.sigmoid(Rounded.apply(drive_objects(latent[:, 0], latent[:, 1])))
        if self.fault == "shared":
            return torch.sigmoid(self.twice(self.twice(drive_objects(latent[:, 0], latent[:, 1]))))
        return super().decode(latent)


class Rounded(torch.autograd.Function):
    """Straight-through rounding (as in VQ models): differentiable backward, but no forward mode."""

    @staticmethod
    def forward(ctx: object, values: Tensor) -> Tensor:
        return values.round()

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:
        return grad


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        (NoDecode(), {}, r"\(NoDecode\) has no callable decode: lns needs encode\(images\)"),
        (Faulty("range"), {}, r"outside \[0, 1\].*decodes_logits = True"),
        (Faulty("nan_latent"), {}, r"Faulty.encode returned NaN or inf for image\(s\) \[0, 1, 2\]"),
        (Faulty("nan_output"), {}, r"Faulty.decode returned NaN or inf"),
        (Faulty("batch"), {}, r"latent shaped \(2, 3\) for 1 image\(s\).*batch size of 1"),
        (
            Faulty("none"),
            {"site": "decoder.7"},
            r"site=decoder.7 is not a layer of the Faulty; valid names .*: twice\.",
        ),
        (Faulty("rounding"), {"method": "jacobian"}, r"Jacobian cannot be taken through Faulty.*Use the noise method"),
        (Faulty("shared"), {"site": "twice"}, r"site=twice \(ReLU\) runs 2 times while Faulty encodes and decodes"),
        (Faulty("none"), {"method": "nope"}, r"method='nope' is unknown"),
        (Faulty("none"), {"noise_std": 0.0}, r"noise_std=0.0 must be positive"),
        (Faulty("none"), {"n_clusters": [2, 3]}, r"n_clusters gives 2 counts for 3 images"),
    ],
)
def test_a_model_that_breaks_the_protocol_gets_one_clear_error(model: object, options: dict, message: str) -> None:
    settings = {"n_clusters": 3, "perturbations": 3, **options}
    with pytest.raises(LNSError, match=message) as error:
        lns.segment_images(model, IMAGES, **settings)
    assert "\n" not in str(error.value)


def test_images_outside_the_unit_range_are_refused() -> None:
    with pytest.raises(LNSError, match=r"images must hold finite values in \[0, 1\]"):
        lns.segment_images(VectorModel(), IMAGES * 255, n_clusters=3)
