"""Labelled samples for TimeMAE: a Lightning data module, and samples made from arrays.

What travels with every exported model is written to the folder's ``data.json``: the
scaler (section ``scaler``, fitted on the training samples' observed steps) and the
labels (section ``labels``: ``classes``, ``channels``, ``length``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from timetok.core.data.labelled import LabelledData, Samples, _carve, load_labelled
from timetok.core.data.scaler import Scaler
from timetok.core.errors import ConfigError, DataError
from timetok.core.model_folder import write_data_section
from timetok.core.train.modules import TaskDataModule

# Training drops a last, partial batch only from a split of at least this many batches
# (where it costs an epoch at most 1/16 of its samples).
DROP_LAST_BATCHES = 16


def write_data_sections(directory: str | Path, scaler: Scaler, classes: list,
                        channels: list[str], length: int) -> None:
    """The scaler and the labels of a model folder, in its ``data.json``."""
    write_data_section(directory, "scaler", scaler.to_dict())
    write_data_section(directory, "labels", {"classes": classes, "channels": channels,
                                             "length": length})


def labelled_from_arrays(x: np.ndarray, y: np.ndarray, classes: list, val_fraction: float = 0.2,
                         seed: int = 0) -> LabelledData:
    """Samples held in memory, ``x [N, T, C]`` on their original scale and class indices
    ``y [N]`` into ``classes``: a validation split stratified per class (seeded), the
    scaler fitted on the rest, and no test split."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if len(np.unique(y)) < 2:
        raise DataError("y holds one class only; classification needs at least two")
    mask = np.ones(x.shape[:2], dtype=bool)
    every = Samples(x.astype(np.float32), y.astype(np.int64), None, mask)
    carved, rule = _carve(every.y, None, val_fraction, np.random.default_rng(seed), "val",
                          "group")
    channels = [f"channel_{c}" for c in range(x.shape[2])]
    splits = {"train": every.take(~carved), "val": every.take(carved),
              "test": every.take(np.zeros(len(y), dtype=bool))}
    scaler = Scaler.fit(splits["train"].x.reshape(-1, x.shape[2]), channels)
    for part in splits.values():
        part.x = scaler.transform(part.x)
    return LabelledData("arrays", Path("."), list(classes), channels, scaler, splits,
                        f"{rule}, seed {seed}")


class LabelledDataModule(TaskDataModule):
    """Batches of ``(x [B, T, C], y [B], mask [B, T])`` from a registered labelled dataset,
    or from ``data`` already in memory.

    Validation and test batches hold every sample; training drops its last, partial batch
    only when the split holds at least ``DROP_LAST_BATCHES`` batches, so a small set loses
    no sample in any epoch.
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
        data: LabelledData | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.save_hyperparameters(ignore=["data"])
        self._data = data

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

    def drop_last(self, n_items: int) -> bool:
        return n_items >= DROP_LAST_BATCHES * self.hparams.batch_size

    def save_artifacts(self, directory: Path) -> dict:
        """The scaler and the labels, in ``directory/data.json``."""
        data = self.data
        write_data_sections(directory, data.scaler, data.classes, data.channels, data.length)
        return {"dataset": data.name, "classes": data.classes, "split_rule": data.split_rule}

    def split_dataset(self, split: str):
        return self.data.dataset(split)
