"""Checks of a composed config that run before torch and Lightning load, so that a wrong value answers in about a
second instead of after the seconds those imports take.

First every value is checked against the one description of the keys (:mod:`lns.cli.validation`). Then come the
checks that need more than one value or the files: each is the one the training or segmentation code makes itself
(the same function), or made only here: step budgets that cannot train anything. A noise site that names a layer
needs the model's layer names, so that one check imports torch (not Lightning) and builds the run's model without
its weights.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lns.cli.validation import check_values
from lns.data.catalog import check_image_size, check_name, dataset_dir
from lns.data.npz import split_file
from lns.errors import LNSError
from lns.runs.run_layout import training_run_config
from lns.segmentation.noise_checks import check_directions, check_noise_settings

LATENT_NOISE_FEATURES = ("noise", "jacobian")
SITES_WITHOUT_LAYER = ("latent", "output")
TRAINING_SPLITS = ("train", "valid")
GPU_ACCELERATORS = ("gpu", "cuda")


def _whole_number(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LNSError(f"{key}={value!r} must be a whole number.")
    return value


def check_step_budget(trainer: DictConfig) -> None:
    """Refuse ``trainer`` settings under which training would end before its first step and write no checkpoint:
    ``max_steps`` 0 (or below -1), ``max_epochs`` 0 (or below -1), ``limit_train_batches`` 0."""
    max_steps = _whole_number("trainer.max_steps", trainer.get("max_steps", -1))
    if max_steps == 0 or max_steps < -1:
        raise LNSError(
            f"trainer.max_steps={max_steps} trains nothing: the run would end before its first step and write no "
            "checkpoint to segment. Set trainer.max_steps to the number of training steps (the quick-start preset "
            "trains 1400), or -1 for no step limit (training then stops after trainer.max_epochs)."
        )
    max_epochs = trainer.get("max_epochs")
    if max_epochs is not None and (_whole_number("trainer.max_epochs", max_epochs) == 0 or max_epochs < -1):
        raise LNSError(
            f"trainer.max_epochs={max_epochs} trains nothing: the run would end before its first step. Set "
            "trainer.max_epochs=-1 (no epoch limit) and let trainer.max_steps end the run (the quick-start preset "
            "trains 1400 steps)."
        )
    limit = trainer.get("limit_train_batches")
    if limit is not None and not isinstance(limit, bool) and limit == 0:
        raise LNSError(
            f"trainer.limit_train_batches={limit} trains nothing: no training batch would be used. Leave it out "
            "(every batch) or give a positive fraction or count."
        )


def check_accelerator(trainer: DictConfig, cpu_setting: str) -> None:
    """Refuse ``trainer.accelerator=gpu`` (or ``cuda``) on a machine where torch sees no GPU; ``cpu_setting`` is the
    override that runs on the CPU instead. Imports torch (not Lightning), and only when a GPU is asked for."""
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator not in GPU_ACCELERATORS:
        return
    import torch

    if torch.cuda.is_available() or (accelerator == "gpu" and torch.backends.mps.is_available()):
        return
    build = " (this torch is a CPU-only build)" if torch.version.cuda is None else ""
    raise LNSError(
        f"trainer.accelerator={accelerator} asks for a GPU, but torch {torch.__version__} sees none on this "
        f"machine{build}. Run on the CPU with {cpu_setting}, or on a machine with a GPU and a CUDA build of torch "
        '(make install TORCH="torch --index-url https://download.pytorch.org/whl/cu126").'
    )


def check_training_settings(cfg: DictConfig) -> None:
    """What ``run_train.py`` can refuse before the heavy imports: the step budget, a GPU that is not there, and the
    dataset (its name, image size and the folder and files of its training and validation splits)."""
    check_values("train", cfg)
    check_step_budget(cfg.trainer)
    check_accelerator(cfg.trainer, "trainer=cpu (the default)")
    name = check_name(cfg.data.name)
    size = check_image_size(cfg.data.image_size)
    data_dir = Path(cfg.paths.data_dir)
    for split in TRAINING_SPLITS:
        split_file(dataset_dir(data_dir, name, size), split, name=name, data_dir=data_dir)


def check_segmentation_settings(cfg: DictConfig) -> None:
    """What ``run_segment.py`` can refuse before the heavy imports: a ``run_dir`` that is not a training run, a GPU
    that is not there, and the noise settings of ``method=noise|jacobian`` (a site naming a layer is checked
    against the run's model)."""
    check_values("segment", cfg)
    config_file = training_run_config(Path(cfg.run_dir)) if cfg.get("run_dir") else None
    check_accelerator(cfg.trainer, "trainer.accelerator=auto (the default)")
    if cfg.method.name not in LATENT_NOISE_FEATURES:
        return
    check_noise_settings(cfg.noise.std, cfg.noise.perturb_num, cfg.noise.site)
    if "directions" in cfg.method:
        check_directions(int(cfg.method.directions))
    if config_file is not None and cfg.noise.site not in SITES_WITHOUT_LAYER:
        check_site(config_file, cfg.noise.site)


def check_site(run_config: Path, site: str) -> None:
    """Refuse a ``noise.site`` that is no layer of the run's model (built from its ``run_config.yaml``, no weights),
    with the message that segmentation gives; needs torch, not Lightning."""
    from lns.models import build_model
    from lns.segmentation.sites import split_model

    split_model(build_model(OmegaConf.load(run_config).model), site)
