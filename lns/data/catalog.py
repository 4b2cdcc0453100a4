"""The dataset registry: each dataset's name, folder and origin, and the command that generates each one.

:data:`DATASETS` is the one list of datasets: the data side (loading, the report's row order, messages) reads it
here, and the generator (``data_gen``) draws every dataset it marks ``drawn`` with the module ``data_gen/<name>.py``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from lns.errors import LNSError


@dataclass(frozen=True)
class Dataset:
    """One dataset of the registry."""

    name: str
    """The lower-case name on the command line (``data=<name>``, ``dataset=<name>``; ``conf/data/<name>.yaml``)."""
    folder: str
    """The folder under the data directory (the authors' name, e.g. ``dKanizsa``; ``_256`` appended at 256x256)."""
    drawn: bool = True
    """Drawn by the generator module ``data_gen/<name>.py``, one of the Good Gestalt sets of ``dataset=all``;
    False for a dataset made from files that come from elsewhere (CelebAMask-HQ)."""
    generate_arguments: str = ""
    """What ``python -m data_gen dataset=<name>`` needs besides the data folder and image size."""


DATASETS: tuple[Dataset, ...] = (
    Dataset("closure", "dClosure"),
    Dataset("continuity", "dContinuity"),
    Dataset("illusory_occlusion", "dIlluOcclusion"),
    Dataset("gradient_occlusion", "dGradOcclusion"),
    Dataset("kanizsa", "dKanizsa"),
    Dataset("proximity", "dProximity"),
    Dataset("celeba", "dCeleba", drawn=False, generate_arguments="celeba_dir=/path/to/CelebAMask-HQ"),
)
DATASET_FOLDERS: dict[str, str] = {dataset.name: dataset.folder for dataset in DATASETS}
GG_DATASETS: tuple[str, ...] = tuple(dataset.name for dataset in DATASETS if dataset.drawn)
SUPPORTED_IMAGE_SIZES: tuple[int, ...] = (64, 256)
HIGH_RES_SUFFIX = "_256"
# The dataset size of the quick start (`make demo`): enough for the quick-start preset, made in seconds.
QUICK_START_SIZES: dict[str, int] = {"n_train": 3000, "n_valid": 300, "n_test": 100}


def check_name(name: str) -> str:
    """Return the lower-case CLI name, or raise LNSError listing the valid names."""
    key = str(name).strip().lower()
    if key not in DATASET_FOLDERS:
        raise LNSError(
            f"Unknown dataset {name!r}. Valid names are: {', '.join(DATASET_FOLDERS)} "
            "(or 'all' for the six Good Gestalt datasets when generating)."
        )
    return key


def check_image_size(image_size: int) -> int:
    """Return the image size, or raise LNSError naming the supported sizes."""
    if isinstance(image_size, bool) or image_size not in SUPPORTED_IMAGE_SIZES:
        raise LNSError(
            f"Unsupported image size {image_size!r}: the datasets exist at "
            f"{' and '.join(map(str, SUPPORTED_IMAGE_SIZES))} pixels. Use image_size=64 or image_size=256."
        )
    return int(image_size)


def folder_name(name: str, image_size: int = 64) -> str:
    """The authors' folder name: ``dKanizsa`` at 64x64, ``dKanizsa_256`` at 256x256."""
    folder = DATASET_FOLDERS[check_name(name)]
    return folder + HIGH_RES_SUFFIX if check_image_size(image_size) == 256 else folder


def dataset_dir(data_dir: str | Path, name: str, image_size: int = 64) -> Path:
    """The folder of one dataset under ``data_dir``."""
    return Path(data_dir) / folder_name(name, image_size)


def name_from_folder(folder: str) -> tuple[str, int] | None:
    """Inverse of `folder_name`: ``dKanizsa_256`` -> ("kanizsa", 256); None for an unknown folder."""
    size = 256 if folder.endswith(HIGH_RES_SUFFIX) else 64
    base = folder.removesuffix(HIGH_RES_SUFFIX).lower()
    for name, known in DATASET_FOLDERS.items():
        if known.lower() == base:
            return name, size
    return None


def generate_command(name: str, data_dir: str | Path, image_size: int = 64) -> str:
    """The exact ``python -m data_gen ...`` command that writes this dataset into ``data_dir``."""
    key = check_name(name)
    parts = [
        "python -m data_gen",
        f"dataset={key}",
        f"paths.data_dir={shlex.quote(str(data_dir))}",
        f"image_size={check_image_size(image_size)}",
    ]
    extra = next(dataset.generate_arguments for dataset in DATASETS if dataset.name == key)
    return " ".join([*parts, extra] if extra else parts)
