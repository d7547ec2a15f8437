"""Registered datasets: where their file lives, how it is split.

Files resolve, in order, from an explicit ``--data-dir``, the ``TIMETOK_DATA_DIR``
variable, the user cache (``~/.cache/timetok``) and, for ETTh1 only, the copy shipped
inside the package. Names are the official file names (``ETTm1.csv`` …).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from timetok.errors import DataError

BUNDLED_DIR = Path(__file__).parent / "bundled"
ETT_BASE_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/"

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


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    filename: str | None  # None: the user names the file (custom)
    description: str
    borders: Borders
    url: str | None = None
    checksum: str | None = None  # "sha256:<hex>" or "md5:<hex>"
    licence: str = ""


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "etth1", "ETTh1.csv", "Electricity Transformer Temperature, hourly, station 1",
            ett_borders(24), ETT_BASE_URL + "ETTh1.csv",
            "sha256:f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
            "CC BY-ND 4.0 (Zhou et al., Informer, AAAI 2021)",
        ),
        DatasetSpec(
            "etth2", "ETTh2.csv", "Electricity Transformer Temperature, hourly, station 2",
            ett_borders(24), ETT_BASE_URL + "ETTh2.csv",
            "sha256:a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
            "CC BY-ND 4.0 (Zhou et al., Informer, AAAI 2021)",
        ),
        DatasetSpec(
            "ettm1", "ETTm1.csv", "Electricity Transformer Temperature, 15-minute, station 1",
            ett_borders(96), ETT_BASE_URL + "ETTm1.csv",
            "sha256:6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e",
            "CC BY-ND 4.0 (Zhou et al., Informer, AAAI 2021)",
        ),
        DatasetSpec(
            "ettm2", "ETTm2.csv", "Electricity Transformer Temperature, 15-minute, station 2",
            ett_borders(96), ETT_BASE_URL + "ETTm2.csv",
            "sha256:db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd",
            "CC BY-ND 4.0 (Zhou et al., Informer, AAAI 2021)",
        ),
        DatasetSpec(
            "custom", None, "any CSV with a date column and numeric columns (70/10/20 split)",
            ratio_borders(),
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    key = name.lower()
    if key not in DATASETS:
        known = ", ".join(DATASETS)
        raise DataError(f"unknown dataset {name!r}; choose one of: {known}")
    return DATASETS[key]


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    if env := os.environ.get("TIMETOK_DATA_DIR"):
        dirs.append(Path(env))
    dirs.append(cache_dir())
    dirs.append(BUNDLED_DIR)
    return dirs


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "timetok"


def resolve_path(
    name: str, data_dir: str | os.PathLike | None = None, data_path: str | os.PathLike | None = None
) -> Path:
    """The file behind a dataset name; raises DataError naming where it looked."""
    spec = get_spec(name)
    if spec.filename is None:
        if data_path is None:
            raise DataError(f"dataset {spec.name!r} needs a file: pass --data-path FILE.csv")
        path = Path(data_path)
        if not path.is_file():
            raise DataError(f"data file not found: {path}; check the --data-path value")
        return path
    if data_path is not None:
        path = Path(data_path)
        if not path.is_file():
            raise DataError(f"data file not found: {path}; check the --data-path value")
        return path
    dirs = search_dirs(data_dir)
    for folder in dirs:
        if (folder / spec.filename).is_file():
            return folder / spec.filename
    looked = ", ".join(str(d) for d in dirs)
    raise DataError(
        f"{spec.filename} not found (looked in {looked}); run 'timetok data fetch {spec.name}' "
        "or pass --data-dir"
    )
