"""Datasets in their official layouts, by kind: registry, loaders, train-only scaling."""

from timetok.core.data.registry import (
    DATASETS,
    KINDS,
    DataKind,
    DatasetSpec,
    datasets,
    get_spec,
    register,
    register_kind,
    resolve_path,
)
from timetok.core.data.scaler import Scaler

__all__ = [
    "DATASETS",
    "KINDS",
    "DataKind",
    "DatasetSpec",
    "Scaler",
    "datasets",
    "get_spec",
    "register",
    "register_kind",
    "resolve_path",
]
