"""The ``records`` kind: irregular ICU stays, each a bag of timed observations and a label.

A stay is what a set-VAE reads: observations ``(time in hours, variable, value)`` at
their own times, a few static descriptors and a label. :func:`load_records` keeps them
flat (N stays, M observations, V variables, P statics): ``times, variables, values [M]``
sorted by time within each stay, ``offsets [N + 1]`` marking each stay's slice, so memory
grows with the observations, never with a dense stay x time grid. PhysioNet 2012 and its
cleaning are in :mod:`timetok.core.data.records_formats`, a user's long table in
:mod:`timetok.core.data.records_long`; :class:`RecordsReport` says what became of every line.

``physionet2012`` resolves to ``physionet2012_raw_abc.tar.gz`` in ``data_dir`` (the
shared copy of the official files), or to the folder ``physionet2012/`` that ``timetok
data fetch physionet2012`` fills with PhysioNet's six files (``set-{a,b,c}.tar.gz``,
``Outcomes-{a,b,c}.txt``, each checked against PhysioNet's ``SHA256SUMS.txt``); pass a
folder of the official files (``set-a/`` or ``set-a.tar.gz`` ..., ``Outcomes-a.txt`` ...)
or any such archive as ``data_path``.

- **Splits**: :meth:`Records.split` gives the literature's protocol (Raindrop, Warpformer,
  ViTST): five fixed 80/10/10 train/val/test splits of the stays, stratified by label,
  drawn by ``numpy.random.default_rng((seed, k))``: the same on every run and machine (for
  one NumPy release; NumPy keeps its generators' streams across platforms).
- **Scaling**: :class:`RecordsScaler` standardises each variable with the mean and
  standard deviation of its values in the training stays, and each static likewise (as a
  number, PhysioNet's Gender and ICUType too); a missing static stays missing, with a mask.
- **Sets**: :func:`make_sets` cuts each stay into a sequence of sets, one per distinct
  time (``bucket="exact"``) or per fixed bucket of ``bucket`` hours; :func:`collate_sets`
  pads a batch of them (shapes in :class:`SetBatch`).
- **Cache**: the parsed arrays (before any split or scaling) are kept as an ``.npz``
  under ``cache_dir()/records``, keyed by the source's path, the settings, the cleaning
  rules and each source file's size and modification time; a second load reads it in
  well under a second, and a changed source replaces its stale file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from timetok.core.data import records_formats as formats
from timetok.core.data.records_formats import RecordsReport
from timetok.core.data.records_long import long_table_files, read_long_table
from timetok.core.data.registry import (
    DataKind,
    DatasetSpec,
    cache_dir,
    credit,
    get_spec,
    register,
    register_kind,
    resolve_path,
)
from timetok.core.data.scaler import Scaler
from timetok.core.errors import DataError
from timetok.core.utils import atomic_path

if TYPE_CHECKING:
    import torch

__all__ = ["Records", "RecordsReport", "RecordsScaler", "RecordSets", "SetBatch", "SetStay",
           "collate_sets", "load_records", "make_sets"]

logger = logging.getLogger(__name__)

N_SPLITS = 5
VAL_FRACTION = TEST_FRACTION = 0.1
SETS = ("a", "b", "c")
CACHE_VERSION = 1  # raise when the arrays change meaning; rule changes rekey by themselves
EDGE_TOLERANCE = 1e-4  # hours: a time this close below a bucket edge counts as on it
_ARRAYS = ("ids", "sources", "labels", "statics", "offsets", "times", "variables", "values",
           "variable_names", "static_names")


@dataclass
class Records:
    """Stays with a time-series observation, flat (see the module docstring).

    ``ids, sources [N]`` str (record id; ``set-a`` ... or the file name); ``labels [N]``
    int64; ``statics [N, P]`` float32 as recorded, NaN where missing; ``offsets [N + 1]``
    int64; ``times [M]`` float32 hours since admission; ``variables [M]`` int32 (index into
    ``variable_names``); ``values [M]`` float32 as recorded, after the cleaning rules.
    """

    name: str
    path: Path
    variable_names: list[str]
    static_names: list[str]
    ids: np.ndarray
    sources: np.ndarray
    labels: np.ndarray
    statics: np.ndarray
    offsets: np.ndarray
    times: np.ndarray
    variables: np.ndarray
    values: np.ndarray
    report: RecordsReport

    @classmethod
    def from_arrays(cls, name: str, path: Path, arrays: dict, report: RecordsReport) -> Records:
        fields = {key: arrays[key] for key in _ARRAYS}
        return cls(name, path, fields.pop("variable_names").tolist(),
                   fields.pop("static_names").tolist(), **fields, report=report)

    def __len__(self) -> int:
        return len(self.ids)

    def counts(self) -> np.ndarray:
        """``[N]`` int64 observations per stay."""
        return np.diff(self.offsets)

    def n_times(self) -> np.ndarray:
        """``[N]`` int64 distinct times per stay (its sets with ``bucket="exact"``)."""
        stay = np.repeat(np.arange(len(self)), self.counts())
        return np.bincount(stay[_cut(stay, self.times, "exact")[0][:-1]], minlength=len(self))

    def observations(self, index: np.ndarray) -> np.ndarray:
        """``[K]`` int64 positions in ``times/variables/values`` of the stays ``index [n]``,
        stay after stay."""
        index = np.asarray(index, dtype=np.int64)
        starts, counts = self.offsets[index], self.counts()[index]
        shift = starts - np.concatenate([[0], np.cumsum(counts)[:-1]])
        return np.arange(counts.sum()) + np.repeat(shift, counts)

    def split(self, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Split ``k`` (0 to 4) of the protocol: ``train, val, test`` stay indices, sorted,
        disjoint and covering; 10 % of each class to test and to val, the rest to train."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < N_SPLITS:
            raise DataError(f"split must be 0 to {N_SPLITS - 1}, got {k!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise DataError(f"seed must be a whole number >= 0, got {seed!r}")
        rng = np.random.default_rng((seed, k))
        parts: list[list[np.ndarray]] = [[], [], []]
        for label in np.unique(self.labels):
            index = rng.permutation(np.flatnonzero(self.labels == label))
            n_test = int(np.floor(TEST_FRACTION * len(index) + 0.5))
            n_val = int(np.floor(VAL_FRACTION * len(index) + 0.5))
            parts[2].append(index[:n_test])
            parts[1].append(index[n_test:n_test + n_val])
            parts[0].append(index[n_test + n_val:])
        train, val, test = (np.sort(np.concatenate(p)) for p in parts)
        if not (len(train) and len(val) and len(test)):
            raise DataError(f"{len(self)} stays are too few for an 80/10/10 split (train "
                            f"{len(train)}, val {len(val)}, test {len(test)}); add stays")
        return train, val, test


# --- scaling ---------------------------------------------------------------------------


def _group_moments(values: np.ndarray, groups: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """Mean and standard deviation ``[n]`` float32 of ``values [K]`` per group ``[K]``; a
    group without values gets 0 and 1, a constant one the standard deviation 1."""
    count = np.bincount(groups, minlength=n)
    mean = np.bincount(groups, values.astype(np.float64), minlength=n) / np.maximum(count, 1)
    square = np.bincount(groups, (values - mean[groups]) ** 2, minlength=n)
    std = np.sqrt(square / np.maximum(count, 1))
    std[(count == 0) | (std < 1e-8)] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class RecordsScaler:
    """Standardisation fitted on training stays: ``series`` per variable ``[V]``,
    ``statics`` per static ``[P]``."""

    series: Scaler
    statics: Scaler

    @classmethod
    def fit(cls, records: Records, index: np.ndarray) -> RecordsScaler:
        """Fit on the observed values of the stays ``index`` (the training split)."""
        rows = records.observations(index)
        mean, std = _group_moments(records.values[rows], records.variables[rows],
                                    len(records.variable_names))
        statics = records.statics[np.asarray(index)]
        observed = ~np.isnan(statics)
        column = np.broadcast_to(np.arange(statics.shape[1]), statics.shape)
        s_mean, s_std = _group_moments(statics[observed], column[observed], statics.shape[1])
        return cls(Scaler(mean, std, list(records.variable_names)),
                   Scaler(s_mean, s_std, list(records.static_names)))

    def transform_values(self, variables: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``[K]`` float32 standardised ``values [K]`` of ``variables [K]``."""
        return ((values - self.series.mean[variables]) / self.series.std[variables]).astype(
            np.float32)

    def transform_statics(self, statics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``statics [N, P]`` standardised, 0 where missing, and ``[N, P]`` bool (observed)."""
        observed = ~np.isnan(statics)
        return np.where(observed, self.statics.transform(statics), 0).astype(np.float32), observed

    def to_dict(self) -> dict:
        return {"series": self.series.to_dict(), "statics": self.statics.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> RecordsScaler:
        return cls(Scaler.from_dict(data["series"]), Scaler.from_dict(data["statics"]))



# --- sets and batches ------------------------------------------------------------------


def _check_bucket(bucket: str | float) -> str | float:
    if bucket == "exact":
        return bucket
    if isinstance(bucket, bool) or not isinstance(bucket, numbers.Real) or not (
            np.isfinite(bucket) and bucket > 0):
        raise DataError(f"bucket must be 'exact' or a number of hours > 0, got {bucket!r}")
    return float(bucket)


def _cut(stay: np.ndarray, times: np.ndarray, bucket: str | float
         ) -> tuple[np.ndarray, np.ndarray]:
    """Sets of observations sorted by stay and time: ``starts [S + 1]`` (set s holds
    observations ``starts[s]:starts[s + 1]``) and ``set_times [S]`` float32 hours (the
    time, or the bucket's start)."""
    hours = times.astype(np.float64)
    key = hours if bucket == "exact" else np.floor((hours + EDGE_TOLERANCE) / bucket)
    change = (stay[1:] != stay[:-1]) | (key[1:] != key[:-1])
    first = np.flatnonzero(np.concatenate([[len(stay) > 0], change]))
    set_times = key[first] if bucket == "exact" else key[first] * bucket
    return np.append(first, len(stay)).astype(np.int64), set_times.astype(np.float32)


class SetStay(NamedTuple):
    """One stay as sets: ``values, times [k]`` float32, ``variables, set_index [k]`` int64
    (set_index: 0 to s-1, non-decreasing), ``set_times [s]`` float32 hours, ``label`` int,
    ``statics [P]`` float32 (0 where missing), ``statics_mask [P]`` bool."""

    values: np.ndarray
    variables: np.ndarray
    times: np.ndarray
    set_index: np.ndarray
    set_times: np.ndarray
    label: int
    statics: np.ndarray
    statics_mask: np.ndarray


@dataclass
class RecordSets:
    """Stays cut into sets, flat: n stays, S sets, K observations. ``values [K]`` float32
    standardised, ``variables [K]`` int64, ``times [K]`` float32 hours; ``set_starts [S + 1]``
    (observations of set s), ``set_times [S]`` float32, ``stay_sets [n + 1]`` (sets of stay
    i); ``labels [n]`` int64, ``statics [n, P]`` float32, ``statics_mask [n, P]`` bool,
    ``ids [n]``. A map-style dataset: item i is a :class:`SetStay`."""

    values: np.ndarray
    variables: np.ndarray
    times: np.ndarray
    set_starts: np.ndarray
    set_times: np.ndarray
    stay_sets: np.ndarray
    labels: np.ndarray
    statics: np.ndarray
    statics_mask: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def n_sets(self) -> np.ndarray:
        """``[n]`` int64 sets per stay."""
        return np.diff(self.stay_sets)

    def __getitem__(self, i: int) -> SetStay:
        first, last = self.stay_sets[i], self.stay_sets[i + 1]
        lo, hi = self.set_starts[first], self.set_starts[last]
        set_index = np.repeat(np.arange(last - first), np.diff(self.set_starts[first:last + 1]))
        return SetStay(self.values[lo:hi], self.variables[lo:hi], self.times[lo:hi], set_index,
                       self.set_times[first:last], int(self.labels[i]), self.statics[i],
                       self.statics_mask[i])


def make_sets(records: Records, index: np.ndarray, scaler: RecordsScaler,
              bucket: str | float = "exact") -> RecordSets:
    """The stays ``index [n]`` standardised by ``scaler`` and cut into sets: one per
    distinct time (``"exact"``) or per ``bucket`` hours (``1.0``: hour 0, hour 1, ...)."""
    bucket = _check_bucket(bucket)
    index = np.asarray(index, dtype=np.int64)
    rows = records.observations(index)
    stay = np.repeat(np.arange(len(index)), records.counts()[index])
    starts, set_times = _cut(stay, records.times[rows], bucket)
    sets_per_stay = np.bincount(stay[starts[:-1]], minlength=len(index))
    variables = records.variables[rows].astype(np.int64)
    statics, mask = scaler.transform_statics(records.statics[index])
    return RecordSets(scaler.transform_values(variables, records.values[rows]), variables,
                      records.times[rows], starts, set_times,
                      np.concatenate([[0], np.cumsum(sets_per_stay)]), records.labels[index],
                      statics, mask, records.ids[index])


@dataclass
class SetBatch:
    """A padded batch of B stays, S sets (the most in one stay), K observations (the most
    in one set): ``values, times [B, S, K]`` float32, ``variables [B, S, K]`` int64 (0 at
    padding), ``obs_mask [B, S, K]`` bool (True: an observation), ``set_times [B, S]``
    float32 hours, ``set_mask [B, S]`` bool, ``labels [B]`` int64, ``statics [B, P]``
    float32, ``statics_mask [B, P]`` bool. Tensors; padding is 0 or False."""

    values: torch.Tensor
    variables: torch.Tensor
    times: torch.Tensor
    obs_mask: torch.Tensor
    set_times: torch.Tensor
    set_mask: torch.Tensor
    labels: torch.Tensor
    statics: torch.Tensor
    statics_mask: torch.Tensor


def collate_sets(items: list[SetStay]) -> SetBatch:
    """Pad stays (``RecordSets`` items) into a :class:`SetBatch`; a ``collate_fn``."""
    import torch

    per_set = [np.bincount(item.set_index, minlength=len(item.set_times)) for item in items]
    b, s, k = len(items), max(len(c) for c in per_set), max(int(c.max()) for c in per_set)
    values, times = np.zeros((b, s, k), dtype=np.float32), np.zeros((b, s, k), dtype=np.float32)
    variables, obs_mask = np.zeros((b, s, k), dtype=np.int64), np.zeros((b, s, k), dtype=bool)
    set_times, set_mask = np.zeros((b, s), dtype=np.float32), np.zeros((b, s), dtype=bool)
    for i, (item, counts) in enumerate(zip(items, per_set, strict=True)):
        slot = np.arange(len(item.values)) - np.repeat(np.cumsum(counts) - counts, counts)
        where = (i, item.set_index, slot)  # the observation's set, and its place in the set
        values[where], variables[where], times[where] = item.values, item.variables, item.times
        obs_mask[where] = True
        set_times[i, :len(counts)], set_mask[i, :len(counts)] = item.set_times, True
    return SetBatch(
        torch.from_numpy(values), torch.from_numpy(variables), torch.from_numpy(times),
        torch.from_numpy(obs_mask), torch.from_numpy(set_times), torch.from_numpy(set_mask),
        torch.tensor([item.label for item in items], dtype=torch.int64),
        torch.from_numpy(np.stack([item.statics for item in items])),
        torch.from_numpy(np.stack([item.statics_mask for item in items])))


# --- loading and the cache -------------------------------------------------------------


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:12]


def _cache_file(spec: DatasetSpec, path: Path, settings: dict) -> Path:
    """``<name>-<source>-<content>.npz``: the source is the path, the settings and the
    cleaning rules; the content, each source file's size and modification time."""
    if spec.protocol == "long-table":
        files = list(long_table_files(path))
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    content = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    rules = [formats.SERIES, formats.STATICS, formats.ZERO_IMPOSSIBLE, formats.RANGES,
             formats.PH_X100, formats.MISSING_MARKER]
    source = _digest([CACHE_VERSION, spec.protocol, str(path.resolve()), settings, rules])
    return cache_dir() / "records" / f"{spec.name}-{source}-{_digest(content)}.npz"


def _read_cache(file: Path) -> tuple[dict, RecordsReport] | None:
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _ARRAYS}
            report = RecordsReport.from_dict(json.loads(str(npz["report"])))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
        logger.warning("ignoring the unreadable records cache %s (%s); parsing again", file, err)
        return None
    return arrays, report


def _write_cache(file: Path, arrays: dict, report: RecordsReport) -> None:
    try:
        with atomic_path(file) as tmp, tmp.open("wb") as fh:
            np.savez(fh, report=np.array(json.dumps(report.to_dict())), **arrays)
        for stale in file.parent.glob(f"{file.name.rsplit('-', 1)[0]}-*.npz"):
            if stale != file:  # the same source as it was before a change
                stale.unlink(missing_ok=True)
    except OSError as err:
        logger.warning("could not write the records cache %s (%s); the next load parses "
                       "again", file, err)


def _check_sets(spec: DatasetSpec, sets: tuple[str, ...] | None) -> tuple[str, ...]:
    if spec.protocol != "physionet2012":
        if sets is not None:
            raise DataError(f"sets applies to physionet2012 only, not to {spec.name!r}; "
                            "leave it out")
        return ()
    sets = SETS if sets is None else tuple(sets)
    if not sets or len(set(sets)) != len(sets) or not set(sets) <= set(SETS):
        raise DataError(f"sets must be distinct names among {', '.join(SETS)}, got {sets!r}")
    return tuple(sorted(sets))


def load_records(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    data_path: str | os.PathLike | None = None,
    sets: tuple[str, ...] | None = None,
    cache: bool = True,
) -> Records:
    """Read a registered records dataset (``physionet2012``: sets ``("a", "b", "c")`` by
    default; ``records-csv``: a long table at ``data_path``), through the cache unless
    ``cache=False``."""
    spec = get_spec(name)
    if spec.kind != "records":
        raise DataError(f"dataset {spec.name!r} holds {spec.kind}, not records; pick a records "
                        "dataset (timetok data list)")
    sets = _check_sets(spec, sets)
    path = resolve_path(name, data_dir, data_path)
    file = _cache_file(spec, path, {"sets": list(sets)})
    start = time.perf_counter()
    loaded = _read_cache(file) if cache else None
    how = "from the cache"
    if loaded is None:
        if spec.protocol == "physionet2012":
            loaded = formats.read_physionet(path, sets)
        else:
            loaded = read_long_table(path)
        how = "parsed"
        if cache:
            _write_cache(file, *loaded)
    logger.info("%s: %d stays %s in %.1f s", spec.name, len(loaded[0]["ids"]), how,
                time.perf_counter() - start)
    return Records.from_arrays(spec.name, path, *loaded)


# --- the kind's report -----------------------------------------------------------------


def describe(spec: DatasetSpec, path: Path, options: dict) -> dict:
    """Stays, label balance, variables, observations and the load report (``options`` are
    ignored: all sets are read)."""
    records = load_records(spec.name, data_path=path)
    positives = int((records.labels > 0).sum())
    return {
        "dataset": spec.name, "kind": spec.kind, "path": str(path),
        "stays_read": records.report.stays_read, "stays": len(records),
        "positives": positives, "positive_share": positives / len(records),
        "variables": records.variable_names, "statics": records.static_names,
        "observations": int(len(records.values)),
        "median_observations": float(np.median(records.counts())),
        "median_times": float(np.median(records.n_times())),
        "splits": f"{N_SPLITS} stratified 80/10/10 train/val/test splits of the stays",
        "licence": spec.licence, "citation": spec.citation,
        "report": records.report.to_dict(),
    }


def render(report: dict) -> str:
    n, p = len(report["variables"]), len(report["statics"])
    lines = [f"{report['dataset']} ({report['kind']}): {report['stays']:,} stays (of "
             f"{report['stays_read']:,} read) x {n} variable{'s' * (n != 1)} + {p} "
             f"static{'s' * (p != 1)} ({', '.join(report['statics'])}) from {report['path']}",
             f"label: {report['positives']:,} positive ({report['positive_share'] * 100:.1f} %)",
             f"{report['observations']:,} observations; per stay a median of "
             f"{report['median_observations']:g} observations at {report['median_times']:g} "
             "distinct times",
             f"splits: {report['splits']}", "load report:"]
    lines += [f"  {line}" for line in RecordsReport.from_dict(report["report"]).lines()]
    return "\n".join(lines + credit(report))


register_kind(DataKind("records", "irregular stays: observations (time, variable, value), "
                       "statics and a label per stay", describe, render))
register(DatasetSpec("physionet2012", "records", "PhysioNet/CinC 2012 ICU stays: 36 variables "
                     "at irregular times over 48 h, 5 statics, in-hospital death",
                     "physionet2012_raw_abc.tar.gz", "12,000 stays x 36 variables",
                     url="https://physionet.org/files/challenge-2012/1.0.0/",
                     files=("set-a.tar.gz", "set-b.tar.gz", "set-c.tar.gz", "Outcomes-a.txt",
                            "Outcomes-b.txt", "Outcomes-c.txt"), checksums="SHA256SUMS.txt",
                     licence="ODC-By 1.0",
                     citation="Silva et al., CinC 2012; Goldberger et al., PhysioNet 2000",
                     protocol="physionet2012"))
register(DatasetSpec("records-csv", "records", "any long table: records.csv (stay_id,time,"
                     "variable,value; empty time: a static) and labels.csv (stay_id,label)",
                     None, "your files", protocol="long-table"))
