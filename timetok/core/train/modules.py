"""The seams between a system's training code and the shared runner.

A system subclasses :class:`TaskModule` (what to compute) and :class:`TaskDataModule`
(what data, and what of it travels with an exported model). The runner
(:mod:`timetok.core.train.runner`) calls these hooks on every system alike and never asks which
system it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import lightning as L
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from timetok.core.train.checkpoints import ResumableSampler, checkpoint_state
from timetok.core.train.optim import adamw_cosine


class TaskModule(L.LightningModule):
    """A Lightning module the runner can train, select and export.

    Subclasses hold their ``PretrainedModel`` as ``self.model`` and ``lr``,
    ``weight_decay`` and ``warmup_steps`` in their hyper-parameters (the optimiser: AdamW
    over the trainable parameters, linear warm-up, cosine decay), and may override:

    - ``monitor`` / ``monitor_mode``: the logged metric that picks the best checkpoint and
      stops early, and whether lower (``min``: losses) or higher (``max``: AUROC,
      accuracy) is better;
    - ``throughput_unit`` and :meth:`count_items`: what one throughput item is;
    - :meth:`on_run_start`, :meth:`select_weights`, :meth:`prepare_export`,
      :meth:`save_artifacts` and :meth:`summary_lines`: a run's start, the choice of the
      exported weights, work on them before export, files written beside them, and what a
      finished run reports.
    """

    monitor: ClassVar[str] = "val_loss"
    monitor_mode: ClassVar[str] = "min"
    throughput_unit: ClassVar[str] = "samples"
    progress_metrics: ClassVar[tuple[str, ...]] = ("loss",)  # shown in the progress bar

    def step(self, batch: Any, stage: str, batch_idx: int) -> Tensor:
        """The loss of one batch of ``stage`` ("train" or "val"), its figures logged."""
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        return self.step(batch, "train", batch_idx)

    def validation_step(self, batch, batch_idx):
        self.step(batch, "val", batch_idx)

    def log_values(self, stage: str, values: dict, batch_size: int) -> None:
        """Log ``values`` as ``<stage>_<name>``: per step and epoch in training, per epoch
        (averaged over the processes) in validation. A torchmetrics ``Metric`` accumulates
        and syncs itself over the epoch."""
        from torchmetrics import Metric

        for name, value in values.items():
            sync = stage != "train" and not isinstance(value, Metric)
            self.log(f"{stage}_{name}", value, on_step=stage == "train", on_epoch=True,
                     sync_dist=sync, batch_size=batch_size,
                     prog_bar=name in self.progress_metrics)

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        return adamw_cosine(params, hp.lr, hp.weight_decay, hp.warmup_steps, self.trainer)

    def count_items(self, batch: Any) -> int:
        """Throughput items in a training batch: by default its samples."""
        first = batch[0] if isinstance(batch, list | tuple) else batch
        return len(first)

    def on_run_start(self, trainer: L.Trainer, datamodule: L.LightningDataModule,
                     run_dir: Path, resume: bool) -> dict:
        """Called once the trainer exists, before fitting; returns figures for the summary."""
        return {}

    def select_weights(self, run_dir: Path, summary: dict) -> str:
        """Load the weights to export into ``self``; returns which (the default: the best
        checkpoint's, or ``last``, the weights in hand, when there is none)."""
        path = run_dir / "checkpoints" / "best.ckpt"
        if not path.is_file():
            return "last"
        self.load_state_dict(checkpoint_state(path)["state_dict"])
        return "best"

    def prepare_export(self, datamodule: L.LightningDataModule) -> dict:
        """Fit closed-form parts on the selected weights before they are saved; returns
        figures for the summary."""
        return {}

    def save_artifacts(self, directory: Path) -> dict:
        """Write what the exported model reads beside its weights (from
        :meth:`prepare_export`'s work) into ``directory``; returns figures for the summary."""
        return {}

    def summary_lines(self, summary: dict) -> list[str]:
        """Lines a finished training command prints after its standard one."""
        return []


class TaskDataModule(L.LightningDataModule):
    """A Lightning data module that also says what travels with an exported model.

    A subclass names the torch dataset of each split (:meth:`split_dataset`) and keeps
    ``batch_size`` and ``num_workers`` in its hyper-parameters; the loaders follow: training
    shuffles and drops its last, partial batch when the split holds more than one batch
    (:meth:`drop_last` says otherwise),
    validation and test keep every item in order. A resumed run's checkpoint sets
    ``resume_order`` (see :class:`~timetok.core.train.checkpoints.ResumeState`): the next
    training loader takes up the epoch it stopped in.
    """

    resume_order: tuple[int, int] | None = None  # (seed, items seen) of an epoch stopped in

    def split_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` ("train", "val" or "test")."""
        raise NotImplementedError

    def collate(self, items: list) -> Any:
        """Items of :meth:`split_dataset` -> a batch (PyTorch's default stacking)."""
        return default_collate(items)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        items = self.split_dataset(split)
        sampler = None
        if shuffle:
            sampler, self.resume_order = ResumableSampler(items, self.resume_order), None
        return DataLoader(
            items,
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            drop_last=shuffle and self.drop_last(len(items)),
            collate_fn=self.collate,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def drop_last(self, n_items: int) -> bool:
        """Whether training drops its last, partial batch of an epoch of ``n_items``."""
        return n_items > self.hparams.batch_size

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def save_artifacts(self, directory: Path) -> dict:
        """Write what a model needs beside its weights to read new data the way it was
        trained (a scaler, a label map, a variable vocabulary) into ``directory``; returns
        a description of the data for the run's summary."""
        return {}
