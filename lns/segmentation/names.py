"""The names of the segmentation methods and clusterings: the options of the ``method`` and ``clustering`` config
groups and the values ``lns.segment_images`` takes. Imports nothing, so the command-line checks read it before
torch loads."""

from __future__ import annotations

METHODS = ("noise", "jacobian", "activations", "rgb", "rgbxy", "slic", "felzenszwalb")
CLUSTERINGS = ("ward", "ward_lean", "kmeans")
