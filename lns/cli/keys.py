"""The one description of every config key a user may set: its rule (type and range, choices or path kind), an
example, and whether it may be null. :mod:`lns.cli.validation` checks composed configs against it before any work
starts, and the "Allowed values" section of docs/configuration.md is generated from it
(``python -m lns.cli.keys docs/configuration.md`` rewrites that section; a test keeps the two equal).

A ``*`` in a key stands for any one name (``segment.jobs.*.noise.std``). Keys under a node whose ``_target_`` is
not a class of lns (``trainer.*`` is Lightning's Trainer, ``model.*`` of ``model=custom`` your class) are the
target's own: only the ones listed here are checked, the rest go to the target as they are.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from lns.cli.rules import AnyOf, Choice, Flag, ListOf, Name, Number, PathOf, Rule, Text, Whole
from lns.data.catalog import DATASETS, SUPPORTED_IMAGE_SIZES
from lns.data.npz import MASKED_SPLITS
from lns.segmentation.names import CLUSTERINGS, METHODS


@dataclass(frozen=True)
class Key:
    """One settable key: ``path`` (dotted, ``*`` for any one name), its ``rule``, an ``example`` value as typed on
    the command line, and whether null is allowed."""

    path: str
    rule: Rule
    example: str
    nullable: bool = False

    def matches(self, path: str) -> bool:
        """Whether the dotted ``path`` is this key (``*`` matching any one name)."""
        mine, theirs = self.path.split("."), path.split(".")
        return len(mine) == len(theirs) and all(a in ("*", b) for a, b in zip(mine, theirs, strict=True))

    def allowed(self) -> str:
        """What may be given, in words."""
        return self.rule.allowed() + (", or null" if self.nullable else "")


DATASET_NAMES = tuple(dataset.name for dataset in DATASETS)
WEIGHTS = ("trained", "random")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")
PRECISIONS = (
    "auto",
    "32-true",
    "bf16-mixed",
    "16-mixed",
    "bf16-true",
    "16-true",
    "64-true",
    "32",
    "16",
    "bf16",
    "64",
    32,
    16,
    64,
)
POSITIVE = Number(0, low_open=True)
SHARE = Number(0, 1)
COUNT = Whole(1)
WORKERS = Whole(0)
SEED = Whole(0, 2**32 - 1)  # what every random number generator used here takes (Lightning's seed_everything)

DATA = (
    Key("data.name", Choice(DATASET_NAMES), "closure"),
    Key("data.image_size", Choice(SUPPORTED_IMAGE_SIZES), "64"),
    Key("data.batch_size", COUNT, "64"),
    Key("data.on_device", AnyOf((Flag(), Choice(("auto",)))), "auto"),
)
LOGGERS = (
    Key("logger.csv._target_", Name(), "lns.training.monitoring.csv_logger.RunCSVLogger"),
    Key("logger.csv.save_dir", Text(), "logs_elsewhere"),
    Key("logger.csv.name", Text(), "logs"),
    Key("logger.csv.flush_logs_every_n_steps", COUNT, "10"),
    Key("logger.wandb._target_", Name(), "pytorch_lightning.loggers.WandbLogger"),
    Key("logger.wandb.project", Text(), "lns"),
    Key("logger.wandb.entity", Text(), "my-team", nullable=True),
    Key("logger.wandb.group", Text(), "quickstart-kanizsa", nullable=True),
    Key("logger.wandb.tags", ListOf(Text()), "[ae,seed1]", nullable=True),
    Key("logger.wandb.name", Text(), "first-try", nullable=True),
    Key("logger.wandb.save_dir", Text(), "wandb_files"),
    Key("logger.wandb.offline", Flag(), "true"),
    Key("logger.wandb.log_model", AnyOf((Flag(), Choice(("all",)))), "false"),
    Key("logger.wandb.job_type", Text(), "train", nullable=True),
)
RUN_NAMING = (
    Key("task_name", Text(), "train"),
    Key("experiment_name", Text(), "my_experiment"),
    Key("tags", ListOf(Text()), "[ae,seed1]"),
)
HYDRA_PATHS = (
    Key("paths.root_dir", Text(), "/home/me/lns"),
    Key("paths.output_dir", Text(), "outputs/train/run1"),
)
LAUNCHERS = (
    Key("slurm_resources.*.gpus", Whole(0), "4"),
    Key("slurm_resources.*.cpus", COUNT, "8"),
    Key("local_launcher.jobs_per_gpu", COUNT, "12"),
)
TRAINER = (
    Key("trainer._target_", Name(), "pytorch_lightning.Trainer"),
    Key("trainer.accelerator", Choice(ACCELERATORS), "gpu"),
    Key("trainer.devices", AnyOf((COUNT, Choice((-1, "auto")), ListOf(Whole(0)))), "2"),
    Key("trainer.enable_progress_bar", Flag(), "false"),
    Key("trainer.enable_model_summary", Flag(), "false"),
)

TRAINING = (
    *RUN_NAMING,
    *HYDRA_PATHS,
    *DATA,
    *LOGGERS,
    *LAUNCHERS,
    *TRAINER,
    Key("seed", SEED, "1"),
    Key("deterministic", Flag(), "true"),
    Key("ckpt_path", PathOf("file"), "outputs/train/run1/checkpoints/step00010000.ckpt", nullable=True),
    Key("auto_resume", Flag(), "false"),
    Key("lock_run_dir", Flag(), "false"),
    Key("optimizer.lr", POSITIVE, "0.0005"),
    Key("optimizer.betas", ListOf(Number(0, 1, high_open=True), length=2), "[0.9,0.999]"),
    Key("speed.channels_last", Flag(), "false"),
    Key("speed.compile", Flag(), "true"),
    Key("speed.tf32", Flag(), "true"),
    Key("speed.steps_per_call", COUNT, "20"),
    Key("check_finite_every_n_steps", COUNT, "50", nullable=True),
    Key("paths.data_dir", PathOf("folder", may_be_missing=True), "data"),
    Key("model._target_", Name(), "mypackage.MyModel"),
    Key("model.z_dim", COUNT, "15"),
    Key("model.variational", Flag(), "true"),
    Key("model.channels", COUNT, "3"),
    Key("model.image_size", Choice(SUPPORTED_IMAGE_SIZES), "64"),
    Key("model.latent_channels", COUNT, "4"),
    Key("model.block_out_channels", ListOf(COUNT), "[16,32,64,64]"),
    Key("model.layers_per_block", COUNT, "1"),
    Key("model.norm_num_groups", COUNT, "8"),
    Key("objective._target_", Name(), "lns.objectives.GecoObjective"),
    Key("objective.goal", POSITIVE, "0.0006"),
    Key("objective.step_size", POSITIVE, "1e-5"),
    Key("objective.alpha", Number(0, 1, high_open=True), "0.99"),
    Key("objective.speedup", Number(0), "10"),
    Key("objective.beta_init", POSITIVE, "1.0"),
    Key("objective.beta_min", POSITIVE, "1e-10"),
    Key("objective.beta_max", AnyOf((POSITIVE, Choice((math.inf,)))), "1e10"),
    Key("objective.image_shape", ListOf(COUNT, length=3), "[3,64,64]"),
    Key("objective.beta", Number(0), "4.0"),
    Key("objective.gamma", Number(0), "1000"),
    Key("objective.c_max", Number(0), "25"),
    Key("objective.c_stop_iter", COUNT, "100000"),
    Key("trainer.num_nodes", COUNT, "2"),
    Key("trainer.max_steps", Whole(-1), "1400"),
    Key("trainer.max_epochs", Whole(-1), "-1", nullable=True),
    Key("trainer.val_check_interval", AnyOf((COUNT, Number(0, 1, low_open=True))), "2000", nullable=True),
    Key("trainer.check_val_every_n_epoch", COUNT, "1", nullable=True),
    Key("trainer.limit_val_batches", AnyOf((Whole(0), SHARE)), "1.0"),
    Key("trainer.log_every_n_steps", COUNT, "50"),
    Key("trainer.precision", Choice(PRECISIONS), "bf16-mixed"),
    Key("trainer.deterministic", AnyOf((Flag(), Choice(("warn",)))), "true", nullable=True),
    Key("trainer.default_root_dir", Text(), "outputs/train/run1"),
    Key("trainer.num_sanity_val_steps", Whole(-1), "0"),
    Key("trainer.strategy", Text(), "ddp_spawn"),
    Key("trainer.strategy._target_", Name(), "pytorch_lightning.strategies.DDPStrategy"),
    Key("trainer.strategy.find_unused_parameters", Flag(), "false"),
    Key("callbacks.*._target_", Name(), "lns.training.output_bias.MeanColourOutputBias"),
    Key("callbacks.checkpoint.dirpath", Text(), "outputs/train/run1/checkpoints"),
    Key("callbacks.checkpoint.filename", Text(), "step{step:08d}"),
    Key("callbacks.checkpoint.auto_insert_metric_name", Flag(), "false"),
    Key("callbacks.checkpoint.every_n_train_steps", COUNT, "10000"),
    Key("callbacks.checkpoint.save_top_k", Whole(-1), "-1"),
    Key("callbacks.checkpoint.save_last", Flag(), "true"),
    Key("callbacks.checkpoint.enable_version_counter", Flag(), "false"),
    Key("callbacks.reconstructions.every_n_steps", COUNT, "10000"),
    Key("callbacks.reconstructions.num_images", COUNT, "8"),
    Key("callbacks.curves.every_n_steps", COUNT, "10000"),
    Key("callbacks.health.every_n_steps", COUNT, "50"),
    Key("callbacks.health.num_images", COUNT, "64"),
    Key("callbacks.health.start_step", Whole(0), "100"),
    Key("callbacks.health.window", COUNT, "300"),
    Key("callbacks.health.min_improvement", Number(0), "0.05"),
    Key("callbacks.health.stuck_loss_ratio", Number(0), "0.9"),
    Key("callbacks.health.min_variance_ratio", Number(0), "0.1"),
    Key("segment", Text(), "paper", nullable=True),
)

SEGMENTATION = (
    *RUN_NAMING,
    *HYDRA_PATHS,
    *DATA,
    *LOGGERS,
    *LAUNCHERS,
    *TRAINER,
    Key("run_dir", PathOf("folder", may_be_missing=True), "outputs/train/2026-01-01_12-00-00", nullable=True),
    Key("ckpt_path", PathOf("file"), "authors/checkpoint.pt", nullable=True),
    Key("images.folder", PathOf("folder"), "my_pictures", nullable=True),
    Key("images.resize", Flag(), "true"),
    Key("masks", PathOf("folder"), "my_masks", nullable=True),
    Key("split", Choice(MASKED_SPLITS), "test_1"),
    Key("test_num", COUNT, "20", nullable=True),
    Key("n_clusters", Whole(), "3"),
    Key("seed", SEED, "1"),
    Key("batch_size", COUNT, "10"),
    Key("precision", Choice(("float32", "float64")), "float64"),
    Key("channels_last", Flag(), "false"),
    Key("figures_num", Whole(0), "8"),
    Key("umap_num", Whole(0), "2"),
    Key("umap_neighbors", Whole(2), "400"),
    Key("health.num_images", COUNT, "16"),
    Key("health.perturb_num", Whole(2), "4"),
    Key("health.min_noise_response", Number(0), "1e-4"),
    Key("health.max_zero_fraction", SHARE, "0.9"),
    Key("health.zero_atol", Number(0), "0.0"),
    Key("health.min_resolution", SHARE, "0.5"),
    Key("paths.data_dir", PathOf("folder", may_be_missing=True), "data", nullable=True),
    Key("noise.std", POSITIVE, "0.001"),
    Key("noise.perturb_num", Whole(2), "40"),
    Key("noise.site", Text(), "decoder.5"),
    Key("noise.relative", Flag(), "true"),
    Key("method.name", Choice(METHODS), "jacobian"),
    Key("method.chunk_size", COUNT, "200"),
    Key("method.directions", COUNT, "64"),
    Key("method.layer", Text(), "decoder.14"),
    Key("method.upsample", Choice(("bilinear", "nearest")), "nearest"),
    Key("method.position_weight", Number(0), "1.0"),
    Key("method.n_segments", COUNT, "100"),
    Key("method.compactness", POSITIVE, "10"),
    Key("method.max_num_iter", COUNT, "10"),
    Key("method.sigma", Number(0), "0.8"),
    Key("method.workers", WORKERS, "0"),
    Key("method.scale", POSITIVE, "1.0"),
    Key("method.min_size", Whole(0), "20"),
    Key("method.method._target_", Name(), "lns.segmentation.baselines.SlicMethod"),
    Key("weights.name", Choice(WEIGHTS), "random"),
    Key("weights.seed", SEED, "1"),
    Key("clustering.name", Choice(CLUSTERINGS), "kmeans"),
    Key("clustering.backend._target_", Name(), "lns.segmentation.clustering.WardClustering"),
    Key("clustering.backend.workers", WORKERS, "1"),
    Key("clustering.backend.n_init", COUNT, "4"),
    Key("clustering.backend.max_iter", COUNT, "100"),
    Key("clustering.backend.seed", SEED, "0"),
    Key("trainer.logger", Flag(), "false"),
    Key("trainer.inference_mode", Flag(), "false"),
    Key("trainer.enable_checkpointing", Flag(), "false"),
)

GENERATION = (
    *HYDRA_PATHS,
    Key("dataset", AnyOf((Text(), ListOf(Choice((*DATASET_NAMES, "all"))))), "kanizsa"),
    Key("n_train", COUNT, "2000"),
    Key("n_valid", COUNT, "300"),
    Key("n_test", COUNT, "100"),
    Key("image_size", Choice(SUPPORTED_IMAGE_SIZES), "64"),
    Key("seed", SEED, "42"),
    Key("test_seed", SEED, "41"),
    Key("overwrite", Flag(), "true"),
    Key("celeba_dir", PathOf("folder"), "/data/CelebAMask-HQ", nullable=True),
    Key("paths.data_dir", PathOf("new folder"), "data"),
)

# run_segment.py's settings that a training run's end-of-training segmentation takes (segment.<key>, for every
# job, and segment.jobs.<job>.<key>, for one), null meaning run_segment.py's own default; a job's group choices
# are option names.
SEGMENT_JOB_GROUPS = (
    Key("method", Choice(METHODS), "jacobian"),
    Key("features", Choice(METHODS), "jacobian"),
    Key("clustering", Choice(CLUSTERINGS), "kmeans"),
    Key("weights", Choice(WEIGHTS), "random"),
)
NOT_FOR_JOBS = ("run_dir", "ckpt_path", "images.folder", "images.resize", "masks", "task_name", "paths.*")


JOB_PREFIXES = ("segment", "segment.jobs.*")


def _job_keys(prefix: str) -> tuple[Key, ...]:
    shared = [
        key
        for key in SEGMENTATION
        if not any(Key(excluded, key.rule, "").matches(key.path) for excluded in NOT_FOR_JOBS)
        and not key.path.startswith(("paths.", "logger.", "slurm_resources.", "local_launcher."))
    ]
    return tuple(
        replace(key, path=f"{prefix}.{key.path}", nullable=True, example=key.example)
        for key in (*shared, *SEGMENT_JOB_GROUPS)
    )


KEYS: dict[str, tuple[Key, ...]] = {
    "train": (*TRAINING, *(key for prefix in JOB_PREFIXES for key in _job_keys(prefix))),
    "segment": SEGMENTATION,
    "generate": GENERATION,
}
"""The keys of each command: ``run_train.py`` (train), ``run_segment.py`` (segment), ``python -m data_gen``."""

COMMANDS = {"train": "python run_train.py", "segment": "python run_segment.py", "generate": "python -m data_gen"}


def find_key(command: str, path: str) -> Key | None:
    """The description of ``path`` for ``command``: the first key that matches it, None when none does."""
    return next((key for key in KEYS[command] if key.matches(path)), None)


SECTION_START = "<!-- allowed values: generated by python -m lns.cli.keys; do not edit by hand -->"
SECTION_END = "<!-- end of allowed values -->"


def _is_job_key(command: str, key: Key) -> bool:
    return command == "train" and key.path.startswith("segment.")


def allowed_values_markdown() -> str:
    """The "Allowed values" section of the configuration reference: per command, every key, what it takes, an
    example."""
    lines = [
        SECTION_START,
        "## Allowed values",
        "",
        "Every key is checked before any work starts: a value of the wrong type, out of range or a path of the "
        "wrong kind is refused with one paragraph naming the key, what it takes and an example. Integers stay "
        "integers (`1.5` is no count). `*` stands for any name.",
    ]
    for command, keys in KEYS.items():
        lines += ["", f"### `{COMMANDS[command]}`", "", "| key | takes | example |", "|---|---|---|"]
        for key in keys:
            if not _is_job_key(command, key):
                lines.append(f"| `{key.path}` | {key.allowed()} | `{key.path}={key.example}` |")
        if command == "train":
            lines.append(
                "| `segment.<key>`, `segment.jobs.*.<key>` | what `run_segment.py`'s `<key>` takes, or null; a job's "
                "`method`, `clustering` and `weights` take an option name of that group | "
                "`segment.jobs.paper.noise.std=0.01` |"
            )
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def with_allowed_values(text: str) -> str:
    """``text`` (the configuration reference) with its generated section replaced by the current one (appended
    when it has none)."""
    if SECTION_START in text:
        before, rest = text.split(SECTION_START, 1)
        after = rest.split(SECTION_END, 1)[1].lstrip("\n")
        return before + allowed_values_markdown() + ("\n" + after if after else "")
    return text.rstrip("\n") + "\n\n" + allowed_values_markdown()


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/configuration.md")
    target.write_text(with_allowed_values(target.read_text()))
    print(f"allowed values written to {target}")
