"""How to run any timetok training: Trainer, checkpoints, history, resume and export.

A run folder holds the exported model (``config.json``, ``model.safetensors`` and what the
training and data modules say travels with it, e.g. ``calibration.json``, ``scaler.json``),
``run.yaml`` (the settings), ``history.csv`` (one row per epoch), ``training.json`` (steps,
wall time, throughput), ``checkpoints/`` with ``best.ckpt`` (the best value of the
module's monitored metric) and ``last.ckpt`` (for ``--resume``), and with ``loggers`` the
live curves under ``logs/`` (see :mod:`timetok.core.train.loggers`). Every file but the
logs is written atomically: a killed run leaves complete files or none, and a run resumed
from ``last.ckpt`` continues as if never stopped (see :mod:`timetok.core.train.checkpoints`).
A run is a transaction: one that fails, diverges or is interrupted leaves the folder as it
was, but for the checkpoints and settings a resumed run continues from (see
:func:`run_transaction`). The runner knows no system: it talks to the training module and
the data module through the seams of :mod:`timetok.core.train.modules`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from timetok.core.console import library_run
from timetok.core.devices import check_run_devices
from timetok.core.errors import CheckpointError, ConfigError, TimetokError, TrainingError
from timetok.core.train.checkpoints import (
    AtomicCheckpointIO,
    ResumeState,
    StepCheckpoint,
    check_resume,
)
from timetok.core.train.loggers import logger_names, make_loggers
from timetok.core.train.modules import TaskDataModule, TaskModule
from timetok.core.train.progress import RunProgressBar
from timetok.core.utils import atomic_write_text

logger = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """How to run: the Trainer's side of the command line."""

    n_epochs: int | None = None
    max_steps: int = -1
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    accelerator: str = "auto"
    amp: bool = False
    val_every: int | None = None  # steps; None: once per epoch
    checkpoint_every: int = 100  # steps between last.ckpt saves, mid-epoch included
    max_time: float | None = None  # minutes of training, validation included
    patience: int | None = None  # validations without improvement before stopping early
    seed: int = 42
    progress: bool = True
    threads: int | None = None  # None: $TIMETOK_THREADS, else the idle cores
    loggers: tuple[str, ...] = ()  # live curves: csv, tensorboard, mlflow (logger_names)

    def __post_init__(self):
        self.loggers = logger_names(self.loggers)
        if self.n_epochs is None and self.max_steps < 0 and self.max_time is None:
            self.n_epochs = 10
        if self.n_epochs is not None and self.n_epochs < 1:
            raise ConfigError(f"n_epochs must be >= 1, got {self.n_epochs}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.max_time is not None and not 0 < self.max_time < math.inf:
            raise ConfigError(f"max_time must be a positive number of minutes, got "
                              f"{self.max_time}")
        check_run_devices(self.accelerator, self.devices)
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1, got {self.patience}")
        if self.val_every is not None and self.val_every < 1:
            raise ConfigError(f"val_every must be >= 1, got {self.val_every}")
        if self.num_nodes < 1:
            raise ConfigError(f"num_nodes must be >= 1, got {self.num_nodes}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must lie in [0, 2**32), got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")

    def devices_arg(self) -> int | str:
        return int(self.devices) if str(self.devices).lstrip("-").isdigit() else self.devices

    def precision(self, accelerator: str) -> str:
        if not self.amp:
            return "32-true"
        if accelerator not in {"gpu", "cuda"}:
            return "bf16-mixed"
        # bf16 keeps float32's range (no loss scaling, no overflow); GPUs before Ampere lack it.
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def begin(options: RunOptions) -> None:
    """What every recipe does first, and nowhere else: set the CPU threads and seed every
    generator (Python, numpy, torch, data loader workers) from ``options.seed``."""
    from timetok.core.threads import use_threads

    use_threads(options.threads)
    L.seed_everything(options.seed, workers=True, verbose=False)


class HistoryCSV(Checkpoint):
    """One row per epoch of every logged epoch metric, rewritten atomically each epoch.

    A ``Checkpoint`` so that Lightning calls it after the module's own epoch-end hook,
    where the epoch's codebook statistics are logged.
    """

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []
        self.validated = False

    def on_fit_start(self, trainer, pl_module):
        if self.path.is_file():  # a resumed run keeps its earlier epochs
            with self.path.open() as handle:
                self.rows = [
                    row for row in csv.DictReader(handle)
                    if int(row["epoch"]) < trainer.current_epoch
                ]

    def on_train_epoch_start(self, trainer, pl_module):
        self.validated = False

    def on_validation_end(self, trainer, pl_module):
        self.validated = self.validated or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        # An epoch cut short by the step budget may end without validating: its row then
        # leaves the validation metrics empty instead of repeating the last ones.
        metrics = {
            k.removesuffix("_epoch"): round(float(v), 6)
            for k, v in trainer.callback_metrics.items()
            if not k.endswith("_step") and (self.validated or not k.startswith("val_"))
        }
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        self.rows.append({"epoch": trainer.current_epoch, "step": trainer.global_step,
                          "lr": lr, **metrics})
        fields = list(dict.fromkeys(k for row in self.rows for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buffer.getvalue())


class Throughput(Callback):
    """Training items per second (the module says what an item is) over this run."""

    def __init__(self):
        self.items = 0
        self.seconds = 0.0
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seconds += time.perf_counter() - self._start
        self.items += pl_module.count_items(batch) * trainer.world_size

    @property
    def per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


class FiniteLoss(Callback):
    """Stop a run whose training or validation loss is no longer a finite number: it has
    diverged (or validates on nothing it can score), and every later step, checkpoint and
    choice of the best weights would only hold NaN."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not bool(loss.detach().isfinite().all()):
            raise TrainingError(
                f"training diverged at step {trainer.global_step}: the loss is "
                f"{float(loss.detach().float().mean())}; nothing was exported - lower lr or "
                "check the data for extreme values"
            )

    def on_validation_end(self, trainer, pl_module):
        # Before the checkpoints' own hook (Lightning runs checkpoints last): a NaN never
        # becomes the best checkpoint.
        loss = trainer.callback_metrics.get("val_loss")
        if loss is not None and not bool(loss.detach().isfinite().all()):
            raise TrainingError(
                f"validation at step {trainer.global_step} gave a loss of "
                f"{float(loss.detach().float().mean())}; nothing was exported - lower lr, or "
                "check the validation data for extreme values or series too short to score"
            )


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM. ``resume_from`` is the run folder whose last
    checkpoint a resumed run continues from, or None when the run wrote none."""

    def __init__(self, resume_from: Path | None):
        self.resume_from = resume_from
        resume = (f"; resuming the run in {resume_from} continues from its last checkpoint"
                  if resume_from is not None else "")
        super().__init__(f"interrupted: nothing was exported{resume}")


# What a resumed run reads back: its checkpoints, its settings and its earlier epochs.
RESUME_FILES = frozenset({"checkpoints", "run.yaml", "history.csv"})
REPLACED = ".replaced"  # where a new run keeps the folder's earlier files until it succeeds


def _topmost_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet."""
    missing = None
    while not path.exists() and path != path.parent:
        missing, path = path, path.parent
    return missing


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def run_transaction(out_dir: Path, resume: bool, resumable: bool = True) -> Iterator[None]:
    """Train and export into ``out_dir`` as one transaction.

    A new run first moves what the folder holds (an earlier run it replaces, say) into
    ``out_dir/.replaced``; when the block succeeds, whatever the run did not write again is
    moved back, when it raises everything is. A failed or interrupted run then leaves the
    folder as it was, with one exception: when it wrote a ``checkpoints/last.ckpt`` (and
    replaced no earlier run's), its checkpoints, ``run.yaml`` and ``history.csv`` stay so
    that it can be resumed, and the error says so; not for a recipe that cannot resume
    (``resumable=False``). An interrupt (Ctrl-C, SIGTERM, or the
    exit Lightning turns them into) becomes :class:`RunInterrupted`.
    """
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:  # the main process alone owns the folder
        yield
        return
    created = _topmost_missing(out_dir)
    before = set(os.listdir(out_dir)) if created is None else set()
    aside = out_dir / REPLACED
    if before and not resume:
        _remove(aside)
        aside.mkdir()
        for name in before:
            os.replace(out_dir / name, aside / name)
        before = {REPLACED}
    try:
        yield
    except BaseException as err:
        kept = _roll_back(out_dir, before, aside, created, resumable)
        if isinstance(err, KeyboardInterrupt | SystemExit):
            raise RunInterrupted(kept) from None
        if kept is not None and isinstance(err, TimetokError):
            raise type(err)(f"{err}; its checkpoints stay in {kept}: resume the run there to "
                            "continue from the last one", details=err.details) from None
        raise
    _restore(out_dir, aside)


def _roll_back(out_dir: Path, before: set[str], aside: Path, created: Path | None,
               can_resume: bool) -> Path | None:
    """Undo a failed run (see :func:`run_transaction`); returns ``out_dir`` when it keeps
    the files to resume from, else None."""
    resumable = (can_resume and (out_dir / "checkpoints" / "last.ckpt").is_file()
                 and not (aside.is_dir() and RESUME_FILES & set(os.listdir(aside))))
    keep = RESUME_FILES if resumable else frozenset()
    if out_dir.is_dir():
        for entry in out_dir.iterdir():
            if entry.name not in before and entry.name not in keep:
                _remove(entry)
    _restore(out_dir, aside)
    if created is not None and not resumable:
        _remove(created)
    return out_dir if resumable else None


def _restore(out_dir: Path, aside: Path) -> None:
    """Move back what a new run set aside and did not write again."""
    if not aside.is_dir():
        return
    for entry in aside.iterdir():
        if not (out_dir / entry.name).exists():
            os.replace(entry, out_dir / entry.name)
    _remove(aside)


def fit(
    module: TaskModule,
    datamodule: TaskDataModule,
    out_dir: Path,
    options: RunOptions,
    resume: bool = False,
    settings: dict | None = None,
) -> tuple[L.Trainer, dict]:
    """Train; returns the trainer and a summary (steps, best monitored value, throughput).

    ``settings`` are written to ``run.yaml`` once the model, the data and any checkpoint
    to resume from have been checked, so a refused start leaves the folder as it was.
    """
    ckpt_dir = out_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if resume:
        if not last.is_file():
            raise CheckpointError(f"no {last} to resume from; start a new run instead of "
                                  "resuming")
        check_resume(module, last)
        for stale in ckpt_dir.glob(".*.tmp"):  # what a killed run was writing
            stale.unlink(missing_ok=True)
    monitor, mode = module.monitor, module.monitor_mode
    best = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_top_k=1,
        enable_version_counter=False,
    )
    periodic = StepCheckpoint(ckpt_dir, options.checkpoint_every)
    throughput = Throughput()
    callbacks = [best, periodic, HistoryCSV(out_dir / "history.csv"), throughput,
                 FiniteLoss(), ResumeState()]
    if options.patience is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=options.patience))
    if options.progress:
        callbacks.append(RunProgressBar())
    n_train = len(datamodule.train_dataloader())
    if n_train == 0:
        raise ConfigError("the training split has fewer samples than one batch; lower batch_size")
    val_every = options.val_every
    if val_every is None and 0 < options.max_steps < n_train:
        val_every = options.max_steps  # a run shorter than an epoch still validates once
    with library_run():
        trainer = make_trainer(options, out_dir, callbacks,
                               val_check_interval=min(val_every, n_train) if val_every else 1.0)
        if settings is not None and trainer.is_global_zero:
            atomic_write_text(out_dir / "run.yaml", yaml.safe_dump(settings, sort_keys=False))
        summary = dict(module.on_run_start(trainer, datamodule, out_dir, resume))
        started = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=last if resume else None,
                    weights_only=True)
    if trainer.global_step == 0:
        logger.warning("the run ended before its first optimiser step (a time budget too "
                       "short?): the exported weights are untrained")
    score = best.best_model_score
    summary = {
        "global_step": trainer.global_step,
        "epochs": trainer.current_epoch,
        "monitor": monitor,
        f"best_{monitor}": float(score) if score is not None else None,
        **summary,
        "wall_s": round(time.perf_counter() - started, 2),
        "throughput_per_s": round(throughput.per_second, 1),
        "throughput_unit": module.throughput_unit,
        "world_size": trainer.world_size,
    }
    return trainer, summary


def make_trainer(options: RunOptions, out_dir: Path, callbacks: list[Callback],
                 **kwargs) -> L.Trainer:
    """A Trainer for ``options``; settings Lightning refuses become a ConfigError."""
    try:
        return L.Trainer(
            default_root_dir=out_dir,
            max_epochs=options.n_epochs if options.n_epochs is not None else -1,
            max_steps=options.max_steps,
            max_time=None if options.max_time is None else timedelta(minutes=options.max_time),
            accelerator=options.accelerator,
            devices=options.devices_arg(),
            num_nodes=options.num_nodes,
            strategy=options.strategy,
            precision=options.precision(options.accelerator),
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO()],
            enable_progress_bar=options.progress,
            logger=make_loggers(options.loggers, out_dir) or False,
            # With loggers every optimiser step's training figures reach them (a curve of a
            # short run has its points too); without, no step pays for gathering them.
            log_every_n_steps=1 if options.loggers else 10,
            num_sanity_val_steps=0,
            enable_model_summary=False,  # finetuning prints its own parameter table
            **kwargs,
        )
    except (MisconfigurationException, ValueError, TypeError, ImportError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"invalid training settings: {first}") from None


def write_summary(out_dir: Path, summary: dict) -> None:
    atomic_write_text(out_dir / "training.json", json.dumps(summary, indent=2))


def train_and_export(
    module: TaskModule,
    datamodule: TaskDataModule,
    out_dir: Path,
    options: RunOptions,
    resume: bool = False,
    settings: dict | None = None,
    resumable: bool = True,
) -> dict:
    """Train ``module`` (which holds a ``PretrainedModel`` as ``module.model``), then export
    the weights it selects, what the data module says travels with them, and a summary
    into ``out_dir``. ``resumable=False``: a recipe that cannot resume keeps no checkpoint
    of a failed run."""
    out_dir = Path(out_dir)
    with run_transaction(out_dir, resume, resumable):
        trainer, summary = fit(module, datamodule, out_dir, options, resume=resume,
                               settings=settings)
        if trainer.is_global_zero:
            export(module, datamodule, out_dir, summary)
    # Every process waits for the export: a next run (finetune --chain) may start from it.
    trainer.strategy.barrier("export")
    return summary


def export(module: TaskModule, datamodule: TaskDataModule, out_dir: Path, summary: dict
           ) -> None:
    """Write the selected weights, what travels with them and the summary into ``out_dir``."""
    summary["exported"] = module.select_weights(out_dir, summary)
    summary |= module.prepare_export(datamodule)
    module.model.save_pretrained(out_dir)
    summary |= module.save_artifacts(out_dir)
    summary |= datamodule.save_artifacts(out_dir)
    summary |= {
        "parameters": sum(p.numel() for p in module.model.parameters()),
        "trainable_parameters": sum(
            p.numel() for p in module.model.parameters() if p.requires_grad
        ),
    }
    write_summary(out_dir, summary)
