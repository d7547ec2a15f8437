"""What travels with a model trained on ``records``: how to read new stays the same way.

A SeqSetVAE folder holds, beside ``config.json`` and the weights, ``data.json``
(:func:`timetok.core.model_folder.write_data_section`) with the sections

- ``variables``: the variable vocabulary and the static names, in the model's order
  (the model reads variable *indices*, so new stays are mapped onto these names);
- ``records_scaler``: the :class:`~timetok.core.data.records.RecordsScaler` fitted on the
  training stays;
- ``records``: how the stays were read (dataset, source, sets, limit, split, bucket);
- ``split``: the record ids of the training, validation and test stays, so a run can be
  audited and an evaluation refuses stays the model trained on;

and ``load_report.json``: the :class:`~timetok.core.data.records.RecordsReport` of the
source. Folders exported before ``data.json`` kept each section in a file of its own
(``variables.json`` ...); they still load. Written by
:class:`timetok.setvae.data.RecordsDataModule` and the pipeline's ``save_pretrained``;
read by finetuning, the pipeline (:mod:`timetok.setvae.pipeline`) and evaluation.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from dataclasses import dataclass

import numpy as np

from timetok.core.data.records import Records, RecordsScaler
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.core.model_folder import DATA_NAME, read_data_section, write_data_section

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


def _bad(directory: str | os.PathLike, section: str, problem: str) -> CheckpointError:
    return CheckpointError(f"section {section!r} of {directory}/{DATA_NAME} {problem}; export "
                           "the model again")


def save_scaler(directory: str | os.PathLike, scaler: RecordsScaler) -> None:
    write_data_section(directory, "records_scaler", scaler.to_dict())


def load_scaler(directory: str | os.PathLike) -> RecordsScaler:
    """The records scaler of a model folder; a folder without one is an error naming
    ``data.json`` (new stays would otherwise be read on the wrong scale)."""
    data = read_data_section(directory, "records_scaler", what="records scaler")
    try:
        return RecordsScaler.from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        raise _bad(directory, "records_scaler", f"is not a records scaler ({err})") from None


# --- the vocabulary ----------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """The names behind a model's variable indices ``[V]`` and static columns ``[P]``."""

    variables: list[str]
    statics: list[str]

    def save(self, directory: str | os.PathLike) -> None:
        write_data_section(directory, "variables", dataclasses.asdict(self))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Vocabulary:
        data = read_data_section(directory, "variables", what="variable vocabulary")
        names = [data.get("variables"), data.get("statics")] if isinstance(data, dict) else []
        if not names or not all(isinstance(n, list) and all(isinstance(x, str) for x in n)
                                for n in names):
            raise _bad(directory, "variables", "must hold lists of names 'variables' and "
                       "'statics'")
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
    """How a model's stays were read: the ``records`` section of ``data.json``."""

    dataset: str
    source: str  # the resolved file or folder
    sets: list[str] | None  # PhysioNet sets; None: every set or not PhysioNet
    limit: int | None  # the first ``limit`` stays in the order read
    split: int
    bucket: str | float

    def save(self, directory: str | os.PathLike) -> None:
        write_data_section(directory, "records", dataclasses.asdict(self))

    @classmethod
    def load(cls, directory: str | os.PathLike, required: bool = True
             ) -> RecordsSettings | None:
        """The settings (None when the folder has none and they are not ``required``)."""
        data = read_data_section(directory, "records", required, what="data settings")
        if data is None:
            return None
        try:
            settings = cls(**data)
            parse_bucket(settings.bucket)
        except (TypeError, ConfigError) as err:
            raise _bad(directory, "records", f"is not valid ({err})") from None
        return settings


def save_split(directory: str | os.PathLike, split: int, ids: dict[str, np.ndarray]) -> None:
    """The ``split`` section: the split's number and the record ids of each part."""
    write_data_section(directory, "split", {"split": split, **{k: [str(i) for i in v]
                                                                for k, v in ids.items()}})


def load_split(directory: str | os.PathLike, required: bool = True) -> dict | None:
    """The ``split`` section: ``split`` and the record ids of ``train``, ``val`` and
    ``test`` (None when the folder has none and it is not ``required``)."""
    data = read_data_section(directory, "split", required, what="record ids of its split")
    if data is None:
        return None
    if not (isinstance(data, dict)
            and all(isinstance(data.get(k), list) for k in ("train", "val", "test"))):
        raise _bad(directory, "split", "must hold the id lists train, val and test")
    return {"split": data.get("split"), **{k: [str(i) for i in data[k]]
                                           for k in ("train", "val", "test")}}
