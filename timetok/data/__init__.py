"""Datasets in their official layouts, train-only scaling and lazily indexed windows."""

from timetok.data.registry import DATASETS, DatasetSpec, get_spec, resolve_path
from timetok.data.series import Scaler, Series, SplitData, load_splits, read_csv

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "Scaler",
    "Series",
    "SplitData",
    "get_spec",
    "load_splits",
    "read_csv",
    "resolve_path",
]
