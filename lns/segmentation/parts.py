"""Per-batch segmentation results on disk: crash-safe, resumable, merged at the end."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lns.errors import LNSError
from lns.runs.atomic import atomic_savez, atomic_write_text

PER_IMAGE_KEYS = ("index", "ari", "ari_fg", "n_clusters", "labels", "reconstructions")


@dataclass(frozen=True)
class SegmentationResults:
    """All finished images, sorted by their index in the split."""

    index: np.ndarray
    ari: np.ndarray
    ari_fg: np.ndarray
    n_clusters: np.ndarray
    labels: np.ndarray
    reconstructions: np.ndarray


class PartStore:
    """A folder of ``part-*.npz`` files, one per segmented batch, written atomically.

    ``settings`` (JSON-serialisable) are stored beside the parts; reopening the folder with other settings is an
    error, so results made with different noise or clustering settings are never mixed.
    """

    def __init__(self, directory: str | Path, settings: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        settings_file = self.directory / "settings.json"
        text = json.dumps(settings, sort_keys=True, indent=2)
        if settings_file.exists():
            if json.loads(settings_file.read_text()) != json.loads(text):
                raise LNSError(
                    f"{self.directory} holds partial results made with other settings ({settings_file}). "
                    "Segment into a new directory (leave hydra.run.dir at its default) or delete that folder."
                )
        else:
            atomic_write_text(settings_file, text)

    def _parts(self) -> list[Path]:
        return sorted(self.directory.glob("part-*.npz"))

    def done_indices(self) -> set[int]:
        """Indices of the images whose results are already on disk."""
        done: set[int] = set()
        for part in self._parts():
            with np.load(part) as arrays:
                done.update(int(i) for i in arrays["index"])
        return done

    def write_batch(self, *, features: dict[int, np.ndarray], **per_image: np.ndarray) -> None:
        """Store one batch (arrays keyed as ``PER_IMAGE_KEYS``) and the pixel features of selected images."""
        for index, values in features.items():
            atomic_savez(self.directory / f"features-{index:06d}.npz", features=values)
        first = int(per_image["index"].min())
        atomic_savez(self.directory / f"part-{first:06d}.npz", **{key: per_image[key] for key in PER_IMAGE_KEYS})

    def features(self, index: int) -> np.ndarray | None:
        """Pixel features of image ``index`` when they were kept (see ``umap_num``)."""
        path = self.directory / f"features-{index:06d}.npz"
        if not path.exists():
            return None
        with np.load(path) as arrays:
            return arrays["features"]

    def collect(self) -> SegmentationResults:
        """Merge all parts, sorted by image index."""
        parts = self._parts()
        if not parts:
            raise LNSError(f"No segmentation results in {self.directory}: no test image was segmented.")
        columns: dict[str, list[np.ndarray]] = {key: [] for key in PER_IMAGE_KEYS}
        for part in parts:
            with np.load(part) as arrays:
                for key in PER_IMAGE_KEYS:
                    columns[key].append(arrays[key])
        merged = {key: np.concatenate(values) for key, values in columns.items()}
        order = np.argsort(merged["index"], kind="stable")
        return SegmentationResults(**{key: values[order] for key, values in merged.items()})
