"""Pictures from a folder (``run_segment.py images=<folder>``): PNG and JPEG files as images in [0, 1], and label masks
named like them. Every problem is an :class:`LNSError` naming the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lns.errors import LNSError

EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class PictureFolder:
    """The pictures of a folder, sorted by file name: ``images`` (N, C, H, W) float32 in [0, 1]."""

    folder: Path
    files: list[Path]
    images: np.ndarray

    @property
    def names(self) -> list[str]:
        """File names without their extension (the names of the output pictures)."""
        return [path.stem for path in self.files]


def picture_files(folder: Path) -> list[Path]:
    """The PNG and JPEG files directly in ``folder``, sorted by name; none (or no folder) is an :class:`LNSError`."""
    if not folder.is_dir():
        raise LNSError(f"images={folder} is not a folder; pass a folder of PNG or JPEG pictures.")
    files = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in EXTENSIONS)
    if not files:
        raise LNSError(f"images={folder} holds no PNG or JPEG file ({', '.join(EXTENSIONS)}).")
    return files


def _open(path: Path, size: int, resize: bool, mode: str, resample: Image.Resampling) -> Image.Image:
    try:
        with Image.open(path) as opened:
            picture = opened.convert(mode) if mode else opened.copy()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise LNSError(f"{path} cannot be read as a picture ({type(error).__name__}: {error}).") from None
    if picture.size != (size, size):
        if not resize:
            raise LNSError(
                f"{path} is {picture.size[0]}x{picture.size[1]} pixels, but the model takes {size}x{size}; resize the "
                "pictures, or pass images.resize=true to resize them on reading."
            )
        picture = picture.resize((size, size), resample)
    return picture


def read_pictures(folder: str | Path, *, size: int, channels: int = 3, resize: bool = False) -> PictureFolder:
    """Every picture of ``folder`` as RGB (``channels=3``) or grey (``channels=1``) floats in [0, 1], ``size`` x
    ``size`` pixels (another size is an error, unless ``resize``: bilinear)."""
    folder = Path(folder)
    files = picture_files(folder)
    mode = "RGB" if channels == 3 else "L"
    arrays = []
    for path in files:
        picture = np.asarray(_open(path, size, resize, mode, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        arrays.append(picture.reshape(size, size, channels).transpose(2, 0, 1))
    return PictureFolder(folder, files, np.stack(arrays))


def _labels(picture: Image.Image) -> np.ndarray:
    """A mask's labels: the values of a one-channel picture, or for a colour one each colour's number (black 0)."""
    array = np.asarray(picture)
    if array.ndim == 2:
        return array.astype(np.int64)
    colours, labels = np.unique(array.reshape(-1, array.shape[-1]), axis=0, return_inverse=True)
    labels = labels.reshape(array.shape[:2]).astype(np.int64)
    return labels if not colours[0].any() else labels + 1  # black sorts first: it is label 0 when present


def read_masks(folder: str | Path, names: list[str], *, size: int, resize: bool = False) -> np.ndarray:
    """Label masks (N, size, size) int64 for the pictures ``names``: ``<folder>/<name>.png`` (or .jpg/.jpeg), 0 =
    background. A one-channel mask holds the labels as values; in a colour mask every colour is one label."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LNSError(f"masks={folder} is not a folder; pass the folder of masks named like the pictures.")
    available = {path.stem: path for path in picture_files(folder)}
    missing = [name for name in names if name not in available]
    if missing:
        raise LNSError(
            f"masks={folder} has no mask for {len(missing)} picture(s), e.g. {', '.join(missing[:5])}: each picture "
            "<name>.png needs a mask <name>.png (values = labels, 0 = background)."
        )
    return np.stack(
        [_labels(_open(available[name], size, resize, "", Image.Resampling.NEAREST)) for name in names]
    ).astype(np.int64)
