"""What the entry points print: where results go, progress, results and the warnings that matter, not the
libraries' hints, tips and deprecation notices.

Lightning suggests ``srun`` on every machine that has SLURM installed (wrong for a run meant to be local), advertises
its cloud products, announces which accelerators exist and that 100% of the validation batches are used, asks for a
float32 matmul precision on every GPU run (lns chooses one and says which), and
warns that a run shorter than its logging interval logs nothing (this project logs the last step too). Libraries'
deprecation notices concern their own callers. None of that helps a user of this project.
"""

from __future__ import annotations

import logging
import warnings

# Message starts of Lightning's info lines that only add noise.
QUIET_INFO = (
    "GPU available: ",
    "TPU available: ",
    "HPU available: ",
    "💡 Tip: ",
    "`Trainer(limit_val_batches=1.0)` was configured",
    "`weights_only` was not set",
    # The hint to pick a float32 matmul precision: lns picks it and says which (training: speed.tf32; segmentation:
    # always IEEE float32, lns/models/float32.py).
    "You are using a CUDA device",
)
QUIET_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "pytorch_lightning.trainer.connectors.checkpoint_connector",
)
# Regular expressions of Lightning warnings that only add noise.
QUIET_WARNINGS = (
    r"The `srun` command is available on your system but is not used",
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"Precision .* is not supported by the model summary",
    # lns steps the optimizer itself (chunks of steps) and checkpoints after a chunk's last step, as it means to.
    r"Using ModelCheckpoint with manual optimization",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(QUIET_INFO)


_DROP_NOISE = _DropNoise()


def quiet_libraries() -> None:
    """Silence the library messages listed in this module, in this process (idempotent)."""
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if _DROP_NOISE not in logger.filters:
            logger.addFilter(_DROP_NOISE)
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
