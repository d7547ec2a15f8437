"""The ``labelled`` kind: samples, each a multivariate series with one class.

A split holds ``x: [N, T, C]`` float32 (time first, channels last, as everywhere in
timetok), ``y: [N]`` int64 class indices ``0..K-1``, ``mask: [N, T]`` bool (True: an
observed step) and, for HAR, ``groups: [N]`` (the subject of each sample).

Series of unequal length (UEA ``.ts``, NaN-padded UCR rows, trailing NaNs in an
``.npz``) are padded at the end to the longest series of the dataset. The per-channel
scaler is fitted on the observed steps of the training split only; the padded steps are
set to 0 *after* standardisation and ``mask`` is False there. Equal-length sets have an
all-True mask. A missing value inside a series (before its last observed step) is refused.

Formats, chosen by the dataset's ``protocol``:

- ``har``: UCI HAR inertial signals, ``uci_har_inertial.npz`` or the official
  ``UCI HAR Dataset/`` folder (``{train,test}/Inertial Signals/*.txt``, ``y_*.txt``,
  ``subject_*.txt``, ``activity_labels.txt``); classes are the activity names;
- ``ucr``: a UCR 2018 folder, ``<Name>_TRAIN.tsv`` / ``<Name>_TEST.tsv``, label in
  column 1, tab-separated, one channel;
- ``uea``: a UEA folder, ``<Name>_TRAIN.ts`` / ``<Name>_TEST.ts``, read through aeon
  (``pip install 'timetok[classify]'``);
- ``npz``: ``X [N, T, C]`` and ``y [N]`` (optional ``groups``, ``channels``), or
  ``X_train``/``y_train``/``X_test``/``y_test`` (optional ``groups_train``/``groups_test``).

The official test split is kept as it is; without one (an ``.npz`` with ``X``/``y``), 20 %
is carved off for testing first. Validation is carved from train: whole groups (HAR
subjects) when the data has groups, else stratified per class; both seeded.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timetok.core.data.labelled_formats import Table, read
from timetok.core.data.registry import (
    DataKind,
    DatasetSpec,
    credit,
    get_spec,
    register,
    register_kind,
    resolve_path,
)
from timetok.core.data.scaler import Scaler
from timetok.core.errors import DataError

SPLITS = ("train", "val", "test")
TEST_FRACTION = 0.2  # carved off when a dataset ships without a test split
UCR_CITATION = "Dau et al., UCR archive 2018"
# The UCR archive states no licence; its maintainers ask every user to cite it.
UCR_LICENCE = "none stated; cite the archive"


@dataclass
class Samples:
    """One split: ``x [N, T, C]`` float32, ``y [N]`` int64, ``groups [N]`` or None,
    ``mask [N, T]`` bool (True: observed)."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray | None
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Samples:
        groups = None if self.groups is None else self.groups[index]
        return Samples(self.x[index], self.y[index], groups, self.mask[index])


@dataclass
class LabelledData:
    """A labelled dataset split into train/val/test and standardised with the train scaler."""

    name: str
    path: Path
    classes: list[str]  # original label values; index = class index
    channels: list[str]
    scaler: Scaler
    splits: dict[str, Samples]
    split_rule: str

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def length(self) -> int:
        return self.splits["train"].x.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def with_labels(self, fraction: float, seed: int) -> LabelledData:
        """The same data with labels for ``fraction`` of the training and of the validation
        samples only: stratified per class, each class keeping at least one sample in each
        split, seeded; the test split and the scaler unchanged. A share of 1 returns the
        data itself."""
        if not 0 < fraction <= 1:
            raise DataError(f"label_fraction must lie in (0, 1], got {fraction}")
        if fraction == 1:
            return self
        rng = np.random.default_rng(seed)
        splits = dict(self.splits)
        for split in ("train", "val"):
            part = splits[split]
            keep = np.zeros(len(part), dtype=bool)
            for label in np.unique(part.y):
                index = np.flatnonzero(part.y == label)
                n = max(int(np.floor(fraction * len(index) + 0.5)), 1)
                keep[rng.permutation(index)[:n]] = True
            splits[split] = part.take(keep)
        rule = f"{self.split_rule}; labels for {fraction * 100:g} % (stratified, seed {seed})"
        return dataclasses.replace(self, splits=splits, split_rule=rule)

    def dataset(self, split: str):
        """A lazily indexed ``torch`` dataset; item ``i`` is ``(x [T, C] float32, y int64,
        mask [T] bool)``, views into one tensor per split."""
        import torch
        from torch.utils.data import TensorDataset

        part = self.splits[split]
        return TensorDataset(torch.from_numpy(part.x), torch.from_numpy(part.y),
                             torch.from_numpy(part.mask))


# --- splitting and scaling -------------------------------------------------------------


def _carve(labels: np.ndarray, groups: np.ndarray | None, fraction: float,
           rng: np.random.Generator, what: str, unit: str) -> tuple[np.ndarray, str]:
    """A boolean ``[N]`` selection of about ``fraction`` of the samples for split ``what``:
    whole groups when ``groups`` is given, else stratified (each class keeps >= 1)."""
    if groups is not None:
        units = np.unique(groups)
        n = min(max(int(np.floor(fraction * len(units) + 0.5)), 1), len(units) - 1)
        if n < 1:
            raise DataError(f"the training data has one {unit} only; a {what} split by {unit} "
                            f"needs two or more: give the samples other {unit}s or none")
        carved = np.isin(groups, rng.choice(units, n, replace=False))
        return carved, f"{what} by {unit}: {len(units) - n} train / {n} {what} {unit}s"
    carved = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        index = np.flatnonzero(labels == label)
        n = min(int(np.floor(fraction * len(index) + 0.5)), len(index) - 1)
        carved[rng.permutation(index)[:n]] = True
    if not carved.any():
        fix = "raise val_fraction" if what == "val" else "provide a test split"
        raise DataError(f"a {what} split of {fraction:g} takes no sample of {len(labels)} "
                        f"(each class keeps one for training); {fix} or add samples")
    of = "train" if what == "val" else "all samples"
    return carved, f"{what} stratified {fraction * 100:g} % of {of}"


def _encode(table: Table, classes: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    if unknown := sorted(set(table.labels.tolist()) - set(index)):
        raise DataError(f"{table.source}: class {unknown[0]!r} does not occur in the training "
                        "data; a model cannot learn it")
    return np.array([index[v] for v in table.labels.tolist()], dtype=np.int64)


def _class_order(labels: np.ndarray) -> list[str]:
    """Distinct labels, numerically sorted when all are numbers, else lexicographically."""
    names = sorted(set(labels.tolist()))
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def _split(tables: dict[str, Table], classes: list[str], val_fraction: float, seed: int,
           unit: str) -> tuple[dict[str, Samples], str]:
    """Train/val/test samples (padded to one length) and the rule that made them."""
    steps = max(t.x.shape[1] for t in tables.values())
    parts = {}
    for split, table in tables.items():
        pad = steps - table.x.shape[1]
        parts[split] = Samples(np.pad(table.x, ((0, 0), (0, pad), (0, 0))),
                               _encode(table, classes), table.groups,
                               np.pad(table.mask, ((0, 0), (0, pad))))
    rng = np.random.default_rng(seed)
    train, rules = parts["train"], []
    classes_in_train = set(train.y.tolist())
    if "test" in parts:
        rules.append("official test split")
    else:
        carved, rule = _carve(train.y, train.groups, TEST_FRACTION, rng, "test", unit)
        parts["test"], train = train.take(carved), train.take(~carved)
        rules.append(rule)
    carved, rule = _carve(train.y, train.groups, val_fraction, rng, "val", unit)
    parts["val"], parts["train"] = train.take(carved), train.take(~carved)
    if lost := sorted(classes_in_train - set(parts["train"].y.tolist())):
        raise DataError(f"no training sample of class {classes[lost[0]]!r} is left once the "
                        f"{unit}s of the other splits are set aside; lower val_fraction or "
                        "change seed")
    return {s: parts[s] for s in SPLITS}, f"{'; '.join(rules + [rule])}, seed {seed}"


def load_labelled(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    data_path: str | os.PathLike | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    min_length: int = 1,
) -> LabelledData:
    """Read a registered labelled dataset, split it, scale it with train statistics."""
    spec = get_spec(name)
    if spec.kind != "labelled":
        raise DataError(f"dataset {spec.name!r} holds {spec.kind}, not labelled samples; pick a "
                        "labelled dataset (timetok data list)")
    if not isinstance(val_fraction, int | float) or not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 1:
        raise DataError(f"min_length must be a whole number >= 1, got {min_length!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed must be a whole number >= 0, got {seed!r}")
    path = resolve_path(name, data_dir, data_path)
    tables, channels, classes = read(spec.protocol, path)
    for table in tables.values():
        if not len(table.x):
            raise DataError(f"{table.source} holds no samples; give it at least one series "
                            "per class")
        lengths = table.mask.sum(axis=1)
        if lengths.min() < min_length:
            i = int(np.argmin(lengths))
            raise DataError(f"{table.source}: sample {i} has {int(lengths[i])} observed steps, "
                            f"fewer than min_length {min_length}; drop it or lower min_length")
    present = _class_order(tables["train"].labels)
    if len(present) < 2:
        raise DataError(f"{tables['train'].source}: every training sample has class "
                        f"{present[0]!r}; classification needs at least two classes")
    classes = classes or present
    unit = "subject" if spec.protocol == "har" else "group"
    splits, rule = _split(tables, classes, val_fraction, seed, unit)
    train = splits["train"]
    scaler = Scaler.fit(train.x[train.mask], channels)
    for part in splits.values():
        part.x = np.where(part.mask[:, :, None], scaler.transform(part.x), 0).astype(np.float32)
    return LabelledData(spec.name, path, classes, channels, scaler, splits, rule)


# --- the kind's report -----------------------------------------------------------------


def describe(spec: DatasetSpec, path: Path, options: dict) -> dict:
    """Samples, class balance and observed lengths per split, channels, classes, split rule
    (``options`` are ignored: the defaults ``val_fraction=0.2``, ``seed=0`` apply)."""
    data = load_labelled(spec.name, data_path=path)
    report = {
        "dataset": data.name, "kind": spec.kind, "path": str(data.path),
        "channels": data.channels, "length": data.length, "classes": data.classes,
        "split_rule": data.split_rule, "licence": spec.licence, "citation": spec.citation,
        "splits": {},
    }
    for split, part in data.splits.items():
        counts = np.bincount(part.y, minlength=data.n_classes)
        lengths = part.mask.sum(axis=1)
        report["splits"][split] = {
            "samples": len(part),
            "classes": dict(zip(data.classes, counts.tolist(), strict=True)),
            "min_length": int(lengths.min()), "max_length": int(lengths.max()),
        }
    return report


def render(report: dict) -> str:
    n = sum(row["samples"] for row in report["splits"].values())
    channels = report["channels"]
    lines = [f"{report['dataset']} ({report['kind']}): {n:,} samples x {len(channels)} "
             f"channel{'s' if len(channels) > 1 else ''} ({', '.join(channels)}) x "
             f"{report['length']} steps from {report['path']}",
             f"{len(report['classes'])} classes: {', '.join(report['classes'])}",
             f"split: {report['split_rule']}"]
    for split, row in report["splits"].items():
        balance = "  ".join(f"{name}: {count}" for name, count in row["classes"].items())
        span = (f", {row['min_length']}-{row['max_length']} steps"
                if row["min_length"] != row["max_length"] else "")
        lines.append(f"  {split:<5} {row['samples']:>7,} samples{span}  {balance}")
    return "\n".join(lines + credit(report))


register_kind(DataKind("labelled", "samples with a class each: a multivariate series and its "
                       "label, split into train/val/test", describe, render))
register(DatasetSpec("har", "labelled", "UCI HAR smartphone inertial signals, 6 activities, "
                     "30 subjects (validation by subject)", "uci_har_inertial.npz",
                     "10,299 samples x 9 channels x 128", licence="CC BY 4.0",
                     citation="Anguita et al., ESANN 2013", protocol="har"))
for _name, _folder, _size, _what in [
    ("ecg200", "ECG200", "200 samples x 1 channel x 96", "heartbeats, normal or infarction"),
    ("syntheticcontrol", "SyntheticControl", "600 samples x 1 channel x 60",
     "synthetic control charts, 6 patterns"),
    ("cbf", "CBF", "930 samples x 1 channel x 128", "cylinder-bell-funnel, 3 shapes"),
]:
    register(DatasetSpec(_name, "labelled", f"UCR {_folder}: {_what}", _folder, _size,
                         licence=UCR_LICENCE, citation=UCR_CITATION, protocol="ucr"))
register(DatasetSpec("basicmotions", "labelled", "UEA BasicMotions: smart-watch motion, 4 "
                     "activities", "BasicMotions", "80 samples x 6 channels x 100",
                     licence="BSD-3 (as shipped in sktime)",
                     citation="Bagnall et al., UEA archive 2018", protocol="uea"))
register(DatasetSpec("ucr", "labelled", "any UCR 2018 folder (<Name>_TRAIN.tsv, _TEST.tsv)",
                     None, "your files", licence=UCR_LICENCE, citation=UCR_CITATION,
                     protocol="ucr"))
register(DatasetSpec("uea", "labelled", "any UEA folder (<Name>_TRAIN.ts, _TEST.ts)", None,
                     "your files", citation="Bagnall et al., UEA archive 2018", protocol="uea"))
register(DatasetSpec("npz", "labelled", "any .npz with X [N, T, C] and y (or X_train, y_train, "
                     "X_test, y_test)", None, "your file", protocol="npz"))
