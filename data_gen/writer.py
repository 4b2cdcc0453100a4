"""Writing one dataset folder: self-checked atomic npz splits, sample grids, and a manifest written last.

The folder is built in a hidden temporary sibling (``.<name>.partial-<pid>-*``) and renamed into place only once
every split, figure and finally ``manifest.json`` is written, so a half-written dataset never sits under the
dataset's name; the partial folders of killed processes are removed when the next generation starts there. An
existing folder is replaced only when asked to (``overwrite=true``). A write that fails for lack of space stops
with a clear message and leaves the existing folder as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from lns.data.npz import MASKED_SPLITS, NpzWriter, validate_split_arrays
from lns.errors import LNSError
from lns.runs.atomic import atomic_write_text, replace_durably
from lns.runs.disk_full import disk_full_error, is_disk_full
from lns.runs.stale_files import remove_stale_partial_folders

MANIFEST = "manifest.json"
SAMPLES = 32  # images per sample grid (8 for 256x256 images, which keeps the grid small in memory)
FIGURE_SPLITS = ("train", "test")  # sample grids: training images; test images, masks and detailed masks


@dataclass(frozen=True)
class Chunk:
    """Consecutive images of a split as written: float32 images, uint8 masks (None for train/valid)."""

    images: np.ndarray
    masks: np.ndarray | None = None
    detailed_masks: np.ndarray | None = None


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse to touch an existing dataset folder unless ``overwrite`` is set."""
    if (target.exists() or target.is_symlink()) and not overwrite:
        complete = (target / MANIFEST).is_file()
        what = "a complete generated dataset" if complete else "existing files"
        raise LNSError(
            f"{target} already exists and holds {what}; it is left untouched. Pass overwrite=true to replace "
            "it, or choose another paths.data_dir."
        )


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, content: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(content, indent=2, sort_keys=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _labels(parts: list[np.ndarray], count: int) -> np.ndarray:
    labels = np.concatenate(parts)
    if labels.dtype != np.uint8 or len(labels) != count:
        raise ValueError(f"label chunks give {labels.dtype} {labels.shape}; expected uint8 for {count} images")
    return labels


class DatasetFolder:
    """Builds a dataset folder next to ``target`` and moves it there when `finish` is called."""

    def __init__(self, target: Path, *, overwrite: bool) -> None:
        self.target = Path(target)
        self.overwrite = overwrite
        check_target(self.target, overwrite)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partial_folders(self.target.parent)
        prefix = f".{self.target.name}.partial-{os.getpid()}-"
        self.work = Path(tempfile.mkdtemp(prefix=prefix, dir=self.target.parent))
        self.splits: dict[str, dict[str, Any]] = {}
        self.samples: dict[str, Chunk] = {}

    def write_split(
        self,
        split: str,
        count: int,
        chunks: Iterable[Chunk],
        *,
        on_chunk: Callable[[int], object] | None = None,
    ) -> None:
        """Stream ``count`` images of one split to ``<split>.npz``, checking every chunk first."""
        path = self.work / f"{split}.npz"
        masks: list[np.ndarray] = []
        detailed: list[np.ndarray] = []
        with NpzWriter(path) as archive:
            stream = None
            for chunk in chunks:
                source = f"generated {split} chunk of {self.target.name}"
                validate_split_arrays(chunk.images, chunk.masks, chunk.detailed_masks, split, source)
                if stream is None:
                    stream = archive.stream("images", (count, *chunk.images.shape[1:]), np.float32)
                stream.write(chunk.images)
                if split in MASKED_SPLITS:
                    masks.append(chunk.masks)
                    if chunk.detailed_masks is not None:
                        detailed.append(chunk.detailed_masks)
                if split in FIGURE_SPLITS:
                    self._keep_samples(split, chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk.images))
            if stream is None:
                raise LNSError(f"The {split} split of {self.target.name} is empty; ask for at least one image.")
            stream.close()
            arrays: dict[str, dict[str, Any]] = {"images": {"shape": list(stream.shape), "dtype": "float32"}}
            for key, parts in (("masks", masks), ("detailed_masks", detailed)):
                if parts:
                    labels = _labels(parts, count)
                    archive.add(key, labels)
                    arrays[key] = {
                        "shape": list(labels.shape),
                        "dtype": "uint8",
                        "labels": np.unique(labels).tolist(),
                    }
        self.splits[split] = {
            "file": path.name,
            "count": count,
            "arrays": arrays,
            "bytes": path.stat().st_size,
            "sha256": sha256(path),
        }

    def _keep_samples(self, split: str, chunk: Chunk) -> None:
        kept = self.samples.get(split)
        have = 0 if kept is None else len(kept.images)
        wanted = SAMPLES if chunk.images.shape[-1] <= 64 else SAMPLES // 4
        if have >= wanted:
            return
        take = slice(0, wanted - have)
        new = Chunk(
            chunk.images[take].copy(),
            None if chunk.masks is None else chunk.masks[take].copy(),
            None if chunk.detailed_masks is None else chunk.detailed_masks[take].copy(),
        )
        if kept is not None:
            new = Chunk(
                np.concatenate([kept.images, new.images]),
                None if new.masks is None else np.concatenate([kept.masks, new.masks]),
                None if new.detailed_masks is None else np.concatenate([kept.detailed_masks, new.detailed_masks]),
            )
        self.samples[split] = new

    def _figures(self) -> list[str]:
        from lns.viz.figures import save_image_grid, save_label_grid

        written = []
        name = self.target.name
        for split, sample in self.samples.items():
            written.append(save_image_grid(sample.images, self.work / f"{split}_images.png", title=f"{name} {split}"))
            if sample.masks is not None:
                path = self.work / f"{split}_masks.png"
                written.append(save_label_grid(sample.masks, path, title=f"{name} {split} masks"))
            if sample.detailed_masks is not None:
                path = self.work / f"{split}_detailed_masks.png"
                written.append(save_label_grid(sample.detailed_masks, path, title=f"{name} {split} detailed masks"))
        return [Path(p).name for p in written]

    def finish(self, description: dict[str, Any]) -> Path:
        """Draw the sample grids, write the manifest last, and move the folder into place."""
        figures = self._figures()
        manifest = {**description, "folder": self.target.name, "splits": self.splits, "figures": figures}
        _write_json(self.work / MANIFEST, manifest)
        check_target(self.target, self.overwrite)
        old = None
        if self.target.exists() or self.target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.replaced-", dir=self.target.parent))
            os.replace(self.target, old / self.target.name)
        os.chmod(self.work, 0o777 & ~_umask())
        replace_durably(self.work, self.target)
        if old is not None:
            shutil.rmtree(old)
        return self.target

    def abandon(self) -> None:
        """Remove the temporary folder."""
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> DatasetFolder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is not None or self.work.exists():
            self.abandon()
        if error is not None and is_disk_full(error):
            raise disk_full_error(getattr(error, "filename", None) or self.target) from error
