"""How to run any timetok training: Trainer, checkpoints, history, resume and export.

A run folder holds the exported model (``config.json``, ``model.safetensors``,
``scaler.json``), ``run.yaml`` (the settings), ``history.csv`` (one row per epoch),
``training.json`` (steps, wall time, throughput) and ``checkpoints/`` with ``best.ckpt``
(lowest validation loss) and ``last.ckpt`` (for ``--resume``). Every file is written
atomically: a killed run leaves complete files or none.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from timetok.errors import CheckpointError, ConfigError
from timetok.models.base import compare_state_dicts
from timetok.utils import atomic_write_text

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
    keep_start: bool = False  # validate before training; export the start if nothing beats it
    seed: int = 42
    progress: bool = True

    def __post_init__(self):
        if self.n_epochs is None and self.max_steps < 0 and self.max_time is None:
            self.n_epochs = 10
        if self.n_epochs is not None and self.n_epochs < 1:
            raise ConfigError(f"--n-epochs must be >= 1, got {self.n_epochs}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"--max-steps must be >= 1, got {self.max_steps}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every must be >= 1, got {self.checkpoint_every}")
        if self.max_time is not None and self.max_time <= 0:
            raise ConfigError(f"--max-time must be > 0 minutes, got {self.max_time}")
        if not re.fullmatch(r"auto|-1|\d+|\d+(,\d+)*,?", str(self.devices)):
            raise ConfigError(
                f"--devices must be a count, -1, 'auto' or a list like 0,1; got {self.devices!r}"
            )
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"--patience must be >= 1, got {self.patience}")
        if self.val_every is not None and self.val_every < 1:
            raise ConfigError(f"--val-every must be >= 1, got {self.val_every}")
        if self.num_nodes < 1:
            raise ConfigError(f"--num-nodes must be >= 1, got {self.num_nodes}")

    def devices_arg(self) -> int | str:
        return int(self.devices) if str(self.devices).lstrip("-").isdigit() else self.devices

    def precision(self, accelerator: str) -> str:
        if not self.amp:
            return "32-true"
        return "16-mixed" if accelerator in {"gpu", "cuda"} else "bf16-mixed"


class HistoryCSV(Checkpoint):
    """One row per epoch of every logged epoch metric, rewritten atomically each epoch.

    A ``Checkpoint`` so that Lightning calls it after the module's own epoch-end hook,
    where the epoch's codebook statistics are logged.
    """

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []

    def on_fit_start(self, trainer, pl_module):
        if self.path.is_file():  # a resumed run keeps its earlier epochs
            with self.path.open() as handle:
                self.rows = [
                    row for row in csv.DictReader(handle)
                    if int(row["epoch"]) < trainer.current_epoch
                ]

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = {
            k.removesuffix("_epoch"): round(float(v), 6)
            for k, v in trainer.callback_metrics.items()
            if not k.endswith("_step")
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
    """Time steps (rows x channels) per second over the training batches of this run."""

    def __init__(self):
        self.points = 0
        self.seconds = 0.0
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seconds += time.perf_counter() - self._start
        self.points += batch[0].numel() * trainer.world_size

    @property
    def timesteps_per_s(self) -> float:
        return self.points / self.seconds if self.seconds else 0.0


def checkpoint_state(path: Path) -> dict:
    """A Lightning checkpoint of our own run, read without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a bad file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"cannot read checkpoint {path} ({reason}); it is corrupt") from None


def check_resume(module: L.LightningModule, ckpt: Path) -> None:
    """Refuse a checkpoint whose weights do not fit the module about to resume from it."""
    state = checkpoint_state(ckpt).get("state_dict", {})
    report = compare_state_dicts(state, module.state_dict())
    if not report.clean:
        raise CheckpointError(
            f"checkpoint {ckpt} does not fit these settings ({report.summary()}); resume with "
            "the run's own settings (drop the flags that change the model)"
        )


def fit(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    out_dir: Path,
    options: RunOptions,
    resume: bool = False,
    settings: dict | None = None,
) -> tuple[L.Trainer, dict]:
    """Train; returns the trainer and a summary (steps, best validation loss, throughput).

    ``settings`` are written to ``run.yaml`` once the model, the data and any checkpoint
    to resume from have been checked, so a refused start leaves the folder as it was.
    """
    ckpt_dir = out_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if resume:
        if not last.is_file():
            raise CheckpointError(f"no {last} to resume from; start a new run without --resume")
        check_resume(module, last)
    best = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min", save_top_k=1,
        enable_version_counter=False,
    )
    periodic = ModelCheckpoint(
        dirpath=ckpt_dir, save_top_k=0, save_last=True,
        every_n_train_steps=options.checkpoint_every,
    )
    throughput = Throughput()
    callbacks = [best, periodic, HistoryCSV(out_dir / "history.csv"), throughput]
    if options.patience is not None:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=options.patience))
    n_train = len(datamodule.train_dataloader())
    if n_train == 0:
        raise ConfigError(
            "the training split has fewer windows than one batch; lower --batch-size"
        )
    val_every = options.val_every
    if val_every is None and 0 < options.max_steps < n_train:
        val_every = options.max_steps  # a run shorter than an epoch still validates once
    try:
        trainer = L.Trainer(
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
            val_check_interval=min(val_every, n_train) if val_every else 1.0,
            enable_progress_bar=options.progress,
            logger=False,
            log_every_n_steps=10,
            num_sanity_val_steps=0,
        )
    except (MisconfigurationException, ValueError, TypeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"invalid training settings: {first}") from None
    if settings is not None and trainer.is_global_zero:
        atomic_write_text(out_dir / "run.yaml", yaml.safe_dump(settings, sort_keys=False))
    start_loss, start_file = None, ckpt_dir / "start.json"
    if options.keep_start and resume and start_file.is_file():
        start_loss = json.loads(start_file.read_text())["val_loss"]
    elif options.keep_start and not resume:
        start_loss = float(trainer.validate(module, datamodule=datamodule,
                                            verbose=False)[0]["val_loss"])
        trainer.save_checkpoint(ckpt_dir / "start.ckpt", weights_only=True)
        if trainer.is_global_zero:
            atomic_write_text(start_file, json.dumps({"val_loss": start_loss}))
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=last if resume else None,
                weights_only=True)
    summary = {
        "global_step": trainer.global_step,
        "epochs": trainer.current_epoch,
        "best_val_loss": float(best.best_model_score) if best.best_model_score is not None
        else None,
        "start_val_loss": start_loss,
        "wall_s": round(time.perf_counter() - started, 2),
        "timesteps_per_s": round(throughput.timesteps_per_s, 1),
        "world_size": trainer.world_size,
    }
    return trainer, summary


def load_best(module: L.LightningModule, out_dir: Path, summary: dict) -> str:
    """Put the best weights into ``module``: the best checkpoint's, or the starting ones when
    no validation during training beat them. Returns which: start, best, or last (the
    weights in hand, when no checkpoint was saved)."""
    start, best = summary.get("start_val_loss"), summary.get("best_val_loss")
    name = "start" if start is not None and (best is None or start <= best) else "best"
    path = out_dir / "checkpoints" / f"{name}.ckpt"
    if not path.is_file():
        return "last"
    module.load_state_dict(checkpoint_state(path)["state_dict"])
    return name


def write_summary(out_dir: Path, summary: dict) -> None:
    atomic_write_text(out_dir / "training.json", json.dumps(summary, indent=2))


def train_and_export(
    module: L.LightningModule,
    datamodule,
    out_dir: Path,
    options: RunOptions,
    resume: bool = False,
    settings: dict | None = None,
) -> dict:
    """Train ``module`` (which holds a ``PretrainedModel`` as ``module.model``), then export
    the best weights, the train scaler and a summary into ``out_dir``. A module with a
    ``prepare_export(datamodule)`` method fits its closed-form parts on the best weights
    there, before they are saved; what it returns joins the summary."""
    out_dir = Path(out_dir)
    trainer, summary = fit(module, datamodule, out_dir, options, resume=resume,
                           settings=settings)
    if trainer.is_global_zero:
        summary["exported"] = load_best(module, out_dir, summary)
        if hasattr(module, "prepare_export"):
            summary |= module.prepare_export(datamodule)
        module.model.save_pretrained(out_dir)
        datamodule.data.scaler.save(out_dir / "scaler.json")
        summary |= {
            "dataset": datamodule.hparams.dataset,
            "columns": datamodule.data.columns,
            "parameters": sum(p.numel() for p in module.model.parameters()),
            "trainable_parameters": sum(
                p.numel() for p in module.model.parameters() if p.requires_grad
            ),
        }
        write_summary(out_dir, summary)
    # Every process waits for the export: a next run (finetune --chain) may start from it.
    trainer.strategy.barrier("export")
    return summary
