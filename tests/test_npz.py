"""The npz format: round trips, the authors' quirks, every documented error, and fuzzed malformed input."""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lns.data.catalog import dataset_dir, folder_name, generate_command
from lns.data.npz import NpzWriter, SplitArrays, load_split, save_split, validate_split_arrays
from lns.errors import LNSError

N, SIZE = 4, 64


def _arrays(n: int = N, size: int = SIZE, detailed: bool = True) -> SplitArrays:
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 3, size=(n, size, size)).astype(np.uint8)
    return SplitArrays(
        images=rng.random((n, 3, size, size), dtype=np.float32),
        masks=masks,
        detailed_masks=(masks * 2).astype(np.uint8) if detailed else None,
    )


def _folder(tmp_path: Path, name: str = "dKanizsa") -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_round_trip_and_plain_numpy_keys(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    arrays = _arrays()
    save_split(folder / "test.npz", arrays)
    save_split(folder / "train.npz", SplitArrays(arrays.images, None, None))
    save_split(folder / "test_1.npz", _arrays(detailed=False))
    with np.load(folder / "test.npz") as raw:
        assert sorted(raw.files) == ["detailed_masks", "images", "masks"]
        assert raw["images"].dtype == np.float32 and raw["masks"].dtype == np.uint8
    with np.load(folder / "test_1.npz") as raw:
        assert sorted(raw.files) == ["images", "masks"]
    with np.load(folder / "train.npz") as raw:
        assert raw.files == ["images"]
    loaded = load_split(folder, "test")
    np.testing.assert_array_equal(loaded.images, arrays.images)
    assert loaded.masks.dtype == np.int64 and loaded.detailed_masks.dtype == np.int64
    np.testing.assert_array_equal(loaded.masks, arrays.masks)
    np.testing.assert_array_equal(loaded.detailed_masks, arrays.detailed_masks)
    train = load_split(folder, "train")
    assert train.masks is None and train.detailed_masks is None
    assert load_split(folder, "test_1").detailed_masks is None


def test_writes_are_byte_reproducible_and_atomic(tmp_path: Path) -> None:
    arrays = _arrays()
    digests = []
    for name in ("a", "b"):
        folder = _folder(tmp_path, name)
        save_split(folder / "test.npz", arrays)
        digests.append(hashlib.sha256((folder / "test.npz").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    folder = _folder(tmp_path, "c")
    with pytest.raises(RuntimeError), NpzWriter(folder / "test.npz") as writer:
        writer.add("images", arrays.images)
        raise RuntimeError("interrupted")
    assert list(folder.iterdir()) == []


def test_streamed_member_must_match_its_declared_rows(tmp_path: Path) -> None:
    writer = NpzWriter(tmp_path / "x.npz")
    stream = writer.stream("images", (4, 3, SIZE, SIZE), np.float32)
    stream.write(np.zeros((3, 3, SIZE, SIZE), np.float32))
    with pytest.raises(ValueError, match="declared"):
        stream.close()
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def _authors_file(path: Path, images: np.ndarray, masks: np.ndarray, detailed: object) -> None:
    np.savez_compressed(path, images=images, masks=masks, detailed_masks=detailed)


def test_reads_the_authors_quirks(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "dClosure")
    images = np.random.default_rng(1).random((N, 3, SIZE, SIZE))  # float64
    masks = np.zeros((N, SIZE, SIZE, 1))  # float64, trailing axis
    masks[:, 10:20, 10:20] = 1
    _authors_file(folder / "test.npz", images, masks, None)  # pickled None
    loaded = load_split(folder, "test")
    assert loaded.images.dtype == np.float32 and loaded.images.shape == (N, 3, SIZE, SIZE)
    assert loaded.masks.shape == (N, SIZE, SIZE) and loaded.masks.dtype == np.int64
    assert loaded.detailed_masks is None
    _authors_file(folder / "test_1.npz", images, masks[..., 0], np.zeros((N, 16, 16)))
    with pytest.warns(UserWarning, match="Ignoring `detailed_masks`"):
        assert load_split(folder, "test_1").detailed_masks is None
    np.savez_compressed(folder / "train.npz", images=images)
    assert load_split(folder, "train").images.dtype == np.float32


def _write_raw(folder: Path, split: str, **arrays: object) -> None:
    np.savez(folder / f"{split}.npz", **arrays)


GOOD = np.zeros((2, 3, SIZE, SIZE), np.float32)
LABELS = np.zeros((2, SIZE, SIZE), np.uint8)
BAD_CASES = {
    "missing images": ("test", {"masks": LABELS}, "`images` is missing"),
    "missing masks": ("test", {"images": GOOD}, "`masks` is missing"),
    "channels last": ("train", {"images": GOOD.transpose(0, 2, 3, 1)}, "channels-last"),
    "one channel": ("train", {"images": GOOD[:, :1]}, "one channel"),
    "wrong ndim": ("train", {"images": GOOD[0]}, "expected (N, 3, H, W)"),
    "not square": ("train", {"images": GOOD[:, :, :, :32]}, "not square"),
    "unsupported size": ("train", {"images": GOOD[:, :, :32, :32]}, "only 64 and 256"),
    "text dtype": ("train", {"images": np.full((2, 3, SIZE, SIZE), "a")}, "non-numeric"),
    "above one": ("train", {"images": GOOD + 2}, "outside [0, 1]"),
    "nan": ("train", {"images": np.where(GOOD == 0, np.nan, GOOD)}, "NaN"),
    "empty": ("train", {"images": GOOD[:0]}, "empty"),
    "mask shape": ("test", {"images": GOOD, "masks": LABELS[:, :32]}, "`masks` has shape"),
    "negative mask": ("test", {"images": GOOD, "masks": LABELS.astype(int) - 1}, "negative"),
    "fractional mask": ("test", {"images": GOOD, "masks": LABELS + 0.5}, "non-integer"),
    "pickled images": ("train", {"images": np.array([None, 1], dtype=object)}, "pickled"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_every_bad_array_is_an_lns_error(tmp_path: Path, case: str) -> None:
    split, arrays, message = BAD_CASES[case]
    folder = _folder(tmp_path)
    _write_raw(folder, split, **arrays)
    with pytest.raises(LNSError, match=re.escape(message)) as info:
        load_split(folder, split, name="kanizsa", data_dir=tmp_path)
    assert "\n" not in str(info.value)
    assert "python -m data_gen dataset=kanizsa" in str(info.value)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(LNSError, match=r"does not exist.*python -m data_gen dataset=kanizsa"):
        load_split(tmp_path / "dKanizsa", "train", name="kanizsa", data_dir=tmp_path)
    folder = _folder(tmp_path)
    with pytest.raises(LNSError, match=r"train\.npz is missing.*overwrite=true"):
        load_split(folder, "train")
    (folder / "train.npz").write_bytes(b"not a zip at all")
    with pytest.raises(LNSError, match=r"not a readable \.npz"):
        load_split(folder, "train")
    save_split(folder / "valid.npz", SplitArrays(GOOD, None, None))
    data = (folder / "valid.npz").read_bytes()
    (folder / "valid.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(LNSError, match="truncated or corrupt"):
        load_split(folder, "valid")
    with pytest.raises(LNSError, match="Unknown split"):
        load_split(folder, "training")


def test_validate_split_arrays_is_the_generator_self_check() -> None:
    validate_split_arrays(GOOD, LABELS, None, "test", "memory")
    with pytest.raises(LNSError, match="has no `masks`"):
        validate_split_arrays(GOOD, None, None, "test_1", "memory")
    with pytest.raises(LNSError, match="`detailed_masks` has shape"):
        validate_split_arrays(GOOD, LABELS, LABELS[:1], "test", "memory")


def test_catalog_names_and_command(tmp_path: Path) -> None:
    assert folder_name("kanizsa") == "dKanizsa" and folder_name("closure", 256) == "dClosure_256"
    assert dataset_dir(tmp_path, "illusory_occlusion") == tmp_path / "dIlluOcclusion"
    command = generate_command("kanizsa", tmp_path, 256)
    assert command.startswith("python -m data_gen dataset=kanizsa") and "image_size=256" in command
    with pytest.raises(LNSError, match="closure, continuity"):
        folder_name("kanisza")
    with pytest.raises(LNSError, match="64 and 256"):
        folder_name("kanizsa", 128)


# ----------------------------------------------------------------------------------------------- fuzzing

_FUZZ = settings(
    max_examples=int(os.environ.get("LNS_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _load_or_lns_error(folder: Path, split: str) -> None:
    try:
        loaded = load_split(folder, split)
    except LNSError:
        return
    assert loaded.images.dtype == np.float32 and loaded.images.ndim == 4
    assert loaded.images.min() >= 0 and loaded.images.max() <= 1


@pytest.mark.filterwarnings("ignore:Ignoring `detailed_masks`")
@_FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_escape_as_other_errors(tmp_path: Path, data: bytes) -> None:
    folder = _folder(tmp_path)
    (folder / "test.npz").write_bytes(data)
    _load_or_lns_error(folder, "test")


_DTYPES = st.sampled_from(["float32", "float64", "uint8", "int64", "bool", "complex64", "U1", "int8"])


@st.composite
def _malformed(draw: st.DrawFn) -> dict[str, np.ndarray]:
    arrays = {}
    for key in draw(st.sets(st.sampled_from(["images", "masks", "detailed_masks", "other"]))):
        ndim = draw(st.integers(0, 5))
        shape = tuple(draw(st.sampled_from([0, 1, 2, 3, 16, 64])) for _ in range(ndim))
        if np.prod(shape) > 200_000:
            shape = shape[:2]
        dtype = draw(_DTYPES)
        fill = draw(st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.0, np.nan, np.inf]))
        with np.errstate(invalid="ignore"):
            value = np.full(shape, fill).astype(dtype) if dtype != "U1" else np.full(shape, "x")
        arrays[key] = value
    return arrays


@pytest.mark.filterwarnings("ignore:Ignoring `detailed_masks`")
@_FUZZ
@given(arrays=_malformed(), split=st.sampled_from(["train", "test"]))
def test_malformed_arrays_load_or_raise_lns_error(tmp_path: Path, arrays: dict, split: str) -> None:
    folder = _folder(tmp_path)
    with np.errstate(invalid="ignore"):
        np.savez(folder / f"{split}.npz", **arrays)
    _load_or_lns_error(folder, split)


_VALID_BYTES: dict[str, bytes] = {}


def _valid_archive() -> bytes:
    if "test" not in _VALID_BYTES:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for key, value in (("images", GOOD), ("masks", LABELS)):
                member = io.BytesIO()
                np.save(member, value)
                archive.writestr(f"{key}.npy", member.getvalue())
        _VALID_BYTES["test"] = buffer.getvalue()
    return _VALID_BYTES["test"]


@pytest.mark.filterwarnings("ignore:Ignoring `detailed_masks`")
@_FUZZ
@given(
    cut=st.integers(0, 10_000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4),
)
def test_damaged_archives_load_or_raise_lns_error(tmp_path: Path, cut: int, flips: list) -> None:
    data = bytearray(_valid_archive())
    for position, mask in flips:
        data[position % len(data)] ^= mask
    folder = _folder(tmp_path)
    (folder / "test.npz").write_bytes(bytes(data[: len(data) - cut % len(data)] if cut % 3 else data))
    _load_or_lns_error(folder, "test")
