"""Stays given as a long table (a pandas DataFrame, a numpy array or a torch tensor) ->
:class:`~timetok.core.data.records.Records` in a model's variable vocabulary.

A long table has one row per observation, as PhysioNet 2012 lists a stay
(``Time,Parameter,Value``) and as ``records.csv`` holds many: the stay, the time in hours
since admission, the variable and its value on its recorded scale. A row without a time
is a static descriptor (Age, Gender, ...). Stays come back in the order they first appear.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from timetok.core.data.records import Records
from timetok.core.data.records_formats import RecordsReport, Rows, assemble
from timetok.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from timetok.setvae.artifacts import Vocabulary

COLUMNS = ("stay_id", "time", "variable", "value")


def _names(names: list[str], top: int = 8) -> str:
    return ", ".join(names[:top]) + (", ..." if len(names) > top else "")


def _build(stays: np.ndarray, time: np.ndarray, var: np.ndarray, static: np.ndarray,
           value: np.ndarray, vocabulary: Vocabulary) -> Records:
    """Rows ``[K]`` (stay key, hours, index into the variables or the statics, whether it
    is a static, value) -> the stays, in the order of their first row."""
    keep = ~np.isnan(value)  # an empty value is a missing observation
    keys, first, stay = np.unique(stays, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # stays in the order they first appear
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    stay = rank[stay.reshape(-1)]
    ids = keys[order].astype(str)
    series, statics = keep & ~static, keep & static
    if empty := sorted(set(range(len(ids))) - set(stay[series].tolist())):
        raise DataError(f"stay {ids[empty[0]]!r} has no time-series observation (with a time "
                        f"and a value) among its rows ({len(empty)} such stays); the model "
                        "reads stays with at least one, leave them out")
    report = RecordsReport("input", lines_read=len(value))
    arrays = assemble(ids, np.full(len(ids), "input"), np.zeros(len(ids), dtype=np.int64),
                      Rows(stay[series], time[series], var[series], value[series]),
                      Rows(stay[statics], time[statics], var[statics], value[statics]),
                      (list(vocabulary.variables), list(vocabulary.statics)), report)
    return Records.from_arrays("input", Path("."), arrays, report)


def records_from_frame(frame: pd.DataFrame, vocabulary: Vocabulary) -> Records:
    """A DataFrame with the columns ``stay_id``, ``time`` (hours since admission; empty for
    a static), ``variable`` (a name of the model's vocabulary) and ``value`` -> Records."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"records must be a DataFrame, a numpy array or a torch tensor, got "
                        f"{type(frame).__name__}")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"the records DataFrame lacks the column(s) {', '.join(missing)} (found "
                        f"{_names([str(c) for c in frame.columns])}); pass one row per "
                        f"observation with the columns {', '.join(COLUMNS)}")
    numbers = {}
    for column in ("time", "value"):
        numbers[column] = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(np.isnan(numbers[column]) & frame[column].notna().to_numpy())
        if bad.size:
            raise DataError(f"records row {bad[0]}: {column} {frame[column].iloc[bad[0]]!r} is "
                            f"not a number; pass {column} as numbers (empty where missing)")
    time = numbers["time"]
    names = frame["variable"].astype(str).str.strip().to_numpy()
    static = np.isnan(time)
    var = np.full(len(frame), -1, dtype=np.int64)
    for kind, vocabulary_names in ((~static, vocabulary.variables),
                                   (static, vocabulary.statics)):
        lookup = {name: i for i, name in enumerate(vocabulary_names)}
        var[kind] = [lookup.get(name, -1) for name in names[kind]]
    _refuse_unknown(sorted(set(names[(var < 0) & ~static])),
                    sorted(set(names[(var < 0) & static])), vocabulary)
    stays = frame["stay_id"].astype(str).str.strip().to_numpy()
    return _build(stays, time, var, static, numbers["value"], vocabulary)


def _refuse_unknown(series: list[str], statics: list[str], vocabulary: Vocabulary) -> None:
    if series or statics:
        what = [f"variables {_names(series)}"] if series else []
        what += [f"statics (rows without a time) {_names(statics)}"] if statics else []
        raise DataError(
            f"the records hold {' and '.join(what)}, which the model does not read (it reads "
            f"{_names(vocabulary.variables)} with a time and the statics "
            f"{_names(vocabulary.statics) or 'none'} without one); leave them out")


def records_from_array(array: np.ndarray, vocabulary: Vocabulary) -> Records:
    """A ``[K, 4]`` array of rows (stay id, hours since admission, variable code, value)
    -> Records. Codes ``0 .. V-1`` are the model's variables, ``V .. V+P-1`` its statics
    (their time is not read): the order of ``MortalityClassifier.variable_names``."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise DataError(f"records as an array must be [K, 4] rows of (stay id, time, variable "
                        f"code, value), got shape {list(array.shape)}; pass a DataFrame for "
                        "names instead of codes")
    stays, time, code, value = array.T
    n_series, n_codes = len(vocabulary.variables), len(vocabulary.variables) + len(
        vocabulary.statics)
    bad = np.flatnonzero(~((code >= 0) & (code < n_codes) & (code % 1 == 0)))
    if bad.size:
        raise DataError(f"records row {bad[0]}: variable code {code[bad[0]]:g} is not one of "
                        f"the model's 0 to {n_codes - 1} (its variable_names); pass codes "
                        "from that list")
    static = code >= n_series
    if (bad := np.flatnonzero(~static & ~np.isfinite(time))).size:
        raise DataError(f"records row {bad[0]}: the time of variable "
                        f"{vocabulary.variables[int(code[bad[0]])]} is {time[bad[0]]:g}; pass "
                        "hours since admission")
    if (bad := np.flatnonzero(~np.isfinite(stays))).size:
        raise DataError(f"records row {bad[0]}: stay id {stays[bad[0]]:g} is not a number; "
                        "pass numeric stay ids (or a DataFrame)")
    var = np.where(static, code - n_series, code).astype(np.int64)
    keys = np.array([str(int(s)) if s == int(s) else repr(s) for s in stays], dtype=str)
    return _build(keys, time, var, static, value, vocabulary)
