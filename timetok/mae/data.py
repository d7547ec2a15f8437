"""A Lightning data module of labelled samples (one class per multivariate series)."""

from __future__ import annotations

import json
from pathlib import Path

from timetok.core.data.labelled import LabelledData, load_labelled
from timetok.core.errors import ConfigError
from timetok.core.train.modules import TaskDataModule
from timetok.core.utils import atomic_write_text


class LabelledDataModule(TaskDataModule):
    """Batches of ``(x [B, T, C], y [B], mask [B, T])`` from a registered labelled dataset.

    The scaler (fitted on the training samples' observed steps) and the label map travel
    with every exported model (``scaler.json``, ``labels.json``). Validation and test
    batches hold every sample; training drops its last, partial batch only when the split
    has more than one batch.
    """

    def __init__(
        self,
        dataset: str,
        batch_size: int = 64,
        data_dir: str | None = None,
        data_path: str | None = None,
        val_fraction: float = 0.2,
        seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.save_hyperparameters()
        self._data: LabelledData | None = None

    @property
    def data(self) -> LabelledData:
        return self.load()

    def load(self) -> LabelledData:
        """Read, split and scale the dataset once (also usable outside a Trainer)."""
        if self._data is None:
            hp = self.hparams
            self._data = load_labelled(hp.dataset, data_dir=hp.data_dir, data_path=hp.data_path,
                                       val_fraction=hp.val_fraction, seed=hp.seed)
        return self._data

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def save_artifacts(self, directory: Path) -> dict:
        """``scaler.json`` and ``labels.json`` (classes, channels, length) in ``directory``."""
        data = self.data
        data.scaler.save(Path(directory) / "scaler.json")
        labels = {"classes": data.classes, "channels": data.channels, "length": data.length}
        atomic_write_text(Path(directory) / "labels.json", json.dumps(labels, indent=2))
        return {"dataset": data.name, "classes": data.classes, "split_rule": data.split_rule}

    def split_dataset(self, split: str):
        return self.data.dataset(split)
