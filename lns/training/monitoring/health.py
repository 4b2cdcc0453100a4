"""Training health: is the model learning? Plain checks on probe measurements of fixed validation images.

Every check records a :class:`ProbeRecord`: the reconstruction error on the probe images (the units of
``train/recon``), how much the reconstructions vary across those images, and how much the images themselves
vary. The images' variance (sum over pixels of the per-pixel variance across images) is also the error of the
best constant output, the mean image, so ``recon / input_variance`` near 1 means "no better than one fixed
picture". Two problems are detected once ``start_step`` is reached and a symptom has lasted ``window`` steps:

- ``loss_flat``: the probe error fell by less than ``min_improvement`` over the window while it is still at
  least ``stuck_loss_ratio`` times the constant-output error (a converged model is not flagged);
- ``ignores_input``: the reconstructions' variance across images stayed below ``min_variance_ratio`` times the
  images' variance for the whole window (the decoder draws the same picture whatever the input).

The verdict (``healthy``) exists only for a run that reached ``start_step``: a shorter one is "not checked", with
the reason, never called healthy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from lns.errors import LNSError
from lns.runs.atomic import atomic_write_text

HEALTH_FILE = Path("health.json")
PROBLEMS = ("loss_flat", "ignores_input")


@dataclass(frozen=True)
class HealthThresholds:
    """When a run counts as not learning (see the module docstring); config keys ``callbacks.health.*``."""

    start_step: int = 100
    window: int = 300
    min_improvement: float = 0.05
    stuck_loss_ratio: float = 0.9
    min_variance_ratio: float = 0.1

    def __post_init__(self) -> None:
        if self.start_step < 0 or self.window < 1:
            raise LNSError(
                f"callbacks.health.start_step={self.start_step} must be >= 0 and callbacks.health.window="
                f"{self.window} at least 1 (steps). The defaults are 100 and 300."
            )
        for name in ("min_improvement", "stuck_loss_ratio", "min_variance_ratio"):
            if not getattr(self, name) >= 0:
                raise LNSError(f"callbacks.health.{name}={getattr(self, name)} must be a number >= 0.")


@dataclass(frozen=True)
class ProbeRecord:
    """One probe measurement at training step ``step``."""

    step: int
    recon: float
    output_variance: float
    input_variance: float

    @property
    def variance_ratio(self) -> float:
        """The reconstructions' variance across images over the images' own (0: one picture for all)."""
        return self.output_variance / self.input_variance if self.input_variance > 0 else 1.0

    @property
    def loss_ratio(self) -> float:
        """The probe error over the constant-output (mean image) error (1: no better than the mean image)."""
        return self.recon / self.input_variance if self.input_variance > 0 else 0.0


def across_image_variance(images: Tensor) -> float:
    """Sum over pixels and channels of the variance across the batch (population variance) of ``images``."""
    return float(images.double().var(dim=0, unbiased=False).sum())


def probe_record(step: int, reconstructions: Tensor, images: Tensor) -> ProbeRecord:
    """The probe measurement from reconstructions (probabilities) and images, both (B, C, H, W)."""
    if reconstructions.shape != images.shape or images.ndim != 4 or len(images) < 2:
        raise LNSError(
            f"The health probe needs two or more images and reconstructions of one shape (B, C, H, W); got "
            f"{tuple(reconstructions.shape)} and {tuple(images.shape)}. Set callbacks.health.num_images >= 2."
        )
    error = (reconstructions.double() - images.double()).pow(2).sum() / len(images)
    return ProbeRecord(step, float(error), across_image_variance(reconstructions), across_image_variance(images))


def window_records(records: Sequence[ProbeRecord], thresholds: HealthThresholds) -> list[ProbeRecord] | None:
    """The records that span the last ``window`` steps (from ``start_step`` on, starting at the last record at or
    before the window's first step); None until records from ``start_step`` on span a whole window."""
    eligible = [r for r in records if r.step >= thresholds.start_step]
    if not eligible:
        return None
    boundary = eligible[-1].step - thresholds.window
    starts = [r.step for r in eligible if r.step <= boundary]
    return [r for r in eligible if r.step >= starts[-1]] if starts else None


def loss_flat(records: Sequence[ProbeRecord], thresholds: HealthThresholds) -> bool:
    """True when the probe error hardly fell over the window while no better than a constant image."""
    window = window_records(records, thresholds)
    if window is None:
        return False
    first, best = window[0].recon, min(r.recon for r in window)
    improvement = (first - best) / first if first > 0 else 0.0
    return improvement < thresholds.min_improvement and window[-1].loss_ratio >= thresholds.stuck_loss_ratio


def ignores_input(records: Sequence[ProbeRecord], thresholds: HealthThresholds) -> bool:
    """True when the reconstructions hardly varied across images for the whole window."""
    window = window_records(records, thresholds)
    return window is not None and all(r.variance_ratio < thresholds.min_variance_ratio for r in window)


def find_problems(records: Sequence[ProbeRecord], thresholds: HealthThresholds) -> list[str]:
    """The problems (names from ``PROBLEMS``) that hold at the last record."""
    checks = {"loss_flat": loss_flat, "ignores_input": ignores_input}
    return [name for name in PROBLEMS if checks[name](records, thresholds)]


def problem_message(kind: str, records: Sequence[ProbeRecord], thresholds: HealthThresholds, lr: float) -> str:
    """One paragraph: what is wrong since when, and the likely fix (a lower learning rate, more steps)."""
    window = window_records(records, thresholds) or list(records[-1:])
    first, last = window[0], window[-1]
    fix = (
        f"The likely fix: a lower learning rate (now optimizer.lr={lr:g}; try optimizer.lr={lr / 4:g}), a decoder "
        "that starts at the images' mean colour (+callbacks.output_bias._target_=lns.training.output_bias."
        "MeanColourOutputBias, as experiment=quickstart does), or more steps (trainer.max_steps) if the loss is "
        "still falling slowly. Segmentations of this model will carry no signal."
    )
    if kind == "loss_flat":
        what = (
            f"the reconstruction error on the probe images fell by less than {thresholds.min_improvement:.0%} "
            f"from step {first.step} to step {last.step} ({first.recon:.1f} -> {last.recon:.1f}) and is "
            f"{last.loss_ratio:.2f} times the error of the mean image ({last.input_variance:.1f}): the model has "
            "not learned more than a constant picture."
        )
    else:
        what = (
            f"from step {first.step} to step {last.step} the reconstructions hardly differ between images "
            f"(their variance across images is {last.variance_ratio:.1%} of the images' own, below "
            f"{thresholds.min_variance_ratio:.0%}): the model ignores its input."
        )
    return f"Training health at step {last.step}: {what} {fix}"


@dataclass
class HealthHistory:
    """All probe records of a run and the problems raised so far (one entry per problem, when it first held)."""

    records: list[ProbeRecord] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    active: list[str] = field(default_factory=list)

    def add(self, record: ProbeRecord, thresholds: HealthThresholds, lr: float) -> list[dict[str, Any]]:
        """Append ``record`` (replacing records at or after its step), re-check; return newly raised flags."""
        self.records = [r for r in self.records if r.step < record.step] + [record]
        self.active = find_problems(self.records, thresholds)
        raised = {flag["kind"] for flag in self.flags}
        new = [
            {"kind": kind, "step": record.step, "message": problem_message(kind, self.records, thresholds, lr)}
            for kind in self.active
            if kind not in raised
        ]
        self.flags.extend(new)
        return new

    def verdict(self, thresholds: HealthThresholds) -> dict[str, Any]:
        """``healthy`` (None until checked), ``checked`` and, for a run not checked, why (``not_checked``).

        A run is checked once it has a probe record from ``start_step`` on; a shorter run is neither healthy nor
        unhealthy, whatever its loss did.
        """
        last = self.records[-1].step if self.records else None
        checked = last is not None and last >= thresholds.start_step
        reason = None
        if not checked:
            ended = "has no health probe" if last is None else f"ended at step {last}"
            reason = (
                f"the run {ended}; the checks begin at step {thresholds.start_step} (callbacks.health.start_step) "
                f"and a problem shows after a window of {thresholds.window} steps (callbacks.health.window)"
            )
        return {"healthy": (not self.active) if checked else None, "checked": checked, "not_checked": reason}

    def to_dict(self, thresholds: HealthThresholds) -> dict[str, Any]:
        """The content of ``health.json``: verdict, flags, thresholds and every record."""
        return {
            **self.verdict(thresholds),
            "active": list(self.active),
            "flags": [dict(flag) for flag in self.flags],
            "thresholds": asdict(thresholds),
            "records": [asdict(record) for record in self.records],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthHistory:
        """The inverse of :meth:`to_dict` (thresholds are not part of the history)."""
        return cls(
            records=[ProbeRecord(**record) for record in data.get("records", [])],
            flags=[dict(flag) for flag in data.get("flags", [])],
            active=list(data.get("active", [])),
        )


def write_health(run_dir: Path, history: HealthHistory, thresholds: HealthThresholds) -> Path:
    """Write ``health.json`` into ``run_dir`` atomically (a crash never leaves half a file)."""
    path = Path(run_dir) / HEALTH_FILE
    atomic_write_text(path, json.dumps(history.to_dict(thresholds), indent=2) + "\n")
    return path


def read_health(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``health.json`` (None when the run has none, e.g. it was trained before health checks existed)."""
    path = Path(run_dir) / HEALTH_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        history = HealthHistory.from_dict(data)
        if "checked" not in data and isinstance(data.get("thresholds"), dict):
            # A file without a verdict of its own is judged by the same rule, from its thresholds and records.
            data = {**data, **history.verdict(HealthThresholds(**data["thresholds"]))}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError, LNSError) as err:
        raise LNSError(
            f"The training health file {path} is unreadable ({err}). It is written atomically, so it was "
            "changed by hand or by another program: delete it (the run then counts as unchecked) or resume "
            "the training run, which writes it again."
        ) from None
    if "healthy" not in data or not isinstance(data["healthy"], bool | None):
        raise LNSError(f"The training health file {path} has no true/false/null 'healthy' entry; delete it or retrain.")
    return data
