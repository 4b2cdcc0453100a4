"""Find and validate segmentation `summary.json` files and reference CSVs."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lns.data.catalog import DATASET_FOLDERS
from lns.errors import LNSError
from lns.report.summary import column_label, depth_only, role
from lns.runs.run_layout import SEGMENTATION_SUMMARY

_MODELS = ("ae", "vae")
_WEIGHTS = ("trained", "random")
_REFERENCE_COLUMNS = ("dataset", "model", "ari_mean", "ari_std", "source")


@dataclass(frozen=True)
class Run:
    """One segmentation run, reduced to what the report needs."""

    path: Path
    dataset: str
    model: str  # "ae" | "vae"
    features: str  # "noise" | "jacobian" | another features choice ("rgb", "slic", "activations", ...)
    site: str | None  # "latent" | "output" | a layer ("decoder.5"); None for features other than noise/jacobian
    std: float | None  # noise std; None for features other than noise
    perturb_num: int | None  # None for features other than noise
    ari_mean: float
    weights: str = "trained"  # "trained" | "random" (the fresh-initialisation control)
    uses_model: bool = True  # False for methods that ignore the network (rgb, slic, ...)
    layer: str | None = None  # the layer of method=activations
    split: str = "test"  # the segmented split (for the method-comparison figure's images)
    issue: str | None = None  # "not resolved" / "no signal" / "not learning" (summary.json's health entry); None: fine
    relative: bool = False  # noise.relative: the noise std was scaled by the site's RMS activation
    data_dir: Path | None = None  # the datasets' folder the segmentation read (older summaries do not say)
    unchecked: bool = False  # the training run ended before its health checks began (health.training_not_checked)
    ari_fg_mean: float | None = None  # mean ARI over foreground pixels; None: no image had foreground
    train_seed: int | None = None
    z_dim: int | None = None  # the model's latent size (None: not an lns autoencoder, or not recorded)
    checkpoint: str | None = None  # the segmented checkpoint file, as the segmentation named it
    run_dir: str | None = None  # the training run directory the checkpoint came from (None: a checkpoint file alone)
    training: dict[str, Any] | None = None  # how the model was trained (summary.json's ``training``); None: unknown
    training_precision: str | None = None  # the precision the model was trained in (``training_precision.used``)

    @property
    def model_key(self) -> tuple[object, ...]:
        """Which trained model the run segmented: its checkpoint, training run and seed (the summary's path where
        the summary names none of them), so that the runs of one model are told from those of another seed."""
        known = (self.checkpoint, self.run_dir, self.train_seed)
        return known if any(value is not None for value in known) else (self.path,)

    @property
    def depth_only(self) -> bool:
        """Noise or Jacobian inside the network: drawn against depth (lns.report.depth), not put in the table."""
        return depth_only(self)

    @property
    def variant(self) -> str:
        """Table column: "AE", "VAE", "AE (output noise)", "AE (random weights)", "rgb", ... (:func:`column_label`)."""
        return column_label(self)

    @property
    def role(self) -> str:
        """``lns``, ``limit``, ``control`` or ``baseline`` (:func:`~lns.report.summary.role`)."""
        return role(self)


@dataclass(frozen=True)
class Reference:
    """One row of a user-supplied reference CSV (e.g. the paper's table)."""

    dataset: str
    model: str  # matched case-insensitively against Run.variant
    ari_mean: float
    ari_std: float | None
    source: str


def collect_runs(dirs: Iterable[str | Path]) -> list[Run]:
    """Every summary.json below the given directories (each file once), sorted by path."""
    paths: set[Path] = set()
    for directory in map(Path, dirs):
        if not directory.is_dir():
            raise LNSError(
                f"Report input {directory} is not a directory. Pass the segmentation output directories "
                "(or a folder above them) that contain summary.json files."
            )
        paths.update(p.resolve() for p in directory.rglob(SEGMENTATION_SUMMARY))
    if not paths:
        listed = ", ".join(str(d) for d in dirs)
        raise LNSError(
            f"No summary.json found under {listed}. Run segmentation first (python run_segment.py ...) "
            "and pass its output directory or a folder above it."
        )
    return [read_summary(path) for path in sorted(paths)]


def read_summary(path: Path) -> Run:
    """Parse and validate one summary.json; LNSError naming the file and the problem otherwise."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _malformed(path, f"it is not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise _malformed(path, "it does not hold a JSON object")
    dataset = _field(path, data, "dataset", str).lower()
    model = _field(path, data, "model", str).lower()
    features = _field(path, data, "features", str).lower()
    _check_choice(path, "model", model, _MODELS)
    ari_mean = _number(path, data, "ari_mean")
    method = data.get("method") or {}
    weights = str((data.get("weights") or {}).get("name", "trained")).lower()
    _check_choice(path, "weights.name", weights, _WEIGHTS)
    site = std = perturb_num = None
    relative = False
    if features == "noise":
        noise = _field(path, data, "noise", dict)
        site = _field(path, noise, "site", str).lower()
        std = _number(path, noise, "std")
        perturb_num = _field(path, noise, "perturb_num", int)
        relative = noise.get("relative") is True
    elif features == "jacobian" and isinstance(data.get("noise"), dict):
        site = _field(path, data["noise"], "site", str).lower()
    uses_model = bool(method.get("uses_model", True))
    layer, split = method.get("layer"), str(data.get("split", "test"))
    # weights=random is the untrained control on purpose: its health is no verdict on the run, its arithmetic is.
    issue = _resolution_issue(path, data) or (_health_issue(path, data) if weights == "trained" else None)
    health = data.get("health")
    unchecked = weights == "trained" and isinstance(health, dict) and bool(health.get("training_not_checked"))
    precision = _optional(path, data, "training_precision", dict)
    return Run(
        path,
        dataset,
        model,
        features,
        site,
        std,
        perturb_num,
        ari_mean,
        weights,
        uses_model,
        layer,
        split,
        issue,
        relative,
        Path(data["data_dir"]) if isinstance(data.get("data_dir"), str) else None,
        unchecked,
        ari_fg_mean=None if data.get("ari_fg_mean") is None else _number(path, data, "ari_fg_mean"),
        train_seed=_optional(path, data, "train_seed", int),
        z_dim=_optional(path, data, "z_dim", int),
        checkpoint=_optional(path, data, "checkpoint", str),
        run_dir=_optional(path, data, "run_dir", str),
        training=_optional(path, data, "training", dict),
        training_precision=str(precision["used"]) if precision and precision.get("used") else None,
    )


def _health(path: Path, data: dict) -> dict | None:
    """summary.json's optional ``health`` entry (None when it has none)."""
    health = data.get("health")
    if health is not None and not isinstance(health, dict):
        raise _malformed(path, f"field 'health' is {health!r}, expected an object")
    return health


def _resolution_issue(path: Path, data: dict) -> str | None:
    """ "not resolved" when the health entry says the arithmetic did not resolve the noise (rounding, not the model)."""
    health = _health(path, data)
    return "not resolved" if health is not None and health.get("resolved") is False else None


def _health_issue(path: Path, data: dict) -> str | None:
    """What summary.json's optional ``health`` entry says is wrong with the model (None: nothing, or no entry)."""
    health = _health(path, data)
    if health is None:
        return None
    if health.get("signal") is False:
        return "no signal"
    if health.get("training_healthy") is False:
        return "not learning"
    return None


def read_reference(path: str | Path) -> list[Reference]:
    """Read a reference CSV with columns dataset, model, ari_mean, ari_std, source (ari_std may be empty)."""
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise _bad_reference(path, f"it cannot be read ({err})") from None
    missing = [c for c in _REFERENCE_COLUMNS if c not in header]
    if missing:
        raise _bad_reference(path, f"columns {missing} are missing (found {header})")
    if not rows:
        raise _bad_reference(path, "it has no data rows")
    references, seen = [], set()
    for line, row in enumerate(rows, start=2):
        if not row["dataset"] or not row["model"]:
            raise _bad_reference(path, f"line {line} has an empty dataset or model")
        try:
            mean = float(row["ari_mean"])
            std = float(row["ari_std"]) if row["ari_std"] else None
        except ValueError:
            raise _bad_reference(path, f"line {line} has a non-numeric ari_mean or ari_std") from None
        if not math.isfinite(mean) or (std is not None and not math.isfinite(std)):
            raise _bad_reference(path, f"line {line} has a non-finite ari_mean or ari_std")
        ref = Reference(_dataset_name(row["dataset"]), row["model"], mean, std, row["source"] or "reference")
        key = (ref.dataset, ref.model.lower(), ref.source)
        if key in seen:
            raise _bad_reference(path, f"line {line} repeats dataset {ref.dataset}, model {ref.model}")
        seen.add(key)
        references.append(ref)
    return references


def _dataset_name(name: str) -> str:
    """Accept both our names (kanizsa) and the authors' folder names (dKanizsa)."""
    by_folder = {folder.lower(): key for key, folder in DATASET_FOLDERS.items()}
    return by_folder.get(name.lower(), name.lower())


def _field(path: Path, data: dict, key: str, kind: type):
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _malformed(path, f"field '{key}' is {value!r}, expected a {kind.__name__}")
    return value


def _optional(path: Path, data: dict, key: str, kind: type):
    """``data[key]``, or None where the key is absent or null (summaries of older versions of lns lack it)."""
    return None if data.get(key) is None else _field(path, data, key, kind)


def _number(path: Path, data: dict, key: str) -> float:
    value = data.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise _malformed(path, f"field '{key}' is {value!r}, expected a finite number")
    return float(value)


def _check_choice(path: Path, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _malformed(path, f"field '{key}' is {value!r}, expected one of {list(choices)}")


def _malformed(path: Path, problem: str) -> LNSError:
    return LNSError(
        f"Malformed segmentation summary {path}: {problem}. Re-run the segmentation that wrote it, "
        "or remove the file (or its run directory) from the report's input."
    )


def _bad_reference(path: Path, problem: str) -> LNSError:
    return LNSError(
        f"Reference file {path} is malformed: {problem}. It must be a CSV with the header "
        f"{','.join(_REFERENCE_COLUMNS)} and one row per dataset and model, "
        "e.g. 'kanizsa,AE,0.71,0.05,paper'."
    )
