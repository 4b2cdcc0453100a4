"""Generate dataset folders: draw every split's parameters up front, then rasterise and write in chunks.

One random stream (``seed``) draws the training, then the validation parameters; ``test_1`` has its own stream
(the first child of ``seed``'s seed sequence), so it does not depend on ``n_train`` or ``n_valid``; a third
stream (``test_seed``) draws the special ``test`` set. Rendering works on slices of those parameters, so the
files do not depend on the chunk size. Training images are scaled by 999/1000 and validation images by
998/1000, so no colour value (other than black) is shared between splits.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from tqdm import tqdm

from data_gen import celeba
from data_gen.common import Params, compose, take
from data_gen.raster import Grid
from data_gen.writer import Chunk, DatasetFolder, check_target
from lns.data.catalog import GG_DATASETS, check_image_size, check_name, dataset_dir
from lns.data.npz import MASKED_SPLITS, SPLITS
from lns.errors import LNSError

log = logging.getLogger(__name__)

MODULES: dict[str, ModuleType] = {name: importlib.import_module(f"data_gen.{name}") for name in GG_DATASETS}
"""The generator of every dataset the catalog (:data:`lns.data.catalog.DATASETS`) marks ``drawn``: the module
``data_gen/<name>.py``."""
SCALES: dict[str, float] = {"train": 999 / 1000, "valid": 998 / 1000, "test_1": 1.0, "test": 1.0}
CHUNK_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Request:
    """What to generate and where."""

    datasets: tuple[str, ...]
    data_dir: Path
    n_train: int = 30000
    n_valid: int = 300
    n_test: int = 100
    image_size: int = 64
    seed: int = 42
    test_seed: int = 41
    overwrite: bool = False
    celeba_dir: Path | None = None

    def counts(self) -> dict[str, int]:
        return {"train": self.n_train, "valid": self.n_valid, "test_1": self.n_test, "test": self.n_test}


def parse_datasets(value: str | Sequence[str]) -> tuple[str, ...]:
    """``all``, one name, a comma-separated string or a list of names -> unique names in catalog order."""
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names: list[str] = []
    for item in (i.strip().lower() for i in items if str(i).strip()):
        for name in GG_DATASETS if item == "all" else (check_name(item),):
            if name not in names:
                names.append(name)
    if not names:
        raise LNSError("No dataset named: use dataset=all, dataset=kanizsa or dataset=[kanizsa,closure].")
    return tuple(names)


def _integer(cfg: Mapping[str, Any], key: str, minimum: int) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LNSError(f"{key} must be an integer >= {minimum}, got {value!r}. Set e.g. {key}={max(minimum, 1)}.")
    return value


def request_from_config(cfg: Mapping[str, Any]) -> Request:
    """Validate the Hydra config (conf/generate.yaml) into a `Request`."""
    overwrite = cfg["overwrite"]
    if not isinstance(overwrite, bool):
        raise LNSError(f"overwrite must be true or false, got {overwrite!r}.")
    celeba_dir = cfg.get("celeba_dir")
    return Request(
        datasets=parse_datasets(cfg["dataset"]),
        data_dir=Path(str(cfg["paths"]["data_dir"])).absolute(),
        n_train=_integer(cfg, "n_train", 1),
        n_valid=_integer(cfg, "n_valid", 1),
        n_test=_integer(cfg, "n_test", 1),
        image_size=check_image_size(cfg["image_size"]),
        seed=_integer(cfg, "seed", 0),
        test_seed=_integer(cfg, "test_seed", 0),
        overwrite=overwrite,
        celeba_dir=None if celeba_dir in (None, "") else Path(str(celeba_dir)),
    )


def test_1_stream(seed: int) -> np.random.Generator:
    """The random stream of ``test_1``: the first child of ``seed``'s sequence, independent of the main stream."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


def plan_splits(module: ModuleType, request: Request) -> dict[str, Params]:
    """All random parameters of every split: train, valid from ``seed``; test_1 from :func:`test_1_stream`;
    test from ``test_seed``."""
    rng = np.random.default_rng(request.seed)
    counts = request.counts()
    plans = {split: module.sample(rng, counts[split], False) for split in ("train", "valid")}
    plans["test_1"] = module.sample(test_1_stream(request.seed), request.n_test, False)
    plans["test"] = module.sample(np.random.default_rng(request.test_seed), request.n_test, True)
    return plans


def chunk_size(image_size: int) -> int:
    """Images per rendering chunk (about CHUNK_BYTES of float32 output)."""
    return max(1, CHUNK_BYTES // (3 * image_size * image_size * 4))


def render(
    module: ModuleType, params: Params, split: str, image_size: int, chunk: int | None = None
) -> Iterator[Chunk]:
    """Rasterise a split's parameters chunk by chunk (the output never depends on ``chunk``)."""
    canvas = module.CANVAS
    grid = Grid.sampled(canvas, max(1, canvas // image_size))
    repeat = max(1, image_size // canvas)
    count = len(next(iter(params.values())))
    chunk = chunk or chunk_size(image_size)
    masked = split in MASKED_SPLITS
    for start in range(0, count, chunk):
        drawing = module.draw(take(params, start, start + chunk), grid)
        arrays = [compose(drawing.paint, drawing.palette, SCALES[split])]
        if masked:
            arrays += [drawing.masks, drawing.detailed_masks]
        if repeat > 1:
            arrays = [None if a is None else a.repeat(repeat, axis=-2).repeat(repeat, axis=-1) for a in arrays]
        yield Chunk(*arrays)


def _description(name: str, request: Request, settings: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "dataset": name,
        "image_size": request.image_size,
        "generator": f"lns {importlib.metadata.version('lns')} data_gen",
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": request.seed,
        "test_seed": request.test_seed,
        "streams": {"seed": ["train", "valid"], "seed, child stream 0": ["test_1"], "test_seed": ["test"]},
        "colour_scale": SCALES,
        "params": dict(settings),
    }


def generate_gg(name: str, request: Request, *, progress: bool = True) -> Path:
    """Generate one of the six Good Gestalt datasets; return its folder."""
    module = MODULES[name]
    target = dataset_dir(request.data_dir, name, request.image_size)
    counts = request.counts()
    with (
        DatasetFolder(target, overwrite=request.overwrite) as folder,
        tqdm(total=sum(counts.values()), desc=target.name, unit="img", disable=not progress) as bar,
    ):
        for split, params in plan_splits(module, request).items():
            images = render(module, params, split, request.image_size)
            folder.write_split(split, counts[split], images, on_chunk=bar.update)
        return folder.finish(_description(name, request, {"canvas": module.CANVAS, **module.SETTINGS}))


def generate_celeba(request: Request, *, progress: bool = True) -> Path:
    """Generate dCeleba from a CelebAMask-HQ folder; return its folder."""
    root = celeba.check_folder(request.celeba_dir)
    ranges = celeba.split_ranges(celeba.count_images(root), request.n_train, request.n_valid, request.n_test)
    target = dataset_dir(request.data_dir, "celeba", request.image_size)
    with (
        DatasetFolder(target, overwrite=request.overwrite) as folder,
        tqdm(total=sum(len(r) for r in ranges.values()), desc=target.name, unit="img", disable=not progress) as bar,
    ):
        for split in SPLITS:
            chunks = celeba.read(root, ranges[split], request.image_size, masked=split in MASKED_SPLITS)
            folder.write_split(split, len(ranges[split]), chunks, on_chunk=bar.update)
        settings = celeba.settings(root, ranges)
        return folder.finish({**_description("celeba", request, settings), "colour_scale": None})


def generate(request: Request, *, progress: bool = True) -> list[Path]:
    """Generate every requested dataset (refusing up front to replace any existing one without overwrite); log
    each folder written and how long it took."""
    for name in request.datasets:
        check_target(dataset_dir(request.data_dir, name, request.image_size), request.overwrite)
    if "celeba" in request.datasets:
        celeba.check_folder(request.celeba_dir)
    written = []
    for name in request.datasets:
        started = time.perf_counter()
        path = (
            generate_celeba(request, progress=progress)
            if name == "celeba"
            else generate_gg(name, request, progress=progress)
        )
        log.info(f"{path} written in {time.perf_counter() - started:.1f} s")
        written.append(path)
    return written
