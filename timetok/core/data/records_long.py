"""The long-table reader of the ``records`` kind, for a user's own extract.

``records.csv`` with the header ``stay_id,time,variable,value`` (time in hours since
admission, never negative) and ``labels.csv`` with ``stay_id,label`` (a whole number >= 0)
in the same folder. A row with an empty ``time`` is a static: the variables named on such
rows are the statics, the others the series. An empty value is missing; no other cleaning
is done on a user's own extract. The arrays returned are those of
:func:`timetok.core.data.records_formats.read_physionet`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from timetok.core.data.records_formats import (
    FIX,
    LONG_COLUMNS,
    RecordsReport,
    Rows,
    assemble,
    tally,
)
from timetok.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


def long_table_files(path: Path) -> tuple[Path, Path]:
    """``records.csv`` (``path`` or in the folder ``path``) and ``labels.csv`` beside it."""
    table = path / "records.csv" if path.is_dir() else path
    labels = table.parent / "labels.csv"
    for file, what in ((table, "stay_id,time,variable,value"), (labels, "stay_id,label")):
        if not file.is_file():
            raise DataError(f"{file} not found; a long table is records.csv ({LONG_COLUMNS[0]}"
                            f",...) with labels.csv beside it: write {file.name} with the "
                            f"header {what}")
    return table, labels


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """Every cell as text (empty: NaN); refuses a file without one of ``columns``."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({err}); write it with the header "
                        f"{','.join(columns)}") from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    for column in columns:
        if column not in frame:
            raise DataError(f"{path}: no column {column!r} (found {','.join(frame.columns)}); "
                            f"write the header {','.join(columns)}")
    return frame


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """``[L]`` float64 of a text column (NaN where empty); a non-number names its line."""
    import pandas as pd

    text = frame[column]
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(numbers) & text.notna().to_numpy())
    if bad.size:
        raise DataError(f"{path}, line {bad[0] + 2}: non-numeric {column} "
                        f"{text.iloc[bad[0]]!r}; {FIX}")
    return numbers


def _long_labels(path: Path, ids: np.ndarray, table: Path) -> np.ndarray:
    """``[N]`` labels of the stays ``ids`` (sorted), from ``labels.csv``."""
    frame = _read_csv(path, ["stay_id", "label"])
    stays = frame["stay_id"].fillna("").str.strip().to_numpy(dtype=str)
    labels = _numbers(frame, "label", path)
    if (bad := np.flatnonzero(np.isnan(labels) | (labels < 0) | (labels % 1 != 0))).size:
        cell = frame["label"].fillna("").iloc[bad[0]]
        raise DataError(f"{path}, line {bad[0] + 2}: label {cell!r} is not a whole number "
                        f">= 0; {FIX}")
    if (unknown := np.flatnonzero(~np.isin(stays, ids))).size:
        raise DataError(f"{path}, line {unknown[0] + 2}: stay {str(stays[unknown[0]])!r} is "
                        f"not in {table.name}; remove the line or add the stay's records")
    once = np.zeros(len(stays), dtype=bool)
    once[np.unique(stays, return_index=True)[1]] = True
    if (twice := np.flatnonzero(~once)).size:
        raise DataError(f"{path}, line {twice[0] + 2}: stay {str(stays[twice[0]])!r} appears "
                        "twice; keep one label per stay")
    if (unlabelled := np.setdiff1d(ids, stays)).size:
        raise DataError(f"stay {str(unlabelled[0])!r} of {table.name} has no label in "
                        f"{path.name}; add a stay_id,label line")
    order = np.argsort(stays)
    return labels[order][np.searchsorted(stays[order], ids)].astype(np.int64)


def read_long_table(path: Path) -> tuple[dict, RecordsReport]:
    """The stays of a ``records.csv`` long table and its ``labels.csv``, as the arrays of
    :func:`timetok.core.data.records_formats.read_physionet`."""
    table, label_file = long_table_files(path)
    frame = _read_csv(table, LONG_COLUMNS)
    report = RecordsReport(str(table), lines_read=len(frame))
    stays = frame["stay_id"].fillna("").str.strip().to_numpy(dtype=str)
    if (blank := np.flatnonzero(stays == "")).size:
        raise DataError(f"{table}, line {blank[0] + 2}: empty stay_id; {FIX}")
    ids, stay = np.unique(stays, return_inverse=True)
    labels = _long_labels(label_file, ids, table)
    time, value = _numbers(frame, "time", table), _numbers(frame, "value", table)
    if (before := np.flatnonzero(time < 0)).size:
        raise DataError(f"{table}, line {before[0] + 2}: time {frame['time'].iloc[before[0]]!r} "
                        "is before admission; times are hours from admission (0): shift the "
                        "stay's times or remove the line")
    variable = frame["variable"].fillna("").str.strip().to_numpy(dtype=str)
    empty = variable == ""
    if empty.any():
        report.empty_parameter = {table.name: int(empty.sum())}
    vocabulary, index = np.unique(variable, return_inverse=True)
    missing = ~empty & np.isnan(value)
    report.missing = tally(vocabulary.tolist(), index[missing])
    used = ~empty & ~missing
    parts, names = [], []
    for selected in (used & ~np.isnan(time), used & np.isnan(time)):  # series, then statics
        part_names, part_index = np.unique(variable[selected], return_inverse=True)
        parts.append(Rows(stay[selected], time[selected], part_index.astype(np.int64),
                           value[selected]))
        names.append(part_names.tolist())
    sources = np.full(len(ids), table.name)
    arrays = assemble(ids, sources, labels, parts[0], parts[1], (names[0], names[1]), report)
    return arrays, report
