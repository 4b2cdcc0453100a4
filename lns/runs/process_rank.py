"""Which process of a (possibly data-parallel) launch this is, from the variables launchers set."""

from __future__ import annotations

import os
from collections.abc import Mapping

# Variables that launchers (torchrun, Lightning, SLURM, MPI, LSF) set to a process's rank; any non-zero one
# means the process is not the one that launched the run.
RANK_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "SLURM_PROCID",
    "OMPI_COMM_WORLD_RANK",
    "PMI_RANK",
    "JSM_NAMESPACE_RANK",
)


def is_launching_process(environ: Mapping[str, str] | None = None) -> bool:
    """True unless a launcher set one of :data:`RANK_VARIABLES` to something other than 0."""
    environ = os.environ if environ is None else environ
    return all(environ.get(name, "0").strip() in ("", "0") for name in RANK_VARIABLES)
