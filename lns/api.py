"""The Python API: segment any model's images with latent noise, score label maps, load trained models. No Hydra.

    import lns

    model = lns.load_model("outputs/train/2026-01-01_12-00-00")  # or any model with encode and decode
    result = lns.segment_images(model, images, n_clusters=3)    # images (N, C, H, W) in [0, 1]
    ari = lns.adjusted_rand_index(result.labels, masks)          # one value per image

``run_segment.py`` runs the same core (lns.segmentation.core): for the same model, images, settings and seed both
give the same labels, bit for bit.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lns.errors import LNSError, PrecisionWarning
from lns.metrics.ari import adjusted_rand_index as _ari
from lns.models.adapter import ModelAdapter, as_adapter
from lns.models.layers import layer_by_name
from lns.segmentation.activations import ActivationMethod
from lns.segmentation.baselines import ColourMethod, ColourPositionMethod, FelzenszwalbMethod, SlicMethod
from lns.segmentation.clustering import KMeansClustering, LeanWardClustering, WardClustering
from lns.segmentation.core import Clusterer, segment_all
from lns.segmentation.health import SignalThresholds, is_resolved, measure_signal, unresolved_message
from lns.segmentation.layout import CHANNELS_LAST, segmentation_layout
from lns.segmentation.methods import FeatureSettings, LatentNoiseMethod, PixelMethod
from lns.segmentation.names import CLUSTERINGS, METHODS
from lns.segmentation.sites import LATENT, OUTPUT, split_model
from lns.segmentation.source import load_source

DEFAULT_BATCH_SIZE = 10
_CHUNK_SIZES = {"noise": 200, "jacobian": 16}
RESOLUTION_IMAGES = 4
"""Images (the first ones) and noise directions per image of the numerical-resolution check."""
RESOLUTION_DIRECTIONS = 4
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class Segmentation:
    """What `segment_images` returns.

    Attributes:
        labels: integer label maps ``(N, H, W)`` (int64), labels ``0..k-1`` numbered in order of first occurrence.
        reconstructions: the noise-free reconstructions ``(N, C, H, W)`` in [0, 1], decoded from the latent means
            (for the model-free methods too).
        n_clusters: the number of clusters asked for each image ``(N,)``.
    """

    labels: Tensor
    reconstructions: Tensor
    n_clusters: Tensor


def _tensor(name: str, value: Any) -> Tensor:
    """``value`` (a tensor, NumPy array or nested list of numbers) as a tensor; the argument ``name`` in the error."""
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise LNSError(
            f"{name} must be a tensor or NumPy array of numbers; got {type(value).__name__} ({error})."
        ) from None


def _image_tensor(images: Tensor | np.ndarray) -> Tensor:
    images = _tensor("images", images)
    if images.ndim != 4 or images.numel() == 0 or not images.is_floating_point():
        raise LNSError(
            f"images must be a float tensor (N, C, H, W) with N, C, H, W >= 1, values in [0, 1]; got {images.dtype} "
            f"shaped {tuple(images.shape)}. One image: images[None]."
        )
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or float(images.max()) > 1:
        raise LNSError("images must hold finite values in [0, 1] (divide 8-bit pictures by 255).")
    return images


def _cluster_counts(n_clusters: int | Sequence[int], images: Tensor) -> list[int]:
    count, pixels = len(images), images.shape[-2] * images.shape[-1]
    if isinstance(n_clusters, Tensor | np.ndarray) and n_clusters.ndim == 1:
        n_clusters = n_clusters.tolist()
    if isinstance(n_clusters, int | np.integer) and not isinstance(n_clusters, bool):
        values = [n_clusters] * count
    elif isinstance(n_clusters, Sequence) and not isinstance(n_clusters, str):
        values = list(n_clusters)
    else:
        raise LNSError(f"n_clusters={n_clusters!r} must be one int, or a list of one int per image.")
    if len(values) != count:
        raise LNSError(f"n_clusters gives {len(values)} counts for {count} images: give one int, or one per image.")
    if not all(isinstance(k, int | np.integer) and not isinstance(k, bool) and 1 <= k <= pixels for k in values):
        raise LNSError(f"n_clusters must be integers from 1 to the {pixels} pixels of an image; got {values}.")
    return [int(k) for k in values]


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise LNSError(f"{name}={value!r} is unknown; choose one of {', '.join(choices)}.")


def _check_settings(
    *,
    method: str,
    noise_std: float,
    perturbations: int,
    clustering: str,
    seed: int,
    batch_size: int | None,
    channels_last: bool,
) -> None:
    _check_choice("method", method, METHODS)
    if not isinstance(noise_std, Real) or isinstance(noise_std, bool) or not 0 < noise_std < math.inf:
        raise LNSError(f"noise_std={noise_std!r} must be positive and finite (the paper uses 0.001).")
    if not _is_integer(perturbations) or perturbations < 2:
        raise LNSError(
            f"perturbations={perturbations!r} must be an integer >= 2 (differences need two; the paper: 40)."
        )
    _check_choice("clustering", clustering, CLUSTERINGS)
    if not _is_integer(seed) or not 0 <= seed <= MAX_SEED:
        raise LNSError(f"seed={seed!r} must be an integer from 0 to 2**64 - 1 (the range of torch's seeds).")
    if batch_size is not None and (not _is_integer(batch_size) or batch_size < 1):
        raise LNSError(f"batch_size={batch_size!r} must be a positive integer or None ({DEFAULT_BATCH_SIZE}).")
    if not isinstance(channels_last, bool):
        raise LNSError(f"channels_last={channels_last!r} must be True or False.")


def _method(
    name: str, model: ModelAdapter, *, site: str, noise_std: float, perturbations: int, seed: int
) -> PixelMethod:
    if not isinstance(site, str) or not site:
        raise LNSError(f"site={site!r} must be 'latent', 'output' or the name of a layer of the model.")
    if name in _CHUNK_SIZES:
        split_model(model, site, key="site")
        settings = FeatureSettings(
            kind=name, std=noise_std, perturb_num=perturbations, site=site, seed=seed, chunk_size=_CHUNK_SIZES[name]
        )
        return LatentNoiseMethod(settings)
    if name == "activations":
        if site in (LATENT, OUTPUT):
            raise LNSError("method='activations' needs site=<the name of a layer> (as print(model) shows it).")
        layer_by_name(model.module, site, key="site")
        return ActivationMethod(layer=site)
    return _baseline(name)


@functools.cache
def _baseline(name: str) -> PixelMethod:
    """One instance per baseline for the whole process: superpixel methods keep their worker processes."""
    return {"rgb": ColourMethod, "rgbxy": ColourPositionMethod, "slic": SlicMethod, "felzenszwalb": FelzenszwalbMethod}[
        name
    ]()


@functools.cache
def _clusterer(name: str) -> Clusterer:
    """One clusterer per kind for the whole process: ward keeps its worker processes from call to call."""
    return {"ward": WardClustering, "ward_lean": LeanWardClustering, "kmeans": KMeansClustering}[name]()


def segment_images(
    model: Any,
    images: Tensor | np.ndarray,
    *,
    n_clusters: int | Sequence[int],
    method: str = "noise",
    noise_std: float = 1e-3,
    perturbations: int = 40,
    site: str = "latent",
    clustering: str = "ward",
    seed: int = 0,
    batch_size: int | None = None,
    channels_last: bool = CHANNELS_LAST,
) -> Segmentation:
    """Segment images with latent noise (or another method), using any model with ``encode`` and ``decode``.

    Each image is encoded to its latent mean; ``perturbations`` noisy copies ``mean + noise_std * eps`` are decoded;
    each pixel's normalised differences between consecutive decodings are its features, which ``clustering`` groups
    into ``n_clusters`` regions. The noise of image ``i`` comes from a generator seeded by ``(seed, i)``, so labels
    do not depend on ``batch_size``, and ``run_segment.py`` gives the same labels for the same model and settings.

    Args:
        model: any object with ``encode(images)`` and ``decode(latent)`` (see `lns.SegmentableModel`); an
            ``nn.Module`` is put in eval mode while segmenting (its mode is restored afterwards). Images go to the
            model's device and dtype.
        images: ``(N, C, H, W)`` floats in [0, 1] (tensor or NumPy array), the size the model takes.
        n_clusters: regions per image: one int, or one per image.
        method: ``noise`` (the paper's method), ``jacobian`` (its noise-free limit, via ``torch.func``),
            ``activations`` (the clean image's activations at the layer ``site``), or a baseline that needs no
            network: ``rgb``, ``rgbxy``, ``slic``, ``felzenszwalb``.
        noise_std: standard deviation of the noise (``noise``).
        perturbations: number of noisy decodings per image (``noise``).
        site: where the noise goes: ``latent``, ``output`` (the paper's control: noise on the decoded image) or the
            name of a layer as ``print(model)`` shows it (``noise``, ``jacobian``, ``activations``).
        clustering: ``ward`` (exact, the paper's), ``ward_lean`` (no distance matrix, for large images) or
            ``kmeans``.
        seed: seed of the per-image noise.
        batch_size: images per batch (``None``: 10, as ``run_segment.py``); lower it to save memory.
        channels_last: decode lns's autoencoders in NHWC layout (faster on a CPU; the model's layout is restored
            afterwards), as ``run_segment.py`` does by default. Other models keep their layout.

    Returns:
        A `Segmentation` with ``labels`` ``(N, H, W)``.

    Warns:
        PrecisionWarning: for ``noise`` and ``jacobian``, when most of the decoder's response to noise of
            ``noise_std`` on the first images is rounding rather than the decoder's (a half-precision model, a
            decoder that casts inside, a noise too small for the dtype). Decoding itself always runs in IEEE float32
            (or the model's dtype): TF32 and autocast are off inside, whatever the caller set.

    Raises:
        LNSError: a bad argument, or a model that does not keep to the protocol (no ``encode``/``decode``, a latent
            of another batch size, NaN or inf, images outside [0, 1] from a decoder that does not declare
            ``decodes_logits``, a ``site`` that names no layer, a decoder ``torch.func`` cannot differentiate).
    """
    adapter = as_adapter(model)
    images = _image_tensor(images)
    counts = _cluster_counts(n_clusters, images)
    _check_settings(
        method=method,
        noise_std=noise_std,
        perturbations=perturbations,
        clustering=clustering,
        seed=seed,
        batch_size=batch_size,
        channels_last=channels_last,
    )
    chosen = _method(method, adapter, site=site, noise_std=noise_std, perturbations=perturbations, seed=seed)
    chosen.check(adapter)
    clusterer = _clusterer(clustering)
    images = images.to(device=adapter.device, dtype=adapter.dtype)
    module = adapter.model if isinstance(adapter.model, torch.nn.Module) else None
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    try:
        with segmentation_layout(adapter.model, channels_last):
            if method in _CHUNK_SIZES:
                _warn_unresolved(adapter, images[:RESOLUTION_IMAGES], noise_std=noise_std, seed=seed)
            labels, reconstructions = segment_all(
                adapter, images, counts, chosen, clusterer, batch_size or DEFAULT_BATCH_SIZE
            )
    finally:
        if module is not None:
            module.train(was_training)
    return Segmentation(labels=labels, reconstructions=reconstructions, n_clusters=torch.tensor(counts))


def _warn_unresolved(adapter: ModelAdapter, images: Tensor, *, noise_std: float, seed: int) -> None:
    """Emit a :class:`lns.PrecisionWarning` when the arithmetic does not resolve noise of ``noise_std``."""
    thresholds = SignalThresholds()
    stats = measure_signal(
        adapter, images, std=noise_std, perturb_num=RESOLUTION_DIRECTIONS, seed=seed, zero_atol=thresholds.zero_atol
    )
    if is_resolved(stats, thresholds) is False:
        message = unresolved_message(stats, thresholds, adapter, std=noise_std, subject="the labels")
        warnings.warn(message, PrecisionWarning, stacklevel=3)


def adjusted_rand_index(
    labels: Tensor | np.ndarray, masks: Tensor | np.ndarray, foreground_only: bool = False
) -> Tensor:
    """Adjusted Rand index of each image's label map against its ground-truth mask.

    Args:
        labels: predicted label maps ``(N, H, W)`` (or ``(N, pixels)``), any integers.
        masks: ground truth of the same shape (0 = background, 1.. = objects).
        foreground_only: score only the pixels whose mask is not 0 (ARI-FG); an image without any scores NaN.

    Returns:
        A float64 tensor ``(N,)``, equal to scikit-learn's ``adjusted_rand_score`` per image.
    """
    labels, masks = _label_maps("labels", labels), _label_maps("masks", masks)
    if labels.shape != masks.shape or labels.ndim < 2 or len(labels) == 0:
        raise LNSError(
            "labels and masks must be label maps of one shape, (N, H, W) or (N, pixels) with N >= 1; got "
            f"{tuple(labels.shape)} and {tuple(masks.shape)}."
        )
    if not isinstance(foreground_only, bool):
        raise LNSError(f"foreground_only={foreground_only!r} must be True or False.")
    return _ari(labels, masks, foreground_only=foreground_only)


def _label_maps(name: str, value: Tensor | np.ndarray) -> Tensor:
    maps = _tensor(name, value)
    if maps.is_floating_point() or maps.is_complex():
        raise LNSError(f"{name} must hold integer labels; got {maps.dtype} (round and convert: {name}.long()).")
    return maps


def load_model(path: str | os.PathLike[str]) -> torch.nn.Module:
    """A trained model, ready to segment (eval mode, on the CPU).

    Args:
        path: a training run directory of ``run_train.py`` (its ``checkpoints/last.ckpt``), a checkpoint it wrote
            (which records the model's class and arguments), or a checkpoint of the authors' training code.

    Raises:
        LNSError: the path holds no such model, or the model's class cannot be imported.
    """
    path = _model_path(path)
    source = load_source(path, None) if path.is_dir() else load_source(None, path)
    return source.model.eval()


def _model_path(path: Any) -> Path:
    """``path`` as a Path to an existing folder or regular file, or an LNSError naming it."""
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else None
    if not isinstance(text, str):
        raise LNSError(f"path={path!r} must be a path (str or pathlib.Path) to a run directory or a checkpoint.")
    if not text or "\x00" in text:
        raise LNSError(f"path={text!r} is not a usable path: give a run directory or a checkpoint file.")
    try:
        found = Path(text).is_dir() or Path(text).is_file()
    except OSError as error:
        raise LNSError(f"path={text!r} cannot be read: {error.strerror}.") from None
    if not found:
        raise LNSError(
            f"path={text!r} is neither a training run directory nor a checkpoint file (it does not exist, or is no "
            "regular file)."
        )
    return Path(text)
