"""The PhysioNet 2012 reader of the ``records`` kind, and what every records reader shares.

A reader returns flat arrays (see :func:`read_physionet`) and a :class:`RecordsReport`
that accounts for every line read: each one is an observation kept, a static value kept,
or set aside for a reason the report names and counts.

PhysioNet 2012 (``protocol="physionet2012"``): ``set-{a,b,c}/<RecordID>.txt`` files of
``Time,Parameter,Value`` lines (``HH:MM`` since admission) and ``Outcomes-{a,b,c}.txt``
(the label is ``In-hospital_death``), read from a ``.tar.gz`` holding them (under any top
folder) or from a folder holding ``set-x/`` folders or the official ``set-x.tar.gz``
downloads beside the outcome files. The 36 time-series parameters of the challenge are
the variables; Age, Gender, Height, ICUType and Weight at ``00:00`` are the statics (the
first valid value of each); RecordID lines identify the stay. Cleaning, in this order:

- a line with an empty parameter name (about 2,400 in set-c) or an unknown one: set aside;
- a static descriptor after 00:00, or a second valid one at 00:00: set aside. Weight is
  also charted through the stay (about 375,000 lines); with the literature's 36 variables
  it is a static only, so those lines are counted and left out;
- ``-1`` (the challenge's "missing" marker; no variable can take it) or no value: missing;
- the rules of :data:`RULES` (negative values, impossible zeros, pH written x100,
  implausible ranges): dropped or changed, counted per rule and variable.

Two observations of one variable at one time (about 11,600, mostly MAP and Urine, with
different values) are both kept: a set may hold a variable twice, and averaging two
urine outputs would halve them.

The long table of a user's own extract is read by :mod:`timetok.core.data.records_long`.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from timetok.core.errors import DataError
from timetok.core.utils import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

SERIES = sorted([
    "ALP", "ALT", "AST", "Albumin", "BUN", "Bilirubin", "Cholesterol", "Creatinine", "DiasABP",
    "FiO2", "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "MAP", "MechVent", "Mg",
    "NIDiasABP", "NIMAP", "NISysABP", "Na", "PaCO2", "PaO2", "Platelets", "RespRate", "SaO2",
    "SysABP", "Temp", "TroponinI", "TroponinT", "Urine", "WBC", "pH",
])
STATICS = ["Age", "Gender", "Height", "ICUType", "Weight"]
IDENTIFIER = "RecordID"
RECORD_HEADER = "Time,Parameter,Value"
LABEL = "In-hospital_death"
MISSING_MARKER = -1.0
# Zero is impossible for these (a disconnected line or probe); labs may round to 0, Urine
# may be 0, so they keep it.
ZERO_IMPOSSIBLE = ["DiasABP", "HR", "Height", "MAP", "NIDiasABP", "NIMAP", "NISysABP", "PaCO2",
                   "PaO2", "SaO2", "SysABP", "Temp", "Weight", "pH"]
RANGES = {"pH": (6.5, 8.0), "Temp": (25.0, 45.0), "Height": (100.0, 250.0),
          "Weight": (20.0, 500.0)}  # inclusive, in the challenge's units
PH_X100 = (650.0, 800.0)  # pH written without its decimal point: 735 for 7.35
RULES = {
    "negative": "dropped: a negative value other than the -1 marker; none can be < 0",
    "zero": f"dropped: 0 for {', '.join(ZERO_IMPOSSIBLE)}",
    "pH x100": f"changed: pH {PH_X100[0]:g}-{PH_X100[1]:g} divided by 100",
    "range": "dropped: outside pH 6.5-8, Temp 25-45 C, Height 100-250 cm, Weight 20-500 kg",
}
LONG_COLUMNS = ["stay_id", "time", "variable", "value"]
_RECORD = re.compile(r"(?:^|/)set-([a-z])/([^/]+)\.txt$")
_OUTCOMES = re.compile(r"(?:^|/)Outcomes-([a-z])\.txt$")
_TIME = re.compile(r"(\d+):([0-5]\d)")
FIX = "fix or remove the line"


@dataclass
class RecordsReport:
    """What became of every line read: counts a person can check against the source."""

    source: str
    stays_read: int = 0
    stays_kept: int = 0
    no_series: list[str] = field(default_factory=list)  # ids of stays dropped: no series left
    lines_read: int = 0  # data lines read (headers excluded)
    observations: int = 0  # time-series observations kept
    statics: int = 0  # static values kept
    identifiers: int = 0  # RecordID lines
    empty_parameter: dict[str, int] = field(default_factory=dict)  # per set or file
    unknown_parameter: dict[str, int] = field(default_factory=dict)  # per name
    missing: dict[str, int] = field(default_factory=dict)  # -1 markers or empty values
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # rule -> variable -> n
    changed: dict[str, dict[str, int]] = field(default_factory=dict)  # rule -> variable -> n
    statics_set_aside: dict[str, int] = field(default_factory=dict)  # after the first
    duplicates: dict[str, int] = field(default_factory=dict)  # same time and variable, kept
    outcomes_without_record: dict[str, int] = field(default_factory=dict)  # per outcomes file

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RecordsReport:
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        """Write the report as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> RecordsReport:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise DataError(f"cannot read the records report {path}: {err}; load the records "
                            "again to rewrite it") from None

    def lines(self) -> list[str]:
        """The report for a person, one fact a line."""
        aside = self.lines_read - self.observations - self.statics - self.identifiers
        ids = f", {self.identifiers:,} record ids" if self.identifiers else ""
        lines = [f"{self.stays_read:,} stays read, {self.stays_kept:,} kept",
                 f"{self.lines_read:,} lines: {self.observations:,} observations, "
                 f"{self.statics:,} static values{ids}, {aside:,} set aside"
                 + (" (below)" if aside else "")]
        if self.no_series:
            shown = ", ".join(self.no_series[:12]) + (", ..." if len(self.no_series) > 12 else "")
            lines.append(f"{len(self.no_series):,} stays dropped with no time-series "
                         f"observation: {shown}")
        for counts, what in [
            (self.empty_parameter, "lines with an empty parameter name, set aside"),
            (self.unknown_parameter, "lines with an unknown parameter, set aside"),
            (self.missing, "missing values (-1 markers or empty), set aside"),
            (self.statics_set_aside, "static descriptors after the first at 00:00, set aside"),
            (self.duplicates, "repeats of a variable at one time, all kept"),
            (self.outcomes_without_record, "outcomes of records not read, ignored"),
        ]:
            if counts:
                lines.append(f"{sum(counts.values()):,} {what}: {_counts(counts)}")
        for action, rules in (("dropped", self.dropped), ("changed", self.changed)):
            for rule, counts in rules.items():
                lines.append(f"{sum(counts.values()):,} {action} by rule {rule!r} "
                             f"({RULES.get(rule, '').partition(': ')[2]}): {_counts(counts)}")
        return lines


def _counts(counts: dict[str, int], top: int = 6) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{name or '(empty)'} {n:,}" for name, n in ranked[:top])
    return text + (", ..." if len(ranked) > top else "")


def tally(names: list[str], index: np.ndarray) -> dict[str, int]:
    """``{name: count}`` of the non-zero counts of ``index [K]`` (indices into ``names``)."""
    counts = np.bincount(index, minlength=len(names))
    return {names[i]: int(counts[i]) for i in np.flatnonzero(counts)}


@dataclass
class Rows:
    """Observations of one kind before assembly: ``stay, var [K]`` int64, ``time, value
    [K]`` float64 (time in hours)."""

    stay: np.ndarray
    time: np.ndarray
    var: np.ndarray
    value: np.ndarray

    def take(self, keep: np.ndarray) -> Rows:
        return Rows(self.stay[keep], self.time[keep], self.var[keep], self.value[keep])


# --- shared assembly -------------------------------------------------------------------


def _by_time(rows: Rows) -> Rows:
    """The rows sorted by stay, then time; rows at one time keep their order in the file."""
    step = np.diff(rows.stay)
    if np.all((step > 0) | ((step == 0) & (np.diff(rows.time) >= 0))):
        return rows  # the usual case: files list their lines in time order
    return rows.take(np.lexsort((rows.time, rows.stay)))


def _repeats(rows: Rows, variables: list[str]) -> dict[str, int]:
    """``{variable: count}`` of the rows (sorted by stay and time) whose stay, time and
    variable an earlier row already has."""
    if not len(rows.stay):
        return {}
    group = np.cumsum(np.r_[True, (np.diff(rows.stay) != 0) | (np.diff(rows.time) != 0)]) - 1
    key = np.sort(group * len(variables) + rows.var)
    return tally(variables, key[1:][key[1:] == key[:-1]] % len(variables))


def assemble(ids: np.ndarray, sources: np.ndarray, labels: np.ndarray, series: Rows,
              statics: Rows, names: tuple[list[str], list[str]],
              report: RecordsReport) -> dict[str, np.ndarray]:
    """The flat arrays of the stays that keep a time-series observation (see :func:`read`);
    fills the report's stay, static and repeat counts."""
    variables, static_names = names
    n, p = len(ids), len(static_names)
    key = statics.stay * p + statics.var
    first = np.unique(key, return_index=True)[1]
    repeated = np.ones(len(key), dtype=bool)
    repeated[first] = False
    for name, count in tally(static_names, statics.var[repeated]).items():
        report.statics_set_aside[name] = report.statics_set_aside.get(name, 0) + count
    matrix = np.full((n, p), np.nan, dtype=np.float32)
    matrix[statics.stay[first], statics.var[first]] = statics.value[first]
    report.statics = len(first)

    series = _by_time(series)
    report.duplicates = _repeats(series, variables)
    counts = np.bincount(series.stay, minlength=n)
    kept = counts > 0
    if not kept.any():
        raise DataError(f"{report.source}: none of its {n} stays has a time-series observation "
                        "left; pass records that hold observations")
    report.stays_read, report.stays_kept = n, int(kept.sum())
    report.no_series = ids[~kept].tolist()
    report.observations = len(series.stay)
    return {
        "ids": ids[kept], "sources": sources[kept], "labels": labels[kept].astype(np.int64),
        "statics": matrix[kept], "offsets": np.concatenate([[0], np.cumsum(counts[kept])]),
        "times": series.time.astype(np.float32), "variables": series.var.astype(np.int32),
        "values": series.value.astype(np.float32),
        "variable_names": np.array(variables, dtype=str),
        "static_names": np.array(static_names, dtype=str),
    }


# --- PhysioNet 2012 --------------------------------------------------------------------


def _archive_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(member name, bytes)`` of each file of a tar archive, read as a stream."""
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                if member.isfile():
                    yield member.name, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path}: not a readable .tar.gz archive ({err}); download it "
                        "again") from None


def _physionet_files(path: Path, sets: tuple[str, ...]) -> Iterator[tuple[str, bytes]]:
    """The files of an archive, or of a folder in the official layout (``set-x/`` or
    ``set-x.tar.gz`` beside ``Outcomes-x.txt``)."""
    if not path.is_dir():
        yield from _archive_members(path)
        return
    for s in sets:
        folder, archive = path / f"set-{s}", path / f"set-{s}.tar.gz"
        if folder.is_dir():
            for file in sorted(folder.glob("*.txt")):
                yield f"set-{s}/{file.name}", file.read_bytes()
        elif archive.is_file():
            yield from _archive_members(archive)
        else:
            raise DataError(f"{path} holds neither set-{s}/ nor set-{s}.tar.gz; pass the folder "
                            "of the official PhysioNet 2012 files, or choose other sets")
        outcomes = path / f"Outcomes-{s}.txt"
        if outcomes.is_file():
            yield outcomes.name, outcomes.read_bytes()


def _record_body(name: str, data: bytes) -> bytes:
    """The lines after the header, each ending in a newline; refuses another header."""
    head, _, body = data.partition(b"\n")
    header = head.decode("utf-8", "replace").strip().lstrip("\ufeff")
    if header != RECORD_HEADER:
        raise DataError(f"{name}: header {header[:60]!r}, expected {RECORD_HEADER!r}; pass "
                        "the official PhysioNet 2012 record files")
    body = body.rstrip()
    return body + b"\n" if body else b""


def _scan(name: str, body: bytes) -> None:
    """Raise a DataError on the first malformed line of one record file (the slow path)."""
    for number, raw in enumerate(body.decode("utf-8", "replace").splitlines(), start=2):
        cells = raw.split(",")
        if len(cells) != 3:
            raise DataError(f"{name}, line {number}: {len(cells)} fields, expected 3 "
                            f"({RECORD_HEADER}); {FIX}")
        time, parameter, value = (cell.strip() for cell in cells)
        if not _TIME.fullmatch(time):
            raise DataError(f"{name}, line {number}: time {time!r} is not HH:MM; {FIX}")
        try:
            ok = value == "" or np.isfinite(float(value))
        except ValueError:
            ok = False
        if not ok:
            raise DataError(f"{name}, line {number}: non-numeric value {value!r} for "
                            f"{parameter or 'an empty parameter'}; {FIX}")


def _locate(names: list[str], bodies: list[bytes], starts: np.ndarray | None = None,
            row: int | None = None) -> NoReturn:
    """Raise the DataError of the first malformed line: in the file holding line ``row`` of
    the joined bodies (``starts [F + 1]``: each file's first line), else in any file."""
    files = (range(len(bodies)) if row is None else
             [int(np.searchsorted(starts, row, side="right")) - 1])
    for i in files:
        _scan(names[i], bodies[i])
    raise DataError(f"cannot parse the record files ({names[files[0]]} ...); check that they "
                    f"are {RECORD_HEADER} CSV")


def _parse_lines(names: list[str], bodies: list[bytes]) -> pd.DataFrame:
    """One frame of every record line (time and parameter categorical, value float64, NaN
    when empty); a malformed line raises a DataError naming its file and line."""
    import pandas as pd

    counts = [body.count(b"\n") for body in bodies]
    if not sum(counts):
        raise DataError(f"the record files ({names[0]} ...) hold no line after their header; "
                        "pass the PhysioNet 2012 record files")
    for name, body, count in zip(names, bodies, counts, strict=True):
        if body.count(b",") != 2 * count:  # a line of other than three fields
            _scan(name, body)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.BytesIO(b"".join(bodies)), header=None,
                                names=["time", "parameter", "value"], index_col=False,
                                dtype={"time": "category", "parameter": "category",
                                       "value": "float64"},
                                keep_default_na=False, na_values=[""], skip_blank_lines=False)
    except (ValueError, pd.errors.ParserWarning):
        _locate(names, bodies)
    times = frame["time"].cat
    wrong = [i for i, t in enumerate(times.categories) if not _TIME.fullmatch(str(t).strip())]
    bad = (~np.isfinite(frame["value"].fillna(0).to_numpy())
           | times.codes.isin([*wrong, -1]).to_numpy())
    if bad.any():
        _locate(names, bodies, np.cumsum([0, *counts]), int(np.argmax(bad)))
    return frame


def _minutes(frame: pd.DataFrame) -> np.ndarray:
    """``[L]`` int64 minutes since admission of each line's ``HH:MM``."""
    hours, minutes = zip(*(_TIME.fullmatch(str(t).strip()).groups()
                           for t in frame["time"].cat.categories), strict=True)
    table = np.array(hours, dtype=np.int64) * 60 + np.array(minutes, dtype=np.int64)
    return table[frame["time"].cat.codes.to_numpy()]


def _outcomes(name: str, data: bytes) -> dict[str, int]:
    """``{RecordID: In-hospital_death}`` of one outcomes file."""
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{name}: not a readable outcomes CSV ({err}); pass the official "
                        "file") from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if IDENTIFIER not in frame or LABEL not in frame:
        raise DataError(f"{name}: header {','.join(frame.columns)!r} lacks {IDENTIFIER} or "
                        f"{LABEL}; pass the official outcomes file")
    ids, labels = frame[IDENTIFIER].str.strip(), frame[LABEL].str.strip()
    if (bad := np.flatnonzero(~labels.isin(["0", "1"]).to_numpy())).size:
        raise DataError(f"{name}, line {bad[0] + 2}: {LABEL} {labels.iloc[bad[0]]!r} is not 0 "
                        f"or 1; {FIX}")
    if (twice := np.flatnonzero(ids.duplicated().to_numpy())).size:
        raise DataError(f"{name}, line {twice[0] + 2}: record {ids.iloc[twice[0]]} appears "
                        "twice; keep one line per record")
    return dict(zip(ids.tolist(), labels.astype(int).tolist(), strict=True))


def _collect(path: Path, sets: tuple[str, ...]) -> tuple[list[tuple[str, str, str, bytes]],
                                                         dict[str, tuple[str, dict]]]:
    """Record files ``(set, record id, name, body)`` sorted by set and id, and the outcomes
    of each set ``{set: (file name, {id: label})}``."""
    records, outcomes = [], {}
    for name, data in _physionet_files(path, sets):
        if (match := _RECORD.search(name)) and match[1] in sets:
            records.append((match[1], match[2], name, _record_body(name, data)))
        elif (match := _OUTCOMES.search(name)) and match[1] in sets:
            outcomes[match[1]] = (name.rsplit("/", 1)[-1], _outcomes(name, data))
    for s in sets:
        if not any(r[0] == s for r in records):
            raise DataError(f"{path} holds no set-{s}/ record files; pass the PhysioNet 2012 "
                            "archive or folder, or choose other sets")
        if s not in outcomes:
            raise DataError(f"{path} holds no Outcomes-{s}.txt; add the official outcomes "
                            "file beside the records")
    records.sort(key=lambda r: (r[0], r[1]))
    return records, outcomes


def _labels(records: list, outcomes: dict, report: RecordsReport) -> np.ndarray:
    """``[N]`` labels of the records; a record without an outcome is an error."""
    labels = np.empty(len(records), dtype=np.int64)
    for i, (s, record, name, _) in enumerate(records):
        file, table = outcomes[s]
        if record not in table:
            raise DataError(f"{file} has no outcome for record {record} ({name}); pass the "
                            "official outcomes file of that set")
        labels[i] = table[record]
    for s, (file, table) in outcomes.items():
        if extra := len(set(table) - {r[1] for r in records if r[0] == s}):
            report.outcomes_without_record[file] = extra
    return labels


def _apply_rules(name: np.ndarray, value: np.ndarray, report: RecordsReport) -> np.ndarray:
    """Count missing values (the -1 marker, or empty) and apply :data:`RULES` to ``value
    [K]`` in place; ``name [K]`` indexes ``SERIES + STATICS``. Returns ``[K]`` bool: kept."""
    names = SERIES + STATICS
    missing = (value == MISSING_MARKER) | np.isnan(value)
    report.missing = tally(names, name[missing])
    keep = ~missing
    zero = np.isin(names, ZERO_IMPOSSIBLE)[name] & (value == 0)
    for rule, hit in (("negative", keep & (value < 0)), ("zero", keep & zero)):
        if counts := tally(names, name[hit]):
            report.dropped[rule] = counts
        keep &= ~hit
    scaled = keep & (name == names.index("pH")) & (value >= PH_X100[0]) & (value <= PH_X100[1])
    value[scaled] /= 100
    if counts := tally(names, name[scaled]):
        report.changed["pH x100"] = counts
    low, high = np.full(len(names), -np.inf), np.full(len(names), np.inf)
    for variable, (lo, hi) in RANGES.items():
        low[names.index(variable)], high[names.index(variable)] = lo, hi
    outside = keep & ((value < low[name]) | (value > high[name]))
    if counts := tally(names, name[outside]):
        report.dropped["range"] = counts
    return keep & ~outside


def _names(frame: pd.DataFrame, set_of_line: np.ndarray, sets: tuple[str, ...],
           report: RecordsReport) -> np.ndarray:
    """``[L]`` index into ``SERIES + STATICS`` of each line's parameter, -1 for the lines set
    aside (empty, unknown, RecordID), which the report counts."""
    names = SERIES + STATICS
    categories = [str(c).strip() for c in frame["parameter"].cat.categories]
    codes = frame["parameter"].cat.codes.to_numpy()  # -1: empty
    name = np.array([names.index(c) if c in names else -1 for c in categories] + [-1])[codes]
    empty = codes == -1
    report.empty_parameter = tally([f"set-{s}" for s in sets], set_of_line[empty])
    identifier = np.isin(codes, [i for i, c in enumerate(categories) if c == IDENTIFIER])
    report.identifiers = int(identifier.sum())
    report.unknown_parameter = tally(categories, codes[(name == -1) & ~empty & ~identifier])
    return name


def read_physionet(path: Path, sets: tuple[str, ...]) -> tuple[dict, RecordsReport]:
    """The stays of ``sets`` (``("a", "b", "c")``) in an archive or folder, as flat arrays
    over N stays (those with a time-series observation), M observations, V variables and
    P statics:

    ``ids, sources [N]`` str; ``labels [N]`` int64; ``statics [N, P]`` float32 (NaN:
    missing); ``offsets [N + 1]`` int64 (stay i: observations ``offsets[i]:offsets[i + 1]``,
    sorted by time); ``times [M]`` float32 hours since admission; ``variables [M]`` int32
    (index into ``variable_names [V]``); ``values [M]`` float32 as recorded;
    ``static_names [P]``. The report accounts for every line.
    """
    report = RecordsReport(str(path))
    records, outcomes = _collect(path, sets)
    labels = _labels(records, outcomes, report)
    frame = _parse_lines([r[2] for r in records], [r[3] for r in records])
    report.lines_read = len(frame)
    stay = np.repeat(np.arange(len(records)), [r[3].count(b"\n") for r in records])
    set_of_stay = np.array([sets.index(r[0]) for r in records], dtype=np.int64)
    name = _names(frame, set_of_stay[stay], sets, report)
    minutes = _minutes(frame)
    later = (name >= len(SERIES)) & (minutes > 0)  # a static descriptor after admission
    report.statics_set_aside = tally(SERIES + STATICS, name[later])
    lines = np.flatnonzero((name >= 0) & ~later)
    values = frame["value"].to_numpy(dtype=np.float64, copy=True)
    value = values[lines]
    kept = _apply_rules(name[lines], value, report)
    values[lines] = value  # with the changed values
    lines = lines[kept]
    hours = minutes / 60

    def rows(index: np.ndarray, first: int) -> Rows:
        return Rows(stay[index], hours[index], name[index] - first, values[index])

    is_static = name[lines] >= len(SERIES)
    series, statics = rows(lines[~is_static], 0), rows(lines[is_static], len(SERIES))
    ids = np.array([r[1] for r in records], dtype=str)
    sources = np.array([f"set-{r[0]}" for r in records], dtype=str)
    arrays = assemble(ids, sources, labels, series, statics, (SERIES, STATICS), report)
    return arrays, report
