"""The ``Forecaster`` contract: from_pretrained / save_pretrained round trip, numpy, torch
and DataFrame inputs alike, embed, and fit from Python by the CLI's recipe."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from timetok import Forecaster
from timetok.core.errors import CheckpointError, DataError, TimetokError
from timetok.forecast.calibration import Calibration


@pytest.fixture(scope="module")
def calibrated(tiny_forecaster, tmp_path_factory) -> Path:
    """The tiny forecaster with its codebook set (an untrained one sets it by k-means on the
    first batch it sees) and a calibration fitted on its CSV."""
    from timetok.core.data.series import load_splits
    from timetok.forecast.calibration import calibrate_folder
    from timetok.forecast.model import TokenForecaster

    folder = Path(shutil.copytree(tiny_forecaster.path, tmp_path_factory.mktemp("cal") / "m"))
    data = load_splits("custom", 32, data_path=tiny_forecaster.csv)
    model = TokenForecaster.from_pretrained(folder)
    torch.manual_seed(0)
    model.predict(torch.from_numpy(data.splits["train"][None, :32]))
    model.save_pretrained(folder)
    calibrate_folder(folder, data)
    return folder


@pytest.fixture(scope="module")
def frame(tiny_forecaster) -> pd.DataFrame:
    return pd.read_csv(tiny_forecaster.csv)


def test_save_and_from_pretrained_give_the_same_answers(calibrated, frame, tmp_path):
    forecaster = Forecaster.from_pretrained(calibrated, device="cpu")
    context = frame[["a", "b"]].to_numpy()
    copy = Forecaster.from_pretrained(forecaster.save_pretrained(tmp_path / "copy"))
    np.testing.assert_array_equal(copy.predict(context), forecaster.predict(context))
    np.testing.assert_array_equal(copy.predict_quantiles(context),
                                  forecaster.predict_quantiles(context))
    np.testing.assert_array_equal(copy.embed(context), forecaster.embed(context))
    assert not (tmp_path / "copy" / "scaler.json").exists()  # one data.json


def test_numpy_torch_and_dataframe_inputs_agree(calibrated, frame):
    forecaster = Forecaster.from_pretrained(calibrated)
    array = frame[["a", "b"]].to_numpy(dtype=np.float32)
    point = forecaster.predict(array)
    assert isinstance(point, np.ndarray) and point.shape == (8, 2)
    as_tensor = forecaster.predict(torch.from_numpy(array))
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), point, rtol=1e-6)
    as_frame = forecaster.predict(frame)  # the date column is left out
    assert isinstance(as_frame, pd.DataFrame) and list(as_frame.columns) == ["a", "b"]
    assert as_frame.index[0] == len(frame)  # the steps after the context
    np.testing.assert_allclose(as_frame.to_numpy(), point, rtol=1e-6)
    swapped = forecaster.predict(frame[["b", "a"]])  # columns found by name
    np.testing.assert_allclose(swapped.to_numpy(), point, rtol=1e-6)
    quantiles = forecaster.predict_quantiles(frame, (0.1, 0.9))
    assert list(quantiles.columns) == [("a", 0.1), ("a", 0.9), ("b", 0.1), ("b", 0.9)]
    np.testing.assert_allclose(quantiles[("b", 0.9)].to_numpy(),
                               forecaster.predict_quantiles(array, (0.1, 0.9))[1, :, 1],
                               rtol=1e-6)


def test_a_frame_indexed_by_time_gets_the_future_timestamps(calibrated, frame):
    forecaster = Forecaster.from_pretrained(calibrated)
    timed = frame.set_index(pd.to_datetime(frame["date"]))
    point = forecaster.predict(timed)
    step = timed.index[1] - timed.index[0]
    assert point.index[0] == timed.index[-1] + step
    assert list(point.index) == list(pd.date_range(timed.index[-1] + step, periods=8,
                                                   freq=step))
    irregular = timed.iloc[[0, 1, 3, *range(5, len(timed))]]  # no frequency to continue
    assert forecaster.predict(irregular).index[0] == len(irregular)


def test_a_batch_gives_each_series_its_own_forecast(calibrated, frame):
    forecaster = Forecaster.from_pretrained(calibrated)
    array = frame[["a", "b"]].to_numpy(dtype=np.float32)
    batch = np.stack([array[:-10], array[10:]])
    out = forecaster.predict(batch)
    assert out.shape == (2, 8, 2)
    np.testing.assert_allclose(out[1], forecaster.predict(array), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[0], out[1])


def test_embed_gives_the_language_models_states_per_channel(calibrated, frame):
    forecaster = Forecaster.from_pretrained(calibrated)
    array = frame[["a", "b"]].to_numpy(dtype=np.float32)
    embedding = forecaster.embed(array)
    config = forecaster.model.config
    assert embedding.shape == (2, config.n_context, config.d_model)
    tensor = forecaster.embed(torch.from_numpy(array))
    np.testing.assert_allclose(tensor.numpy(), embedding, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(forecaster.embed(frame), embedding, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("context", "fragment"), [
    (np.zeros((10, 2)), "needs 32"),
    (np.full((40, 2), np.nan), "NaN"),
    (np.zeros((40, 3)), "2 channel"),
    (np.zeros((2, 2, 40, 2)), "[T], [T, C] or [B, T, C]"),
])
def test_bad_contexts_name_the_problem(calibrated, context, fragment):
    forecaster = Forecaster.from_pretrained(calibrated)
    with pytest.raises(TimetokError, match=fragment.replace("[", "\\[").replace("]", "\\]")):
        forecaster.predict(context)


def test_a_dataframe_without_numbers_is_refused(calibrated):
    with pytest.raises(DataError, match="no numeric columns"):
        Forecaster.from_pretrained(calibrated).predict(pd.DataFrame({"d": ["x"] * 40}))


def test_a_folder_without_its_scaler_is_an_error_naming_the_file(calibrated, tmp_path):
    folder = Path(shutil.copytree(calibrated, tmp_path / "m"))
    data = folder / "data.json"
    data.write_text(data.read_text().replace('"scaler"', '"other"'))
    with pytest.raises(CheckpointError, match="data.json"):
        Forecaster.from_pretrained(folder)


def test_fit_finetunes_from_python_with_the_cli_recipe(tmp_path):
    """A tiny budget end to end from an in-memory DataFrame: tokenizer, pretraining and
    finetuning all run; the model folders stay where save_path says."""
    from tests.conftest import write_series_csv

    frame = pd.read_csv(write_series_csv(tmp_path / "s.csv", rows=400))
    tiny = {"max_steps": 2, "batch_size": 8, "accelerator": "cpu", "devices": "1"}
    forecaster = Forecaster.fit(
        frame, horizon=8, save_path=tmp_path / "fit",
        tokenizer_settings=tiny | {"context_points": 32, "block_hidden_size": 16,
                                   "res_hidden_size": 8, "embedding_dim": 8,
                                   "num_embeddings": 16},
        pretrain_settings=tiny | {"max_horizon": 16, "d_model": 16, "n_layers": 1,
                                  "n_heads": 2, "d_ff": 32},
        **tiny)
    assert forecaster.predict(frame).shape == (8, 2)
    assert isinstance(forecaster.calibration, Calibration)
    assert (tmp_path / "fit" / "forecaster" / "H8" / "model.safetensors").is_file()
    # again from the pretrained model, on a tensor, into a temporary folder
    again = Forecaster.fit(torch.from_numpy(frame[["a", "b"]].to_numpy()), horizon=6,
                           pretrained=tmp_path / "fit" / "lm", heads="linear", **tiny)
    assert again.point_horizon == 6 and again.model.outputs == ["linear"]
    with pytest.raises(TimetokError, match="sets dataset itself"):
        Forecaster.fit(frame, horizon=8, pretrained=tmp_path / "fit" / "lm", dataset="etth1")
