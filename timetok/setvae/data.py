"""A Lightning data module of irregular ICU stays cut into sets (the ``records`` kind)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timetok.core.data.records import (
    Records,
    RecordSets,
    RecordsScaler,
    collate_sets,
    load_records,
    make_sets,
)
from timetok.core.errors import ConfigError
from timetok.core.train.modules import TaskDataModule
from timetok.setvae.artifacts import (
    REPORT,
    RecordsSettings,
    Vocabulary,
    first_stays,
    parse_bucket,
    save_scaler,
    save_split,
)

PARTS = ("train", "val", "test")


@dataclass
class StaySplits:
    """The stays of one split, scaled and cut into sets.

    ``records``: the stays read (the first ``limit`` when limited); ``index``: part
    (``train``/``val``/``test``) -> stay indices ``[n]`` into ``records``; ``scaler``:
    fitted on the training stays; ``sets``: part -> :class:`RecordSets`.
    """

    records: Records
    index: dict[str, np.ndarray]
    scaler: RecordsScaler
    sets: dict[str, RecordSets]
    settings: RecordsSettings

    @property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary(list(self.records.variable_names), list(self.records.static_names))

    def ids(self) -> dict[str, np.ndarray]:
        """Part -> the record ids of its stays."""
        return {part: self.records.ids[index] for part, index in self.index.items()}


def load_splits(dataset: str = "physionet2012", split: int = 0, bucket: str | float = "exact",
                sets: tuple[str, ...] | None = None, limit: int | None = None,
                data_dir: str | None = None, data_path: str | None = None) -> StaySplits:
    """Read a records dataset (through its cache), keep its first ``limit`` stays, take
    split ``split`` (0-4, stratified 80/10/10), fit the scaler on its training stays and
    cut every part into sets of ``bucket`` ("exact" or hours)."""
    bucket = parse_bucket(bucket)
    if isinstance(split, bool) or not isinstance(split, int) or not 0 <= split <= 4:
        raise ConfigError(f"split must be 0 to 4, got {split!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ConfigError(f"limit must be a whole number >= 1, got {limit!r}")
    records = load_records(dataset, data_dir=data_dir, data_path=data_path, sets=sets)
    if limit is not None:
        records = first_stays(records, limit)
    train, val, test = records.split(split)
    scaler = RecordsScaler.fit(records, train)
    index = dict(zip(PARTS, (train, val, test), strict=True))
    settings = RecordsSettings(records.name, str(Path(records.path).resolve()),
                               sorted(sets) if sets is not None else None, limit, split,
                               bucket)
    return StaySplits(records, index, scaler,
                      {part: make_sets(records, i, scaler, bucket) for part, i in index.items()},
                      settings)


class RecordsDataModule(TaskDataModule):
    """Batches (:class:`~timetok.core.data.records.SetBatch`) of the stays of one split.

    ``dataset``: ``physionet2012`` (``sets`` of a, b, c; all by default) or ``records-csv``
    (a long table at ``data_path``). ``limit`` keeps the first N stays in the order read
    (set-a's first, by record id) *before* splitting: a small, fixed subset for a demo or
    a test, still split 80/10/10 by label. ``split`` picks one of the five fixed splits;
    ``bucket`` cuts each stay into one set per distinct time (``"exact"``) or per so many
    hours. The scaler, the vocabulary, how the stays were read, the split's record ids and
    the load report travel with every exported model (:mod:`timetok.setvae.artifacts`).
    """

    def __init__(
        self,
        dataset: str = "physionet2012",
        split: int = 0,
        bucket: str | float = "exact",
        sets: tuple[str, ...] | None = None,
        limit: int | None = None,
        batch_size: int = 32,
        data_dir: str | None = None,
        data_path: str | None = None,
        num_workers: int = 0,
    ):
        super().__init__()
        if isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        parse_bucket(bucket)
        self.save_hyperparameters()
        self._data: StaySplits | None = None

    @property
    def data(self) -> StaySplits:
        return self.load()

    def load(self) -> StaySplits:
        """Read, split, scale and cut the stays once (also usable outside a Trainer)."""
        if self._data is None:
            hp = self.hparams
            self._data = load_splits(hp.dataset, hp.split, hp.bucket, hp.sets, hp.limit,
                                     hp.data_dir, hp.data_path)
        return self._data

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def split_dataset(self, split: str) -> RecordSets:
        return self.data.sets[split]

    def collate(self, items: list):
        return collate_sets(items)

    def save_artifacts(self, directory: Path) -> dict:
        """The scaler, vocabulary, settings and split ids (sections of ``data.json``) and
        the load report (see the class)."""
        data, directory = self.data, Path(directory)
        save_scaler(directory, data.scaler)
        data.vocabulary.save(directory)
        data.settings.save(directory)
        save_split(directory, data.settings.split, data.ids())
        data.records.report.save(directory / REPORT)
        labels = data.records.labels
        return {"dataset": data.records.name, "split": data.settings.split,
                "bucket": data.settings.bucket, "limit": data.settings.limit,
                "stays": {part: len(i) for part, i in data.index.items()},
                "positives": {part: int((labels[i] > 0).sum()) for part, i in data.index.items()}}
