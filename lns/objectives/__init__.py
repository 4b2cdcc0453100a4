"""Training objectives (reconstruction, beta-VAE, capacity, GECO) and their loss terms."""

from lns.objectives.base import Objective
from lns.objectives.geco import GecoObjective
from lns.objectives.simple import BetaObjective, CapacityObjective, ReconstructionObjective
from lns.objectives.terms import image_reconstruction_error, kl_divergence, reconstruction_error

__all__ = [
    "BetaObjective",
    "CapacityObjective",
    "GecoObjective",
    "Objective",
    "ReconstructionObjective",
    "image_reconstruction_error",
    "kl_divergence",
    "reconstruction_error",
]
