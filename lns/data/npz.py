"""The npz dataset format: reading (ours and the authors' files), validation, and atomic reproducible writing.

A dataset folder holds ``train.npz`` and ``valid.npz`` (key ``images``) and ``test_1.npz`` and ``test.npz``
(keys ``images``, ``masks`` and, where the dataset defines them, ``detailed_masks``). Every format check lives
here: the data module, the segmenter and the generator's self-check all call the same functions.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import tokenize
import warnings
import zipfile
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from lns.data.catalog import QUICK_START_SIZES, SUPPORTED_IMAGE_SIZES, generate_command, name_from_folder
from lns.errors import LNSError
from lns.runs.atomic import replace_durably

SPLITS: tuple[str, ...] = ("train", "valid", "test_1", "test")
MASKED_SPLITS: tuple[str, ...] = ("test_1", "test")
ARRAY_KEYS: tuple[str, ...] = ("images", "masks", "detailed_masks")

_MAX_HEADER_SIZE = 10_000
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Everything a damaged or hostile archive can make zipfile / zlib / numpy's npy reader raise.
_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    MemoryError,
    KeyError,
    IndexError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    OverflowError,
    SyntaxError,
    TypeError,
    tokenize.TokenError,
)


@dataclass(frozen=True)
class SplitArrays:
    """One split in memory: float32 images (N,3,H,W) in [0,1]; int64 masks (N,H,W) or None."""

    images: np.ndarray
    masks: np.ndarray | None
    detailed_masks: np.ndarray | None


class _PickledObject:
    """Marks an archive member stored as a pickled object array (never unpickled)."""


_PICKLED = _PickledObject()


# ----------------------------------------------------------------------------------------------- validation


def _fail(problem: str, source: str, fix: str) -> LNSError:
    return LNSError(f"{problem} in {source}. {fix}")


def _check_numeric(array: np.ndarray, key: str, source: str, fix: str, kinds: str) -> None:
    if not isinstance(array, np.ndarray):
        raise _fail(f"`{key}` is a {type(array).__name__}, not a NumPy array", source, fix)
    if array.dtype.kind not in kinds:
        raise _fail(f"`{key}` has the non-numeric dtype {array.dtype}", source, fix)


def _check_images(images: np.ndarray, source: str, fix: str) -> None:
    _check_numeric(images, "images", source, fix, "iuf")
    shape = images.shape
    if images.ndim != 4:
        raise _fail(f"`images` has shape {shape}; expected (N, 3, H, W)", source, fix)
    if shape[0] == 0:
        raise _fail("the split is empty (`images` holds 0 images)", source, fix)
    if shape[1] != 3:
        if shape[-1] in (1, 3):
            problem = f"`images` has the channels-last shape {shape}; expected (N, 3, H, W)"
            raise _fail(problem, source, f"Store them channels-first: images.transpose(0, 3, 1, 2). {fix}")
        if shape[1] == 1:
            problem = f"`images` has shape {shape} with one channel; the models expect 3 (RGB)"
            raise _fail(problem, source, f"Repeat the channel: np.repeat(images, 3, axis=1). {fix}")
        raise _fail(f"`images` has shape {shape}; expected (N, 3, H, W)", source, fix)
    if shape[2] != shape[3]:
        raise _fail(f"`images` are not square ({shape[2]}x{shape[3]})", source, fix)
    if shape[2] not in SUPPORTED_IMAGE_SIZES:
        sizes = " and ".join(map(str, SUPPORTED_IMAGE_SIZES))
        problem = f"`images` are {shape[2]}x{shape[3]} but only {sizes} pixel images are supported"
        raise _fail(problem, source, fix)
    low, high = images.min(), images.max()
    if not (low >= 0 and high <= 1):
        if images.dtype.kind == "f" and not np.isfinite(images).all():
            raise _fail("`images` contain NaN or infinite values", source, fix)
        problem = f"`images` have values in [{low}, {high}], outside [0, 1]"
        raise _fail(problem, source, f"Divide 8-bit images by 255. {fix}")


def _check_labels(labels: np.ndarray, key: str, expected: tuple[int, ...], source: str, fix: str) -> None:
    _check_numeric(labels, key, source, fix, "buif")
    if labels.shape != expected:
        problem = f"`{key}` has shape {labels.shape} but the images need (N, H, W) = {expected}"
        raise _fail(problem, source, fix)
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise _fail(f"`{key}` contain NaN or infinite values", source, fix)
        if not np.array_equal(labels, np.round(labels)):
            raise _fail(f"`{key}` contain non-integer labels", source, fix)
    if labels.size and labels.min() < 0:
        raise _fail(f"`{key}` contain negative labels (minimum {labels.min()})", source, fix)


def _validate(
    images: np.ndarray,
    masks: np.ndarray | None,
    detailed_masks: np.ndarray | None,
    split: str,
    source: str,
    fix: str,
) -> None:
    if split not in SPLITS:
        raise LNSError(f"Unknown split {split!r}. Valid splits are: {', '.join(SPLITS)}.")
    _check_images(images, source, fix)
    expected = (images.shape[0], images.shape[2], images.shape[3])
    if split in MASKED_SPLITS and masks is None:
        raise _fail(f"the {split} split has no `masks`", source, fix)
    if masks is not None:
        _check_labels(masks, "masks", expected, source, fix)
    if detailed_masks is not None:
        _check_labels(detailed_masks, "detailed_masks", expected, source, fix)


def validate_split_arrays(
    images: np.ndarray,
    masks: np.ndarray | None,
    detailed_masks: np.ndarray | None,
    split: str,
    source: str,
) -> None:
    """Raise LNSError unless the arrays form a valid split (the checks `load_split` applies to files)."""
    fix = "Fix the arrays (images float (N, 3, H, W) in [0, 1], integer masks (N, H, W)) or regenerate them."
    _validate(images, masks, detailed_masks, split, source, fix)


# ----------------------------------------------------------------------------------------------- reading


def _regenerate_hint(root: Path, name: str | None, data_dir: Path | None, *, overwrite: bool) -> str:
    """The command that makes the dataset: "Generate it" at the quick start's size when the folder is missing,
    "Regenerate it" (with ``overwrite=true``) when it is incomplete or damaged."""
    known = name_from_folder(root.name)
    key = name or (known[0] if known else None)
    size = known[1] if known else 64
    verb = "Regenerate" if overwrite else "Generate"
    if key is None:
        return f"{verb} the dataset with `python -m data_gen dataset=<name> paths.data_dir=<dir>`."
    command = generate_command(key, data_dir if data_dir is not None else root.parent, size)
    if overwrite:
        return f"Regenerate it with `{command} overwrite=true`."
    sizes = " ".join(f"{setting}={count}" for setting, count in QUICK_START_SIZES.items())
    return (
        f"Generate it with `{command} {sizes}` (the quick start's size, seconds to make; without the n_ settings "
        "it makes the full 30,000 training images)."
    )


def _read_header(handle: zipfile.ZipExtFile) -> tuple[tuple[int, ...], np.dtype, int]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle, max_header_size=_MAX_HEADER_SIZE)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle, max_header_size=_MAX_HEADER_SIZE)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(shape), dtype, handle.tell()


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray | _PickledObject:
    with archive.open(info) as handle:
        shape, dtype, header_bytes = _read_header(handle)
    if dtype.hasobject:
        return _PICKLED
    expected = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if expected != info.file_size - header_bytes:
        raise ValueError(
            f"member {info.filename} declares shape {shape} ({expected} bytes) but holds "
            f"{info.file_size - header_bytes} bytes"
        )
    with archive.open(info) as handle:
        array = np.lib.format.read_array(handle, allow_pickle=False, max_header_size=_MAX_HEADER_SIZE)
        if handle.read(1):
            raise ValueError(f"member {info.filename} has trailing data")
    return array


def _read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray | _PickledObject]:
    """Read the wanted members of an npz archive without ever unpickling; raise the reader's own errors."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        return {key: _read_member(archive, members[key]) for key in keys if key in members}


def _squeeze_trailing(labels: np.ndarray | None) -> np.ndarray | None:
    if labels is not None and labels.ndim == 4 and labels.shape[-1] == 1:
        return labels[..., 0]
    return labels


def split_file(dataset_dir: Path, split: str, *, name: str | None = None, data_dir: Path | None = None) -> Path:
    """The ``<split>.npz`` file of a dataset folder; a missing folder or file is an :class:`LNSError` with the
    ``python -m data_gen`` command that makes it (reads nothing, so it can run before the data are needed)."""
    if split not in SPLITS:
        raise LNSError(f"Unknown split {split!r}. Valid splits are: {', '.join(SPLITS)}.")
    root = Path(dataset_dir)
    if not root.is_dir():
        raise LNSError(
            f"Dataset folder {root} does not exist. {_regenerate_hint(root, name, data_dir, overwrite=False)}"
        )
    path = root / f"{split}.npz"
    if not path.is_file():
        present = sorted(p.name for p in root.glob("*.npz"))
        raise LNSError(
            f"{path} is missing (the folder holds {', '.join(present) or 'no .npz files'}), so the dataset "
            f"is incomplete. {_regenerate_hint(root, name, data_dir, overwrite=True)}"
        )
    return path


def load_split(dataset_dir: Path, split: str, *, name: str | None = None, data_dir: Path | None = None) -> SplitArrays:
    """Load and validate one split of a dataset folder (ours or the authors')."""
    path = split_file(dataset_dir, split, name=name, data_dir=data_dir)
    root = path.parent
    fix = _regenerate_hint(root, name, data_dir, overwrite=True)
    try:
        raw = _read_npz(path, ARRAY_KEYS if split in MASKED_SPLITS else ("images",))
    except _READ_ERRORS as error:
        raise LNSError(
            f"{path} is not a readable .npz archive ({type(error).__name__}: {error}); it may be truncated "
            f"or corrupt. {fix}"
        ) from error
    if "images" not in raw:
        raise _fail("the key `images` is missing", str(path), fix)
    images = raw["images"]
    if isinstance(images, _PickledObject):
        raise _fail("`images` is stored as a pickled object array, which is never loaded", str(path), fix)
    masks = None
    detailed = None
    if split in MASKED_SPLITS:
        masks = raw.get("masks")
        if masks is None:
            raise _fail(f"the key `masks` is missing from the {split} split", str(path), fix)
        if isinstance(masks, _PickledObject):
            raise _fail("`masks` is stored as a pickled object array, which is never loaded", str(path), fix)
        masks = _squeeze_trailing(masks)
        found = raw.get("detailed_masks")
        detailed = None if isinstance(found, _PickledObject) else _squeeze_trailing(found)
        expected = (images.shape[0], *images.shape[2:]) if images.ndim == 4 else None
        if detailed is not None and expected is not None and detailed.shape != expected:
            warnings.warn(
                f"Ignoring `detailed_masks` of shape {detailed.shape} in {path}: they do not match the "
                f"images {images.shape} (the authors' dClosure test_1 file stores them subsampled).",
                stacklevel=2,
            )
            detailed = None
    _validate(images, masks, detailed, split, str(path), fix)
    return SplitArrays(
        images=np.ascontiguousarray(images, dtype=np.float32),
        masks=None if masks is None else masks.astype(np.int64),
        detailed_masks=None if detailed is None else detailed.astype(np.int64),
    )


# ----------------------------------------------------------------------------------------------- writing


def _umask() -> int:
    """The process umask (mkstemp creates files 0600; finished files get the usual permissions)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


class ArrayStream:
    """Writes one ``.npy`` member of an `NpzWriter` in row chunks; the total row count is fixed up front.

    Compression runs on a background thread (zlib releases the GIL), so the caller can compute the next chunk
    meanwhile; a written chunk must not be modified afterwards.
    """

    _PENDING = 2

    def __init__(self, handle: zipfile.ZipExtFile, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._handle = handle
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npz-writer")
        self._pending: deque[Future[int]] = deque()
        self.shape = shape
        self.dtype = dtype
        self.rows = 0

    def write(self, chunk: np.ndarray) -> None:
        """Append rows (any count) of the declared dtype and trailing shape."""
        if chunk.dtype != self.dtype or chunk.shape[1:] != self.shape[1:]:
            raise ValueError(f"chunk {chunk.dtype} {chunk.shape} does not fit {self.dtype} {self.shape}")
        if self.rows + chunk.shape[0] > self.shape[0]:
            raise ValueError(f"more than the declared {self.shape[0]} rows")
        data = memoryview(np.ascontiguousarray(chunk)).cast("B")
        self._pending.append(self._worker.submit(self._handle.write, data))
        self.rows += chunk.shape[0]
        while len(self._pending) > self._PENDING:
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait for the background writes and finish the member."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._worker.shutdown(wait=True, cancel_futures=True)
        self._handle.close()
        if self.rows != self.shape[0]:
            raise ValueError(f"wrote {self.rows} rows of the declared {self.shape[0]}")


class NpzWriter:
    """Writes an ``.npz`` archive member by member, chunk by chunk, atomically and byte-reproducibly.

    The archive is written to a temporary file beside ``path`` and renamed over it by `commit`; members carry
    a fixed timestamp, so the same arrays always give the same bytes. ``numpy.load`` reads the result.
    """

    def __init__(self, path: str | Path, *, compresslevel: int = 1) -> None:
        self.path = Path(path)
        self._compresslevel = compresslevel
        prefix = f".{self.path.name}."
        descriptor, temporary = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=self.path.parent)
        self._temporary = Path(temporary)
        self._file = os.fdopen(descriptor, "wb")
        self._archive = zipfile.ZipFile(self._file, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self._open: ArrayStream | None = None

    def stream(self, key: str, shape: tuple[int, ...], dtype: np.dtype | type) -> ArrayStream:
        """Open member ``key`` for an array of ``shape`` and ``dtype``; close the stream before the next."""
        dtype = np.dtype(dtype)
        info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        info._compresslevel = self._compresslevel  # the only per-member knob zipfile offers before 3.13
        handle = self._archive.open(info, "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
        np.lib.format.write_array_header_1_0(handle, header)
        self._open = ArrayStream(handle, tuple(shape), dtype)
        return self._open

    def add(self, key: str, array: np.ndarray) -> None:
        """Write a whole array as member ``key``."""
        stream = self.stream(key, array.shape, array.dtype)
        stream.write(array)
        stream.close()

    def commit(self) -> Path:
        """Finish the archive and move it into place."""
        self._archive.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.chmod(self._temporary, 0o666 & ~_umask())
        replace_durably(self._temporary, self.path)
        return self.path

    def discard(self) -> None:
        """Abandon the archive and remove the temporary file."""
        if self._open is not None:
            with contextlib.suppress(OSError, ValueError, zlib.error):
                self._open.close()
        with contextlib.suppress(OSError, ValueError, zlib.error):
            self._archive.close()
        self._file.close()
        # A member that could not be finished (e.g. the disk is full) leaves the archive open for writing; drop
        # its file so that garbage collection does not try to finish it again.
        self._archive.fp = None
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def _as_uint8_labels(labels: np.ndarray, key: str, source: str) -> np.ndarray:
    if labels.size and labels.max() > 255:
        raise LNSError(f"`{key}` for {source} hold labels up to {labels.max()}; the format stores 0..255.")
    return labels.astype(np.uint8)


def save_split(path: Path, arrays: SplitArrays) -> None:
    """Validate and write one split atomically: float32 images, uint8 masks, no detailed_masks when None."""
    path = Path(path)
    split = path.stem if path.stem in SPLITS else ("test" if arrays.masks is not None else "train")
    validate_split_arrays(arrays.images, arrays.masks, arrays.detailed_masks, split, str(path))
    with NpzWriter(path) as writer:
        writer.add("images", np.ascontiguousarray(arrays.images, dtype=np.float32))
        if arrays.masks is not None:
            writer.add("masks", _as_uint8_labels(arrays.masks, "masks", str(path)))
        if arrays.detailed_masks is not None:
            writer.add("detailed_masks", _as_uint8_labels(arrays.detailed_masks, "detailed_masks", str(path)))
