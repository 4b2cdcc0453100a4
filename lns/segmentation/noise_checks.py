"""Checks of the noise settings (``noise.*``, ``method.directions``): plain values, no torch, so the entry points
run them before the heavy imports and the feature code runs the same ones."""

from __future__ import annotations

from lns.errors import LNSError


def check_noise_settings(std: float, perturb_num: int, site: str) -> None:
    """Raise :class:`LNSError` for a noise std <= 0, fewer than 2 perturbations or an empty noise site.

    Whether a named site exists depends on the model; :func:`lns.segmentation.sites.split_model` checks that.
    """
    check_noise(std, perturb_num)
    if not isinstance(site, str) or not site:
        raise LNSError(
            f"noise.site={site!r} must name where the noise goes: latent, output (the paper's control) or a "
            "layer of the model such as encoder.3 or decoder.5 (as print(model) shows them)."
        )


def check_noise(std: float, perturb_num: int) -> None:
    """Raise :class:`LNSError` for a noise std <= 0 or fewer than 2 perturbations."""
    if not std > 0:
        raise LNSError(f"noise.std={std} must be positive (the paper uses 0.001).")
    if perturb_num < 2:
        raise LNSError(
            f"noise.perturb_num={perturb_num} must be at least 2 to form differences (the paper uses 10 or more)."
        )


def check_directions(directions: int) -> None:
    """Raise :class:`LNSError` unless the Jacobian gets at least one direction."""
    if directions < 1:
        raise LNSError(
            f"method.directions={directions} must be at least 1: it is the number of directions along which "
            "the Jacobian at the noise site is taken (exact when the site has at most that many units)."
        )
