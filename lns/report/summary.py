"""``summary.json``, the result of one segmentation: its keys, and the labels of the method it records.

``lns.segment`` writes the file (:func:`scores` and the settings); the report reads it (:mod:`lns.report.collect`).
Every label of a segmentation is made here from one description of its method (:class:`MethodRecord`, read by
:func:`method_record`) by one function, :func:`method_parts`: the method column of the one-row table that
``run_segment.py`` prints for a dataset split (:func:`format_table`) or a folder of pictures (both through
:func:`model_and_method`), the report's table columns (:func:`column_label`) and the lines of its depth plot
(:func:`line_label`). Every label names the model by :func:`model_label`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

SCORE_KEYS = ("ari_mean", "ari_std", "ari_fg_mean", "ari_fg_std", "n_images")
"""The scores: mean and population std of the per-image ARI and ARI-FG (None without foreground), image count."""
SETTING_KEYS = (
    "dataset",
    "model",
    "z_dim",
    "train_seed",
    "split",
    "features",
    "method",
    "weights",
    "clustering",
    "n_clusters",
    "seed",
    "precision",
    "channels_last",
    "test_num",
    "checkpoint",
    "run_dir",
    "training",
)
"""What determines the results (also stored beside partial results). ``features`` is the method's name, ``method``
its name and parameters (``uses_model``: whether it used the network), ``weights`` the ``weights`` choice.
``training`` is how the model was trained (None for an authors' checkpoint): the run's ``max_steps``, the
checkpoint's ``global_step``, ``lr``, ``batch_size`` and the ``objective`` config. It is a setting, not a record:
the ``global_step`` tells the weights of one ``checkpoints/last.ckpt`` apart as its run trains on, so partial results
of an earlier state of that file are never mixed with a later one's. Partial results written before the key existed
are therefore refused like any other change of settings: segment those into a new directory."""
NOISE_KEY = "noise"
"""Only for latent-noise methods (noise, jacobian): ``std``, ``perturb_num``, ``site`` and ``relative``."""
RECORD_KEYS = ("seconds_per_image", "health", "data_dir", "training_precision")
"""How the segmentation ran: its speed, the model's health, the data folder it read, the training precision."""
LATENT_NOISE = ("noise", "jacobian")
KNOWN_MODELS = ("ae", "vae")
"""lns's own autoencoders, the ``model`` of their summaries; labels write them in capitals (:func:`model_label`)."""
HIDDEN_PARAMETERS = ("name", "uses_model", "region_count")
"""Entries of ``method`` that are no parameter of the method (not shown in its label)."""


def scores(ari: np.ndarray, ari_fg: np.ndarray, n_images: int) -> dict[str, Any]:
    """The :data:`SCORE_KEYS` of per-image ARI and ARI-FG values (ARI-FG is NaN where an image has no foreground)."""
    fg = ari_fg[np.isfinite(ari_fg)]
    return {
        "ari_mean": float(np.mean(ari)),
        "ari_std": float(np.std(ari)),
        "ari_fg_mean": float(np.mean(fg)) if fg.size else None,
        "ari_fg_std": float(np.std(fg)) if fg.size else None,
        "n_images": n_images,
    }


class DescribedMethod(Protocol):
    """What the labels read: :class:`MethodRecord`, and the report's :class:`~lns.report.collect.Run`."""

    model: str
    features: str
    site: str | None
    std: float | None
    perturb_num: int | None
    relative: bool
    layer: str | None
    weights: str
    uses_model: bool


@dataclass(frozen=True)
class MethodRecord:
    """The method a ``summary.json`` records, as its keys hold it (no validation: see :mod:`lns.report.collect`)."""

    model: str  # "ae" | "vae" | a model's class name
    features: str  # "noise" | "jacobian" | another method ("rgb", "slic", "activations", ...)
    site: str | None = None  # noise.site of noise and jacobian
    std: float | None = None
    perturb_num: int | None = None
    relative: bool = False
    layer: str | None = None  # the layer of activations
    weights: str = "trained"  # "trained" | "random"
    uses_model: bool = True
    weights_seed: int | None = None
    parameters: tuple[tuple[str, Any], ...] = ()  # the method's parameters, as ``method`` lists them


def method_record(summary: Mapping[str, Any]) -> MethodRecord:
    """The :class:`MethodRecord` of a summary's ``model``, ``features``, ``method``, ``noise`` and ``weights``."""
    method = summary.get("method") or {}
    noise = summary.get(NOISE_KEY) if summary["features"] in LATENT_NOISE else None
    noise = noise if isinstance(noise, Mapping) else {}
    weights = summary.get("weights") or {"name": "trained"}
    return MethodRecord(
        model=summary["model"],
        features=summary["features"],
        site=noise.get("site"),
        std=noise.get("std"),
        perturb_num=noise.get("perturb_num"),
        relative=noise.get("relative") is True,
        layer=method.get("layer"),
        weights=weights["name"],
        uses_model=bool(method.get("uses_model", True)),
        weights_seed=weights.get("seed"),
        parameters=tuple((key, value) for key, value in method.items() if key not in HIDDEN_PARAMETERS),
    )


def model_label(model: str) -> str:
    """A model as every label names it: ``AE`` or ``VAE`` for lns's autoencoders, any other model by its class name
    as the summary records it (``DiffusersKL``, ``MyModel``)."""
    return model.upper() if model in KNOWN_MODELS else model


def depth_only(method: DescribedMethod) -> bool:
    """Noise or Jacobian inside the network (a site other than the latent, or the output for noise): such runs are
    drawn against depth (lns.report.depth), not put in the table."""
    site = method.site
    return site is not None and site != "latent" and (method.features, site) != ("noise", "output")


def method_parts(method: DescribedMethod, *, settings: bool) -> list[str]:
    """What the method is, as the parts of a label: empty for latent noise with trained weights, else the method
    (``output noise``, ``jacobian``, ``rgb``, ...) and, where the method used the network, untrained weights.

    ``settings=True`` gives every setting (noise site, σ and T; the method's parameters; the weights' seed), for one
    segmentation; ``settings=False`` only what tells the report's columns apart (σ and T are pooled there).
    """
    if settings:
        if method.features == "noise":
            parts = [f"{method.site} σ={method.std:g} T={method.perturb_num}"]
        elif method.features == "jacobian":
            parts = ["jacobian"]
        else:
            shown = getattr(method, "parameters", ())
            parts = [" ".join([method.features, *(f"{key}={value}" for key, value in shown)])]
    elif depth_only(method):
        parts = [f"{method.features} at {method.site}"]
    elif method.features == "noise":
        parts = ["output noise"] if method.site == "output" else []
    elif method.features == "activations" and method.layer:
        parts = [f"activations {method.layer}"]
    else:
        parts = [method.features]
    if method.uses_model and method.weights != "trained":
        seed = getattr(method, "weights_seed", None) if settings else None
        parts.append(f"{method.weights} weights" + (f" seed {seed}" if settings else ""))
    return parts


def column_label(method: DescribedMethod) -> str:
    """The report's table column: "AE", "VAE", "AE (output noise)", "VAE (jacobian)", "AE (random weights)",
    "rgb", ...; methods that ignore the network are one column whatever model or weights the run named."""
    if not method.uses_model:
        return method.features
    parts = method_parts(method, settings=False)
    name = model_label(method.model)
    return f"{name} ({', '.join(parts)})" if parts else name


def line_label(method: DescribedMethod) -> str:
    """A line of the depth plot, one per model, method and noise setting: 'AE noise σ=0.001 T=40', 'VAE jacobian'."""
    label = f"{model_label(method.model)} {method.features}"
    if method.weights != "trained":
        label += f" ({method.weights} weights)"
    if method.features == "noise":
        label += f" σ={method.std:g}{' × RMS' if method.relative else ''} T={method.perturb_num}"
    return label


def role(method: DescribedMethod) -> str:
    """``lns`` (latent noise, trained), ``limit`` (its Jacobian limit), ``control`` (output noise or untrained
    weights) or ``baseline`` (every other method: the comparisons of claim 3)."""
    untrained = method.uses_model and method.weights != "trained"
    if untrained or (method.features == "noise" and method.site == "output"):
        return "control"
    return {"noise": "lns", "jacobian": "limit"}.get(method.features, "baseline")


def model_and_method(summary: Mapping[str, Any]) -> tuple[str, str]:
    """The model and method cells of a segmentation's printed table: the model (:func:`model_label`; ``–`` for a
    method that used no network) and the method with every setting (:func:`method_parts`)."""
    method = method_record(summary)
    model = model_label(method.model) if method.uses_model else "–"
    return model, ", ".join(method_parts(method, settings=True))


def format_table(summary: Mapping[str, Any]) -> str:
    """The one-row Markdown ARI table printed at the end of a segmentation (:func:`model_and_method`)."""
    model, method = model_and_method(summary)
    fg = "n/a" if summary["ari_fg_mean"] is None else f"{summary['ari_fg_mean']:.3f} ± {summary['ari_fg_std']:.3f}"
    return "\n".join(
        [
            "| dataset | model | split | method | clustering | images | ARI | ARI-FG |",
            "|---|---|---|---|---|---|---|---|",
            f"| {summary['dataset']} | {model} | {summary['split']} | {method} | {summary['clustering']} "
            f"| {summary['n_images']} | {summary['ari_mean']:.3f} ± {summary['ari_std']:.3f} | {fg} |",
        ]
    )
