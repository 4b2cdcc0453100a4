"""Models: the protocol every model follows, its adapter, our autoencoders, diffusers' autoencoders, and import/export
of the authors' checkpoint format."""

from lns.models.adapter import ModelAdapter, as_adapter
from lns.models.authors_checkpoint import (
    AuthorsCheckpoint,
    is_authors_checkpoint,
    load_authors_checkpoint,
    write_authors_checkpoint,
)
from lns.models.autoencoder import SUPPORTED_IMAGE_SIZES, Autoencoder
from lns.models.configured import build_model
from lns.models.diffusers_autoencoder import DiffusersAutoencoder
from lns.models.diffusers_kl import DiffusersKL
from lns.models.protocol import SegmentableModel

__all__ = [
    "SUPPORTED_IMAGE_SIZES",
    "AuthorsCheckpoint",
    "Autoencoder",
    "DiffusersAutoencoder",
    "DiffusersKL",
    "ModelAdapter",
    "SegmentableModel",
    "as_adapter",
    "build_model",
    "is_authors_checkpoint",
    "load_authors_checkpoint",
    "write_authors_checkpoint",
]
