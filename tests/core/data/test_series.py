"""Reading CSVs, the train-only scaler, split borders and lazily indexed windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from timetok.core.data.registry import BUNDLED_DIR
from timetok.core.data.series import Scaler, load_splits, read_csv
from timetok.core.data.windows import WindowDataset
from timetok.core.errors import DataError

ETT_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "ett"
BUNDLED_ETTH1 = BUNDLED_DIR / "ETTh1.csv"


# --- read_csv ---------------------------------------------------------------------------


def test_read_csv_drops_date_and_keeps_columns_as_float32(make_csv):
    values = np.arange(30, dtype=np.float64).reshape(10, 3) / 7.0
    path = make_csv(rows=10, columns=("HUFL", "x y", "OT"), values=values)
    series = read_csv(path)
    assert series.columns == ["HUFL", "x y", "OT"]
    assert series.values.dtype == np.float32
    assert series.values.shape == (10, 3)
    np.testing.assert_allclose(series.values, values, rtol=1e-6)
    assert series.path == path


def test_read_csv_without_date_column_keeps_every_column(make_csv):
    values = np.arange(8, dtype=np.float64).reshape(4, 2) + 2016  # year-like numbers
    series = read_csv(make_csv(rows=4, columns=("load", "b"), values=values, date=False))
    assert series.columns == ["load", "b"]
    np.testing.assert_array_equal(series.values, values.astype(np.float32))


def test_read_csv_of_the_bundled_etth1():
    series = read_csv(BUNDLED_ETTH1)
    assert series.columns == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert series.values.shape == (17420, 7)
    assert series.values.dtype == np.float32


# --- Scaler -----------------------------------------------------------------------------


def test_scaler_is_fitted_on_train_rows_only(make_csv):
    rows, context = 300, 32
    n_train = int(rows * 0.7)
    rng = np.random.default_rng(1)
    values = rng.normal(size=(rows, 2))
    values[n_train:] += 1000.0  # val/test live far from the training rows
    data = load_splits("custom", context, data_path=make_csv(rows=rows, values=values))
    assert data.borders["train"] == (0, n_train)
    train = values[:n_train].astype(np.float32)
    np.testing.assert_allclose(data.scaler.mean, train.mean(0, dtype=np.float64), rtol=1e-5)
    np.testing.assert_allclose(data.scaler.std, train.std(0, dtype=np.float64), rtol=1e-5)
    assert np.all(np.abs(data.scaler.mean) < 1.0)  # the whole-file mean would be ~ +300
    np.testing.assert_allclose(data.splits["train"].mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(data.splits["train"].std(0), 1.0, atol=1e-4)
    assert data.splits["test"][context:].mean() > 100  # test rows scaled with train stats


def test_scaler_round_trips_through_its_dict():
    rng = np.random.default_rng(2)
    values = (rng.normal(size=(50, 3)) * [1.0, 10.0, 0.1] + [5.0, -3.0, 0.0]).astype(np.float32)
    values[:, 2] = 4.0  # a constant channel gets std 1, not a division by zero
    scaler = Scaler.fit(values, ["a", "b", "c"])
    assert scaler.std[2] == 1.0
    loaded = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert loaded.columns == ["a", "b", "c"]
    assert loaded.mean.dtype == np.float32 and loaded.std.dtype == np.float32
    np.testing.assert_array_equal(loaded.mean, scaler.mean)
    np.testing.assert_array_equal(loaded.std, scaler.std)
    np.testing.assert_allclose(loaded.inverse_transform(loaded.transform(values)), values,
                               rtol=1e-5, atol=1e-5)


# --- borders ----------------------------------------------------------------------------


@pytest.mark.parametrize("context", [96, 512])
def test_ett_borders_of_the_bundled_etth1(context, isolated_env):
    data = load_splits("etth1", context)
    assert data.path == BUNDLED_ETTH1
    assert data.n_rows == 17420 and data.n_channels == 7
    assert data.borders == {
        "train": (0, 8640),
        "val": (8640 - context, 11520),
        "test": (11520 - context, 14400),
    }
    assert {s: len(v) for s, v in data.splits.items()} == {
        "train": 8640, "val": 2880 + context, "test": 2880 + context,
    }


def test_etth1_window_counts_of_the_literature(isolated_env):
    data = load_splits("etth1", 512)
    counts = {s: len(data.windows(s, 512, 96)) for s in ("train", "val", "test")}
    assert counts == {"train": 8033, "val": 2785, "test": 2785}


def test_ettm1_has_11425_test_windows():
    """PRODUCT.md: ETTm1, context 512, target 96, stride 1 -> 11,425 test windows."""
    if not (ETT_DIR / "ETTm1.csv").is_file():
        pytest.skip(f"needs the official ETTm1.csv in {ETT_DIR} (not present here)")
    data = load_splits("ettm1", 512, data_dir=ETT_DIR)
    assert data.borders["test"] == (46080 - 512, 57600)
    assert len(data.windows("test", 512, 96, 1)) == 11425


def test_an_ett_file_too_short_for_its_borders_is_refused(make_csv):
    path = make_csv("ETTh1.csv", rows=1000, columns=("OT",))
    with pytest.raises(DataError, match="at least 14400 rows"):
        load_splits("etth1", 96, data_path=path)


@pytest.mark.parametrize(
    ("rows", "context", "expected"),
    [
        (1000, 32, {"train": (0, 700), "val": (668, 800), "test": (768, 1000)}),
        (301, 32, {"train": (0, 210), "val": (178, 241), "test": (209, 301)}),
    ],
)
def test_custom_borders_are_70_10_20(make_csv, rows, context, expected):
    data = load_splits("custom", context, data_path=make_csv(rows=rows))
    assert data.borders == expected
    assert data.n_rows == rows
    for split, (start, end) in expected.items():
        assert len(data.splits[split]) == end - start


def test_custom_series_too_short_for_the_context(make_csv):
    with pytest.raises(DataError, match="20 rows"):
        load_splits("custom", 32, data_path=make_csv(rows=20))


# --- WindowDataset ----------------------------------------------------------------------


def _series(rows: int = 100, channels: int = 3) -> np.ndarray:
    return np.arange(rows * channels, dtype=np.float32).reshape(rows, channels)


@pytest.mark.parametrize("stride", [1, 3, 7, 85, 86])
def test_window_count_follows_the_stride_formula(stride):
    ds = WindowDataset(_series(100), context=10, target=5, stride=stride)
    assert len(ds) == ds.n_windows == (100 - 15) // stride + 1


@pytest.mark.parametrize("stride", [1, 4])
def test_items_are_context_and_target_windows(stride):
    values = _series(100, 3)
    ds = WindowDataset(values, context=10, target=5, stride=stride)
    assert ds.n_channels == 3
    for i in (0, 1, len(ds) // 2, len(ds) - 1):
        x, y = ds[i]
        assert x.shape == (10, 3) and y.shape == (5, 3)
        assert x.dtype == torch.float32
        start = i * stride
        np.testing.assert_array_equal(x.numpy(), values[start : start + 10])
        np.testing.assert_array_equal(y.numpy(), values[start + 10 : start + 15])


def test_target_zero_gives_an_empty_target():
    x, y = WindowDataset(_series(40, 2), context=8)[3]
    assert x.shape == (8, 2) and y.shape == (0, 2)


def test_channel_independent_view():
    values = _series(50, 3)
    ds = WindowDataset(values, context=8, target=2, stride=2, channel_independent=True)
    n_windows = (50 - 10) // 2 + 1
    assert len(ds) == n_windows * 3
    assert ds.n_channels == 1
    for index in range(len(ds)):
        window, channel = divmod(index, 3)
        x, y = ds[index]
        assert x.shape == (8, 1) and y.shape == (2, 1)
        start = window * 2
        np.testing.assert_array_equal(x.numpy(), values[start : start + 8, channel : channel + 1])
        np.testing.assert_array_equal(
            y.numpy(), values[start + 8 : start + 10, channel : channel + 1]
        )


@pytest.mark.parametrize("channel_independent", [False, True])
def test_negative_indices_count_from_the_end(channel_independent):
    ds = WindowDataset(_series(60, 2), 10, 2, 3, channel_independent=channel_independent)
    n = len(ds)
    for negative, positive in [(-1, n - 1), (-2, n - 2), (-n, 0)]:
        for a, b in zip(ds[negative], ds[positive], strict=True):
            assert torch.equal(a, b)
    for bad in (n, -n - 1):
        with pytest.raises(IndexError):
            ds[bad]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dataset_holds_one_tensor_of_the_series(dtype):
    rows, channels = 2000, 3
    values = np.random.default_rng(0).normal(size=(rows, channels)).astype(dtype)
    few = WindowDataset(values, context=1500, target=100)  # 401 windows
    many = WindowDataset(values, context=8, stride=1, channel_independent=True)  # ~6000 items
    for ds in (few, many):
        assert ds.values.dtype == torch.float32
        assert ds.values.untyped_storage().nbytes() == rows * channels * 4
        x, y = ds[len(ds) - 1]  # items are views into that one tensor, not copies
        assert x.untyped_storage().data_ptr() == ds.values.untyped_storage().data_ptr()
        assert y.untyped_storage().data_ptr() == ds.values.untyped_storage().data_ptr()


def test_a_series_shorter_than_one_window_is_a_data_error():
    with pytest.raises(DataError, match="has 20 rows"):
        WindowDataset(_series(20), context=16, target=8, where="the series")


@pytest.mark.parametrize(("context", "target", "stride"), [(0, 0, 1), (8, -1, 1), (8, 0, 0)])
def test_bad_window_settings_are_data_errors(context, target, stride):
    with pytest.raises(DataError):
        WindowDataset(_series(20), context, target, stride)
