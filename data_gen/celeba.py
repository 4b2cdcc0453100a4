"""dCeleba: faces and their part labels, read from a CelebAMask-HQ folder.

Layout: ``CelebA-HQ-img/<j>.jpg`` (1024x1024) and ``CelebAMask-HQ-mask-anno/<j // 2000>/<jjjjj>_<part>.png``
(512x512, white where the part is). Part labels 1..18 follow `PARTS`; later parts overwrite earlier ones and
missing part files are skipped. Images and masks are subsampled to the target size by striding. The first
``n_test`` images are the test set (``test_1`` holds the same images, so every split exists), the next
``n_valid`` the validation set, the following ones (up to ``n_train``) the training set. No colour scaling.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from data_gen.writer import Chunk
from lns.errors import LNSError

IMAGE_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
FOLDER_SPAN = 2000
PARTS = (
    "skin",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "eye_g",
    "l_ear",
    "r_ear",
    "ear_r",
    "nose",
    "mouth",
    "u_lip",
    "l_lip",
    "neck",
    "neck_l",
    "cloth",
    "hair",
    "hat",
)
READ_CHUNK = 64
_LAYOUT = (
    f"The folder must contain {IMAGE_DIR}/<j>.jpg (1024x1024 faces, j = 0, 1, ...) and "
    f"{MASK_DIR}/<j // {FOLDER_SPAN}>/<jjjjj>_<part>.png (512x512 part masks)."
)
_DOWNLOAD = (
    "dCeleba is made from CelebAMask-HQ (from the authors of MaskGAN, "
    "https://github.com/switchablenorms/CelebAMask-HQ); download and unpack it, then pass "
    "celeba_dir=/path/to/CelebAMask-HQ."
)


def check_folder(celeba_dir: Path | None) -> Path:
    """The CelebAMask-HQ folder, or LNSError naming the download and the expected layout."""
    if celeba_dir is None:
        raise LNSError(f"No celeba_dir given. {_DOWNLOAD} {_LAYOUT}")
    root = Path(celeba_dir)
    for sub in (IMAGE_DIR, MASK_DIR):
        if not (root / sub).is_dir():
            raise LNSError(f"{root / sub} does not exist. {_DOWNLOAD} {_LAYOUT}")
    return root


def count_images(root: Path) -> int:
    """How many consecutive images 0.jpg, 1.jpg, ... the folder holds."""
    present = {p.stem for p in (root / IMAGE_DIR).glob("*.jpg")}
    count = 0
    while str(count) in present:
        count += 1
    return count


def split_ranges(available: int, n_train: int, n_valid: int, n_test: int) -> dict[str, range]:
    """Image indices per split: test (and test_1) first, then valid, then up to n_train training images."""
    if available <= n_test + n_valid:
        raise LNSError(
            f"The CelebAMask-HQ folder holds {available} consecutive images (0.jpg ...), but n_test={n_test} "
            f"plus n_valid={n_valid} leave none for training. Lower n_test/n_valid or complete the folder."
        )
    test = range(n_test)
    valid = range(n_test, n_test + n_valid)
    train = range(n_test + n_valid, min(available, n_test + n_valid + n_train))
    return {"train": train, "valid": valid, "test_1": test, "test": test}


def _open(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except (OSError, UnidentifiedImageError) as error:
        raise LNSError(f"Cannot read {path} ({error}). Re-download that file. {_LAYOUT}") from error


def _stride(path: Path, array: np.ndarray, image_size: int) -> int:
    height, width = array.shape[:2]
    if height != width or width % image_size:
        raise LNSError(
            f"{path} is {width}x{height}; it must be square with a side that is a multiple of {image_size}. {_LAYOUT}"
        )
    return width // image_size


def read_image(root: Path, index: int, image_size: int) -> np.ndarray:
    """One face as float32 (3, S, S) in [0, 1], subsampled by striding."""
    path = root / IMAGE_DIR / f"{index}.jpg"
    pixels = _open(path, "RGB")
    step = _stride(path, pixels, image_size)
    return (pixels[::step, ::step].transpose(2, 0, 1) / 255.0).astype(np.float32)


def read_labels(root: Path, index: int, image_size: int) -> np.ndarray:
    """Part labels (S, S) uint8 of one face: 0 background, 1..18 the parts, later parts on top."""
    labels = np.zeros((image_size, image_size), dtype=np.uint8)
    folder = root / MASK_DIR / str(index // FOLDER_SPAN)
    for label, part in enumerate(PARTS, start=1):
        path = folder / f"{index:05d}_{part}.png"
        if path.is_file():
            mask = _open(path, "L")
            step = _stride(path, mask, image_size)
            labels[mask[::step, ::step] >= 128] = label
    return labels


def read(root: Path, indices: range, image_size: int, *, masked: bool) -> Iterator[Chunk]:
    """The images (and, when ``masked``, part labels as masks and detailed masks) of a split, in chunks."""
    for start in range(0, len(indices), READ_CHUNK):
        batch = indices[start : start + READ_CHUNK]
        images = np.stack([read_image(root, j, image_size) for j in batch])
        if not masked:
            yield Chunk(images)
            continue
        labels = np.stack([read_labels(root, j, image_size) for j in batch])
        yield Chunk(images, labels, labels.copy())


def settings(root: Path, ranges: dict[str, range]) -> dict[str, Any]:
    """What the manifest records about the source."""
    return {
        "source": str(root),
        "parts": list(PARTS),
        "index_ranges": {split: [r.start, r.stop] for split, r in ranges.items()},
        "test_1": "the same images as test",
    }
