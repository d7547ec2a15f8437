"""The ``series`` kind: one multivariate series in a CSV, split by rows, cut into windows.

Every cell is checked on reading; the scaler is fitted on the training rows only. The
registered series datasets (ETT, and ``custom`` for any CSV) are defined here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
ETT_BASE_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/"
ETT_LICENCE, ETT_CITATION = "CC BY-ND 4.0", "Zhou et al., Informer, AAAI 2021"

# (train, val, test) row borders: each returns [start, end) for every split; the val and
# test splits start `context` rows early so that their first window sees real history.
Borders = Callable[[int, int], list[tuple[int, int]]]


def ett_borders(rows_per_day: int) -> Borders:
    """The Informer borders: 12 / 4 / 4 months of 30 days."""
    month = 30 * rows_per_day

    def borders(n_rows: int, context: int) -> list[tuple[int, int]]:
        ends = [12 * month, 16 * month, 20 * month]
        if n_rows < ends[-1]:
            raise DataError(
                f"an ETT file needs at least {ends[-1]} rows, this one has {n_rows}; "
                "use the official, unmodified file (timetok data fetch NAME)"
            )
        return [(0, ends[0]), (ends[0] - context, ends[1]), (ends[1] - context, ends[2])]

    return borders


def ratio_borders(train: float = 0.7, test: float = 0.2) -> Borders:
    """The 70/10/20 split used for CSVs without a published protocol."""

    def borders(n_rows: int, context: int) -> list[tuple[int, int]]:
        n_train = int(n_rows * train)
        n_test = int(n_rows * test)
        n_val = n_rows - n_train - n_test
        return [
            (0, n_train),
            (n_train - context, n_train + n_val),
            (n_rows - n_test - context, n_rows),
        ]

    return borders


@dataclass
class Series:
    """A multivariate series read from a CSV: ``values`` is ``[rows, channels]`` float32."""

    values: np.ndarray
    columns: list[str]
    path: Path


def _date_column(frame) -> str | None:
    import pandas as pd

    for name in frame.columns:
        if str(name).strip().lower() in {"date", "datetime", "time", "timestamp"}:
            return name
    first = frame.columns[0]
    if frame[first].dtype == object:
        parsed = pd.to_datetime(frame[first].head(20), errors="coerce", format="mixed")
        if parsed.notna().all():
            return first
    return None


def _first_bad_cell(raw, path: Path) -> DataError:
    """Locate the first empty, NaN or non-numeric cell; line numbers count the header."""
    import pandas as pd

    for name in raw.columns:
        text = raw[name].astype(str).str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        missing = text.str.lower().isin({"", "nan", "na", "null", "none"})
        if missing.any():
            line = int(np.flatnonzero(missing.to_numpy())[0]) + 2
            return DataError(
                f"{path.name}: empty or NaN value in column {name!r} at line {line}; "
                "fill or drop the missing values before training"
            )
        bad = numbers.isna() | ~np.isfinite(numbers.fillna(0.0))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            return DataError(
                f"{path.name}: non-numeric value {text.iloc[row]!r} in column {name!r} "
                f"at line {row + 2}; fix the cell or drop the row"
            )
    return DataError(f"{path.name}: could not read the numeric columns; check the file format")


def _refuse_repeated_names(path: Path) -> None:
    """Refuse a header that names one column twice: pandas would read the second as
    ``NAME.1``, a channel the user never named."""
    import pandas as pd

    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
    names = [str(name) for name in header]
    for column, name in enumerate(names):
        if name in names[:column]:
            raise DataError(f"{path.name}: columns {names.index(name) + 1} and {column + 1} "
                            f"are both named {name!r}; rename one so that each column has "
                            "its own name")


def read_csv(path: str | os.PathLike) -> Series:
    """Read a CSV with an optional date column and numeric columns; every cell is checked."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a CSV file; pass the file")
    if not path.is_file():
        raise DataError(f"data file not found: {path}; check the path")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path.name}: not a readable CSV ({reason}); check the file") from None
    if frame.shape[1] == 1:  # one column: perhaps another delimiter
        header = str(frame.columns[0])
        for delimiter, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
            if delimiter in header:
                raise DataError(f"{path.name} is separated by {name}, timetok reads "
                                "comma-separated files; save it with commas")
    if frame.empty or frame.shape[1] == 0:
        raise DataError(f"{path.name}: no rows; the CSV needs a header and at least one row")
    _refuse_repeated_names(path)
    date = _date_column(frame)
    raw = frame.drop(columns=[date]) if date is not None else frame
    if raw.shape[1] == 0:
        raise DataError(f"{path.name}: no numeric columns besides {date!r}; add the series")
    try:
        values = raw.to_numpy(dtype=np.float64)
    except ValueError:
        raise _first_bad_cell(raw, path) from None
    if not np.isfinite(values).all():
        raise _first_bad_cell(raw, path)
    too_large = np.abs(values) > np.finfo(np.float32).max
    if too_large.any():
        row, col = (int(i[0]) for i in np.nonzero(too_large))
        raise DataError(
            f"{path.name}: value {raw.iat[row, col]!r} in column {raw.columns[col]!r} at line "
            f"{row + 2} is beyond float32's range (+-3.4e38); rescale the column"
        )
    return Series(values.astype(np.float32), [str(c) for c in raw.columns], path)


@dataclass
class SplitData:
    """A dataset cut into train/val/test rows and standardised with the train scaler."""

    name: str
    path: Path
    columns: list[str]
    scaler: Scaler
    splits: dict[str, np.ndarray]  # split -> [rows, channels], standardised
    borders: dict[str, tuple[int, int]]
    n_rows: int

    @property
    def n_channels(self) -> int:
        return len(self.columns)

    def windows(
        self,
        split: str,
        context: int,
        target: int = 0,
        stride: int = 1,
        channel_independent: bool = False,
    ):
        from timetok.core.data.windows import WindowDataset

        return WindowDataset(
            self.splits[split], context, target, stride, channel_independent,
            where=f"split {split!r} of {self.path.name}",
        )


def load_splits(
    name: str,
    context: int,
    *,
    data_dir: str | os.PathLike | None = None,
    data_path: str | os.PathLike | None = None,
) -> SplitData:
    """Read a registered dataset, split it by its protocol, scale with train statistics."""
    spec = get_spec(name)
    if spec.kind != "series":
        raise DataError(f"dataset {spec.name!r} holds {spec.kind}, not one series; pick a "
                        "series dataset (timetok data list)")
    path = resolve_path(name, data_dir, data_path)
    series = read_csv(path)
    n_rows = len(series.values)
    borders = spec.protocol(n_rows, context)
    if min(start for start, _ in borders) < 0:
        raise DataError(
            f"{path.name} has {n_rows} rows, too few for a context of {context} in every split; "
            "use a smaller context_points or a longer series"
        )
    start, end = borders[0]
    scaler = Scaler.fit(series.values[start:end], series.columns)
    scaled = scaler.transform(series.values)
    return SplitData(
        name=spec.name,
        path=path,
        columns=series.columns,
        scaler=scaler,
        splits={s: scaled[a:b] for s, (a, b) in zip(SPLITS, borders, strict=True)},
        borders=dict(zip(SPLITS, borders, strict=True)),
        n_rows=n_rows,
    )


def describe(spec: DatasetSpec, path: Path, options: dict) -> dict:
    """Rows, channels, split borders and window counts (``context_points``,
    ``target_points`` and ``stride`` from ``options``)."""
    context = options.get("context_points", 512)
    target = options.get("target_points", 96)
    stride = options.get("stride", 1)
    data = load_splits(spec.name, context, data_path=path)
    report = {
        "dataset": data.name, "kind": spec.kind, "path": str(data.path), "rows": data.n_rows,
        "channels": data.n_channels, "columns": data.columns, "context_points": context,
        "target_points": target, "stride": stride, "licence": spec.licence,
        "citation": spec.citation, "splits": {},
    }
    for split in SPLITS:
        start, end = data.borders[split]
        windows = data.windows(split, context, target, stride)
        report["splits"][split] = {"start": start, "end": end, "rows": end - start,
                                   "windows": len(windows)}
    return report


def render(report: dict) -> str:
    lines = [f"{report['dataset']} ({report['kind']}): {report['rows']} rows x "
             f"{report['channels']} channels ({', '.join(report['columns'])}) from "
             f"{report['path']}",
             f"windows of {report['context_points']} + {report['target_points']}, stride "
             f"{report['stride']}:"]
    lines += [f"  {split:<5} rows [{row['start']}, {row['end']})  {row['windows']:>7} windows"
              for split, row in report["splits"].items()]
    return "\n".join(lines + credit(report))


register_kind(DataKind("series", "one multivariate series, split by rows into windows",
                       describe, render))
for _name, _rows_per_day, _digest in [
    ("ETTh1", 24, "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"),
    ("ETTh2", 24, "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b"),
    ("ETTm1", 96, "6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e"),
    ("ETTm2", 96, "db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd"),
]:
    _hourly = _rows_per_day == 24
    register(DatasetSpec(
        _name.lower(), "series",
        f"Electricity Transformer Temperature, {'hourly' if _hourly else '15-minute'}, "
        f"station {_name[-1]}",
        f"{_name}.csv", f"{17_420 if _hourly else 69_680:,} rows x 7 channels",
        ETT_BASE_URL + f"{_name}.csv", f"sha256:{_digest}", ETT_LICENCE, ETT_CITATION,
        ett_borders(_rows_per_day),
    ))
register(DatasetSpec("custom", "series",
                     "any CSV with a date column and numeric columns (70/10/20 split)",
                     None, "your file", protocol=ratio_borders()))
