"""Autoencoder models and import/export of the authors' checkpoint format."""

from lns.models.authors_checkpoint import (
    AuthorsCheckpoint,
    is_authors_checkpoint,
    load_authors_checkpoint,
    write_authors_checkpoint,
)
from lns.models.autoencoder import SUPPORTED_IMAGE_SIZES, Autoencoder

__all__ = [
    "SUPPORTED_IMAGE_SIZES",
    "AuthorsCheckpoint",
    "Autoencoder",
    "is_authors_checkpoint",
    "load_authors_checkpoint",
    "write_authors_checkpoint",
]
