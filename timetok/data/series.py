"""Reading a series from CSV, checking every cell, and the train-only scaler."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from timetok.data.registry import get_spec, resolve_path
from timetok.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass
class Series:
    """A multivariate series read from a CSV: ``values`` is ``[rows, channels]`` float32."""

    values: np.ndarray
    columns: list[str]
    path: Path


def _date_column(frame: pd.DataFrame) -> str | None:
    for name in frame.columns:
        if str(name).strip().lower() in {"date", "datetime", "time", "timestamp"}:
            return name
    first = frame.columns[0]
    if frame[first].dtype == object:
        parsed = pd.to_datetime(frame[first].head(20), errors="coerce", format="mixed")
        if parsed.notna().all():
            return first
    return None


def _first_bad_cell(raw: pd.DataFrame, path: Path) -> DataError:
    """Locate the first empty, NaN or non-numeric cell; line numbers count the header."""
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


def read_csv(path: str | os.PathLike) -> Series:
    """Read a CSV with an optional date column and numeric columns; every cell is checked."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}; check the path")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path.name}: not a readable CSV ({reason}); check the file") from None
    if frame.empty or frame.shape[1] == 0:
        raise DataError(f"{path.name}: no rows; the CSV needs a header and at least one row")
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
    return Series(values.astype(np.float32), [str(c) for c in raw.columns], path)


@dataclass
class Scaler:
    """Per-channel standardisation with statistics from the training rows only."""

    mean: np.ndarray
    std: np.ndarray
    columns: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, values: np.ndarray, columns: list[str] | None = None) -> Scaler:
        mean = values.mean(axis=0, dtype=np.float64)
        std = values.std(axis=0, dtype=np.float64)
        std[std < 1e-8] = 1.0  # a constant channel stays constant instead of dividing by 0
        return cls(mean.astype(np.float32), std.astype(np.float32), list(columns or []))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return (values * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "columns": self.columns}

    @classmethod
    def from_dict(cls, data: dict) -> Scaler:
        return cls(
            np.asarray(data["mean"], dtype=np.float32),
            np.asarray(data["std"], dtype=np.float32),
            list(data.get("columns", [])),
        )

    def save(self, path: str | os.PathLike) -> None:
        from timetok.utils import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Scaler:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"cannot read scaler {path}: {err}; re-export the model") from None


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
        from timetok.data.windows import WindowDataset

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
    path = resolve_path(name, data_dir, data_path)
    series = read_csv(path)
    n_rows = len(series.values)
    borders = spec.borders(n_rows, context)
    if min(start for start, _ in borders) < 0:
        raise DataError(
            f"{path.name} has {n_rows} rows, too few for a context of {context} in every split; "
            "use a smaller --context-points or a longer series"
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
