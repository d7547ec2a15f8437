"""What travels with a model trained on ``records``: how to read new stays the same way.

A SeqSetVAE folder holds, beside ``config.json`` and the weights:

- ``variables.json``: the variable vocabulary and the static names, in the model's order
  (the model reads variable *indices*, so new stays are mapped onto these names);
- ``records_scaler.json``: the :class:`~timetok.core.data.records.RecordsScaler` fitted on the
  training stays;
- ``records.json``: how the stays were read (dataset, source, sets, limit, split, bucket);
- ``split.json``: the record ids of the training, validation and test stays, so a run can
  be audited and an evaluation refuses stays the model trained on;
- ``load_report.json``: the :class:`~timetok.core.data.records.RecordsReport` of the source.

Written by :class:`timetok.setvae.data.RecordsDataModule`; read by finetuning, the
pipeline (:mod:`timetok.setvae.pipeline`) and the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timetok.core.data.records import Records
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.core.utils import atomic_write_text

VARIABLES = "variables.json"
SCALER = "records_scaler.json"
SETTINGS = "records.json"
SPLIT = "split.json"
REPORT = "load_report.json"


def parse_bucket(bucket: str | float) -> str | float:
    """``"exact"``, or hours > 0 given as a number or its text (``"1.5"``)."""
    given = bucket
    if isinstance(bucket, str):
        if bucket.strip() == "exact":
            return "exact"
        try:
            bucket = float(bucket)
        except ValueError:
            bucket = float("nan")
    if (isinstance(bucket, bool) or not isinstance(bucket, numbers.Real)
            or not (np.isfinite(bucket) and bucket > 0)):
        raise ConfigError(f"bucket must be 'exact' or a number of hours > 0, got {given!r}")
    return float(bucket)


def _read(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path} not found: the model folder lacks its {what}; export "
                              "the model again with timetok's training")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); export the model again"
                              ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object; export the model again")
    return data


def _write(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


# --- the vocabulary ----------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """The names behind a model's variable indices ``[V]`` and static columns ``[P]``."""

    variables: list[str]
    statics: list[str]

    def save(self, directory: str | os.PathLike) -> None:
        _write(Path(directory) / VARIABLES, dataclasses.asdict(self))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Vocabulary:
        path = Path(directory) / VARIABLES
        data = _read(path, "variable vocabulary")
        names = [data.get("variables"), data.get("statics")]
        if not all(isinstance(n, list) and all(isinstance(x, str) for x in n) for n in names):
            raise CheckpointError(f"{path} must hold lists of names 'variables' and "
                                  "'statics'; export the model again")
        return cls(*names)

    def check_same(self, other: Vocabulary, where: str, data: str) -> None:
        """Refuse ``other`` (the data's) unless it names the same variables and statics in
        the same order."""
        for kind, mine, theirs in (("variables", self.variables, other.variables),
                                   ("statics", self.statics, other.statics)):
            if mine != theirs:
                raise DataError(
                    f"{where} reads {len(mine)} {kind} ({_names(mine)}), {data} holds "
                    f"{len(theirs)} ({_names(theirs)}): another variable vocabulary; pretrain "
                    "on this data, or pass the data the model was pretrained on"
                )

    def remap(self, records: Records) -> Records:
        """``records`` with variable indices and static columns in this vocabulary's order
        (statics it lacks stay missing); refuses a variable or static it does not name.
        Stays already in this order come back as they are, uncopied."""
        if (records.variable_names, records.static_names) == (self.variables, self.statics):
            return records
        extra = sorted(set(records.variable_names) - set(self.variables))
        used = np.unique(records.variables)
        extra = [name for name in extra if records.variable_names.index(name) in used]
        extra_statics = [name for i, name in enumerate(records.static_names)
                         if name not in self.statics and not np.isnan(records.statics[:, i]).all()]
        if extra or extra_statics:
            raise DataError(
                f"the stays hold {_names(extra + extra_statics)}, which the model does not "
                f"read (it reads {_names(self.variables)} and statics "
                f"{_names(self.statics)}); leave them out of the data"
            )
        lookup = np.array([self.variables.index(n) if n in self.variables else -1
                           for n in records.variable_names], dtype=np.int32)
        statics = np.full((len(records), len(self.statics)), np.nan, dtype=np.float32)
        for i, name in enumerate(records.static_names):
            if name in self.statics:
                statics[:, self.statics.index(name)] = records.statics[:, i]
        return dataclasses.replace(
            records, variable_names=list(self.variables), static_names=list(self.statics),
            variables=lookup[records.variables] if len(lookup) else records.variables,
            statics=statics)


def _names(names: list[str], top: int = 8) -> str:
    shown = ", ".join(names[:top]) + (", ..." if len(names) > top else "")
    return shown or "none"


# --- how the stays were read -------------------------------------------------------------


def first_stays(records: Records, n: int) -> Records:
    """The first ``n`` stays of ``records`` in the order read (all when it has fewer)."""
    if n >= len(records):
        return records
    end = int(records.offsets[n])
    return dataclasses.replace(
        records, ids=records.ids[:n], sources=records.sources[:n], labels=records.labels[:n],
        statics=records.statics[:n], offsets=records.offsets[:n + 1],
        times=records.times[:end], variables=records.variables[:end],
        values=records.values[:end])


@dataclass(frozen=True)
class RecordsSettings:
    """How a model's stays were read: ``records.json``."""

    dataset: str
    source: str  # the resolved file or folder
    sets: list[str] | None  # PhysioNet sets; None: every set or not PhysioNet
    limit: int | None  # the first ``limit`` stays in the order read
    split: int
    bucket: str | float

    def save(self, directory: str | os.PathLike) -> None:
        _write(Path(directory) / SETTINGS, dataclasses.asdict(self))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> RecordsSettings:
        path = Path(directory) / SETTINGS
        data = _read(path, "data settings")
        try:
            settings = cls(**data)
            parse_bucket(settings.bucket)
        except (TypeError, ConfigError) as err:
            raise CheckpointError(f"{path} is not valid ({err}); export the model again"
                                  ) from None
        return settings


def save_split(directory: str | os.PathLike, split: int, ids: dict[str, np.ndarray]) -> None:
    """``split.json``: the split's number and the record ids of each part."""
    _write(Path(directory) / SPLIT, {"split": split, **{k: [str(i) for i in v]
                                                         for k, v in ids.items()}})


def load_split(directory: str | os.PathLike) -> dict[str, list[str]]:
    """The record ids of ``train``, ``val`` and ``test`` from ``split.json``."""
    path = Path(directory) / SPLIT
    data = _read(path, "split")
    if not all(isinstance(data.get(k), list) for k in ("train", "val", "test")):
        raise CheckpointError(f"{path} must hold the id lists train, val and test; export "
                              "the model again")
    return {k: [str(i) for i in data[k]] for k in ("train", "val", "test")}
