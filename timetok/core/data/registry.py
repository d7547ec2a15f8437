"""Registered datasets of every kind: where their files live, how to describe them.

A dataset has a *kind* (``series``: one multivariate CSV cut into windows; ``labelled``:
samples with a class each; ``records``: irregular stays, observations at their own times;
``images``: grayscale spectrograms, each of one user), and each kind is a module that
registers itself and its datasets on import (listed in ``KIND_MODULES``): the kind with
:func:`register_kind`, each dataset with :func:`register`. ``timetok data list`` and
``timetok data info`` read this registry and know no kind in particular.

Files resolve, in order, from an explicit ``data_dir``, the ``TIMETOK_DATA_DIR``
variable, the user cache (``~/.cache/timetok``) and the copies shipped inside the package
(ETTh1 and the UCR set ECG200). Names are the official file or folder names
(``ETTm1.csv``, ``ECG200`` …).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timetok.core.errors import DataError

BUNDLED_DIR = Path(__file__).parent / "bundled"
# The modules that define a kind and register its datasets.
KIND_MODULES = ("timetok.core.data.series", "timetok.core.data.labelled",
                "timetok.core.data.records", "timetok.core.data.images")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # a registered kind's name
    description: str
    filename: str | None  # official file or folder name; None: the user names it
    size: str = ""  # as a user would say it: "17,420 rows x 7 channels"
    url: str | None = None
    checksum: str | None = None  # "sha256:<hex>" or "md5:<hex>"
    licence: str = ""  # the licence's short name: "CC BY-ND 4.0"
    citation: str = ""  # whom to credit: "Zhou et al., Informer, AAAI 2021"
    protocol: Any = None  # the kind's split protocol (series: a row-borders function)
    # A download of several files: their names under ``url`` (a folder's address), each
    # verified against the server's own list of sha256 sums (``checksums``, a file under
    # ``url`` in sha256sum's format); ``data fetch`` writes them into a folder named like
    # the dataset, which resolves like ``filename``.
    files: tuple[str, ...] = ()
    checksums: str | None = None


@dataclass(frozen=True)
class DataKind:
    """What ``data info`` needs of a kind: a report on one dataset, and its lines."""

    name: str
    description: str
    # (spec, resolved path, options) -> a JSON-ready report
    describe: Callable[[DatasetSpec, Path, dict], dict]
    render: Callable[[dict], str]  # report -> text for a person


KINDS: dict[str, DataKind] = {}
DATASETS: dict[str, DatasetSpec] = {}


def credit(report: dict) -> list[str]:
    """The ``licence ...; cite ...`` line of a kind's report, if it names either."""
    parts = [f"licence {report['licence']}"] if report.get("licence") else []
    parts += [f"cite {report['citation']}"] if report.get("citation") else []
    return ["; ".join(parts)] if parts else []


def register_kind(kind: DataKind) -> DataKind:
    KINDS[kind.name] = kind
    return kind


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset; its kind must be registered first, and its name be new."""
    if spec.kind not in KINDS:
        raise DataError(f"dataset {spec.name!r} has unknown kind {spec.kind!r}; register the "
                        "kind first")
    if spec.name in DATASETS and DATASETS[spec.name] != spec:
        raise DataError(f"a dataset named {spec.name!r} is already registered")
    DATASETS[spec.name] = spec
    return spec


def _load_kinds() -> None:
    for module in KIND_MODULES:
        importlib.import_module(module)


def datasets() -> dict[str, DatasetSpec]:
    """Every registered dataset, by name: kind by kind in ``KIND_MODULES`` order (whatever
    order the modules were imported in), each kind's in the order it registered them."""
    _load_kinds()

    def rank(spec: DatasetSpec) -> int:
        module = KINDS[spec.kind].describe.__module__
        return KIND_MODULES.index(module) if module in KIND_MODULES else len(KIND_MODULES)

    return {spec.name: spec for spec in sorted(DATASETS.values(), key=rank)}


def get_spec(name: str) -> DatasetSpec:
    specs = datasets()
    key = name.strip().lower()
    if key not in specs:
        known = ", ".join(specs)
        raise DataError(f"unknown dataset {name!r}; choose one of: {known}")
    return specs[key]


def get_kind(spec: DatasetSpec) -> DataKind:
    _load_kinds()
    return KINDS[spec.kind]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "timetok"


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where dataset files are looked for, in order; a given ``data_dir`` must exist."""
    dirs = []
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise DataError(f"data_dir {str(data_dir)!r} is not a folder; pass the folder "
                            "that holds the dataset files")
        dirs.append(Path(data_dir))
    if env := os.environ.get("TIMETOK_DATA_DIR"):
        dirs.append(Path(env))
    dirs.append(cache_dir())
    dirs.append(BUNDLED_DIR)
    return dirs


def resolve_path(
    name: str, data_dir: str | os.PathLike | None = None, data_path: str | os.PathLike | None = None
) -> Path:
    """The file or folder behind a dataset name; raises DataError naming where it looked."""
    spec = get_spec(name)
    if data_path is not None:
        path = Path(data_path)
        if not path.exists():
            raise DataError(f"data file not found: {path}; check the data_path value")
        return path
    if spec.filename is None:
        raise DataError(f"dataset {spec.name!r} needs a file: pass data_path")
    dirs = search_dirs(data_dir)
    names = [spec.filename, *([spec.name] if spec.files else [])]
    for folder in dirs:
        for name in names:
            if (folder / name).exists():
                return folder / name
    looked = ", ".join(str(d) for d in dirs)
    fix = (f"run 'timetok data fetch {spec.name}' or pass data_dir" if spec.url else
           f"pass data_dir, the folder that holds {spec.filename}")
    raise DataError(f"{spec.filename} not found (looked in {looked}); {fix}")
