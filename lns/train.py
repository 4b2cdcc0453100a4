"""``train(cfg)``: build data, model, objective and Trainer from a composed config and fit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.plugins.environments import SLURMEnvironment

from lns.data.datamodule import NpzDataModule
from lns.errors import LNSError
from lns.models import build_model
from lns.models.float32 import set_tf32
from lns.runs.atomic import atomic_write_text
from lns.runs.hydra_record import save_hydra_record
from lns.runs.loggers import build_loggers, config_as_dict, finishing_wandb
from lns.runs.run_layout import LAST_CHECKPOINT, RUN_CONFIG
from lns.runs.run_lock import holding_run_dir
from lns.sweeps.final_segmentation import segment_final_checkpoint
from lns.training.module import TrainingModule
from lns.training.monitoring.wandb_figures import WandbFigures
from lns.training.precision import resolve_precision, uses_gpu
from lns.training.safety.checkpoint_io import AtomicCheckpointIO
from lns.training.safety.final_checkpoint import FinalCheckpoint
from lns.training.safety.interrupt import GracefulInterrupt
from lns.training.safety.requeue import CheckpointBeforeRequeue
from lns.training.safety.resume import check_resumable, check_run_dir
from lns.training.safety.shared_requests import SharedRequests
from lns.training.step_intervals import check_steps_per_call, in_chunks

log = logging.getLogger(__name__)

RUN_CONFIG_KEYS = ("experiment_name", "seed", "data", "model", "objective", "optimizer")


def run_settings(cfg: DictConfig) -> dict[str, Any]:
    """The resolved settings that segmentation needs (model, data, seed, ...), as ``run_config.yaml`` holds them.

    ``paths.data_dir`` is stored absolute, so the run can be segmented from any working directory.
    """
    settings = {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in RUN_CONFIG_KEYS
    }
    settings["paths"] = {"data_dir": str(Path(cfg.paths.data_dir).absolute())}
    if "training_precision" in cfg:
        settings["training_precision"] = OmegaConf.to_container(cfg.training_precision)
    return settings


def save_run_config(cfg: DictConfig, run_dir: Path) -> None:
    """Write :func:`run_settings` to ``run_config.yaml``."""
    atomic_write_text(run_dir / RUN_CONFIG, OmegaConf.to_yaml(OmegaConf.create(run_settings(cfg))))


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint to resume from: ``ckpt_path`` if given, else the run directory's own ``last.ckpt``."""
    if cfg.ckpt_path:
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise LNSError(f"ckpt_path={cfg.ckpt_path} does not exist. Give the path of a .ckpt file to resume.")
        return path
    own = run_dir / LAST_CHECKPOINT
    return own if cfg.auto_resume and own.is_file() else None


def build_datamodule(cfg: DictConfig) -> NpzDataModule:
    return NpzDataModule(
        name=cfg.data.name,
        data_dir=cfg.paths.data_dir,
        image_size=cfg.data.image_size,
        batch_size=cfg.data.batch_size,
        seed=cfg.seed,
        on_device=cfg.data.on_device,
        steps_per_call=steps_per_call(cfg),
    )


def steps_per_call(cfg: DictConfig) -> int:
    """``speed.steps_per_call``: optimizer steps per Lightning training step."""
    return int(cfg.speed.get("steps_per_call", 1))


def finite_check_interval(cfg: DictConfig) -> int:
    """``check_finite_every_n_steps``, or ``trainer.log_every_n_steps`` when it is null."""
    interval = cfg.get("check_finite_every_n_steps")
    return int(interval if interval is not None else cfg.trainer.log_every_n_steps)


def step_intervals(cfg: DictConfig) -> dict[str, object]:
    """Every setting that counts optimizer steps, by name (see :func:`check_steps_per_call`)."""
    intervals: dict[str, object] = {
        "trainer.log_every_n_steps": cfg.trainer.get("log_every_n_steps"),
        "trainer.val_check_interval": cfg.trainer.get("val_check_interval"),
        "check_finite_every_n_steps": finite_check_interval(cfg),
    }
    for name, entry in (cfg.get("callbacks") or {}).items():
        for key in ("every_n_steps", "every_n_train_steps"):
            if entry and key in entry:
                intervals[f"callbacks.{name}.{key}"] = entry[key]
    return intervals


def build_trainer(cfg: DictConfig, run_dir: Path, loggers: list, extra_callbacks: list) -> pl.Trainer:
    callbacks = [hydra.utils.instantiate(entry) for entry in (cfg.get("callbacks") or {}).values()]
    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        # submitit requeues preempted jobs; Lightning's own SLURM requeue would fight it.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    chunk = steps_per_call(cfg)
    per_chunk = {"log_every_n_steps": in_chunks(int(cfg.trainer.log_every_n_steps), chunk)}
    if isinstance(cfg.trainer.get("val_check_interval"), int):  # a whole number counts training steps: chunks
        per_chunk["val_check_interval"] = in_chunks(cfg.trainer.val_check_interval, chunk)
    return hydra.utils.instantiate(
        cfg.trainer,
        default_root_dir=str(run_dir),
        logger=loggers or False,
        callbacks=[*callbacks, *extra_callbacks],
        plugins=plugins,
        precision=resolve_precision(cfg.trainer.precision, str(cfg.trainer.accelerator)),
        **per_chunk,
    )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured model; return the final metrics, the run directory and the last checkpoint path."""
    run_dir = Path(cfg.paths.output_dir)
    check_steps_per_call(steps_per_call(cfg), step_intervals(cfg))
    with holding_run_dir(run_dir, lock=bool(cfg.get("lock_run_dir", True))):
        return fit(cfg, run_dir)


def fit(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """:func:`train`'s work, in the run directory it holds."""
    # Silent: a run refused by the checks below must not even append to an existing run's log.
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg.model)
    objective = hydra.utils.instantiate(cfg.objective)
    module = TrainingModule(
        model,
        objective,
        lr=cfg.optimizer.lr,
        betas=cfg.optimizer.betas,
        check_finite_every_n_steps=finite_check_interval(cfg),
        channels_last=cfg.speed.channels_last,
        steps_per_call=steps_per_call(cfg),
        run_config=run_settings(cfg),
    )
    if cfg.speed.compile:
        model.compile()
    interrupt = GracefulInterrupt()
    requeue = CheckpointBeforeRequeue()
    ckpt_path = resume_checkpoint(cfg, run_dir)
    check_run_dir(run_dir, run_settings(cfg), ckpt_path)
    if ckpt_path:
        check_resumable(ckpt_path, module)
    choose_precision(cfg)
    save_run_config(cfg, run_dir)
    save_hydra_record(cfg, run_dir)
    with finishing_wandb():
        loggers = build_loggers(cfg.get("logger"), run_dir)
        for logger in loggers:
            logger.log_hyperparams(config_as_dict(cfg))
        stop_or_save = [SharedRequests(interrupt, requeue), interrupt, requeue]
        trainer = build_trainer(cfg, run_dir, loggers, [*stop_or_save, WandbFigures(), FinalCheckpoint()])
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    last = run_dir / LAST_CHECKPOINT
    interrupted = interrupt.stopped_at is not None or requeue.saved_at is not None
    segmentations = {}
    if cfg.get("segment") and not interrupted and leave_data_parallel(trainer):
        segmentations = segment_final_checkpoint(cfg, run_dir)
    return {
        "metrics": {key: float(value) for key, value in trainer.callback_metrics.items()},
        "run_dir": run_dir,
        "last_checkpoint": last if last.is_file() else None,
        "global_step": trainer.global_step,
        "interrupted": interrupted,
        "resumed_from": ckpt_path,
        "segmentations": segmentations,
    }


def choose_precision(cfg: DictConfig) -> str:
    """Resolve ``trainer.precision=auto`` in ``cfg``, choose the float32 arithmetic, and say both, once.

    ``cfg.trainer.precision`` becomes the precision used; ``cfg.training_precision`` records the request, the choice
    and whether float32 work ran in TF32 (``speed.tf32``, only ever on a GPU), so the run's ``.hydra/config.yaml``,
    its ``run_config.yaml`` and its segmentations' ``summary.json`` show how the model was trained.
    """
    requested = str(cfg.get("training_precision", {}).get("requested", cfg.trainer.precision))
    accelerator = str(cfg.trainer.accelerator)
    used = resolve_precision(requested, accelerator)
    on_gpu = uses_gpu(accelerator)
    tf32 = on_gpu and bool(cfg.speed.get("tf32", False))
    with open_dict(cfg):
        cfg.trainer.precision = used
        cfg.training_precision = {"requested": requested, "used": used, "tf32": tf32}
    if requested != used:
        device = "GPU" if on_gpu else "CPU"
        log.info(f"trainer.precision={requested}: training in {used} on this {device}")
    if on_gpu:
        set_tf32(tf32)
        arithmetic = (
            "TF32 (speed.tf32=true: 10-bit mantissas, faster)"
            if tf32
            else "IEEE float32 (speed.tf32=false; speed.tf32=true allows TF32, faster and less exact)"
        )
        log.info(f"float32 convolutions and matrix products on the GPU: {arithmetic}")
    return used


def leave_data_parallel(trainer: pl.Trainer) -> bool:
    """End the data-parallel process group of a finished fit; True on the one process that goes on to segment."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return trainer.is_global_zero
