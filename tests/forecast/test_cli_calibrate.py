"""``timetok forecast calibrate`` and ``timetok forecast predict --quantiles``, and their
errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def model(tiny_forecaster, tmp_path) -> Path:
    """A private copy of the tiny forecaster, without a calibration."""
    return Path(shutil.copytree(tiny_forecaster.path, tmp_path / "model"))


def calibrate(cli, tiny_forecaster, model):
    return cli("forecast", "calibrate", "--model", model, "--dataset", "custom", "--data-path",
               tiny_forecaster.csv)


def forecast(cli, tiny_forecaster, model, out, *args):
    return cli("forecast", "predict", "--model", model, "--input", tiny_forecaster.csv,
               "--output", out, *args)


def test_calibrate_writes_the_calibration(cli, tiny_forecaster, model):
    result = calibrate(cli, tiny_forecaster, model)
    assert result.rc == 0, result.err
    saved = json.loads((model / "data.json").read_text())["calibration"]
    assert saved["head"] == "linear" and saved["horizon"] == 8 and saved["channels"] == 2
    assert saved["dataset"] == "custom" and "validation windows" in result.out


def test_forecast_quantiles_beside_the_point_forecast(cli, tiny_forecaster, model, tmp_path):
    assert calibrate(cli, tiny_forecaster, model).rc == 0
    out = tmp_path / "f.csv"
    result = forecast(cli, tiny_forecaster, model, out, "--quantiles", "0.9,0.1,0.5")
    assert result.rc == 0, result.err
    header = out.read_text().splitlines()[0].split(",")
    assert header[:5] == ["step", "a_forecast", "a_q0.1", "a_q0.5", "a_q0.9"]
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    assert rows.shape == (8, 1 + 2 * 4)
    assert (np.diff(rows[:, 2:5], axis=1) >= 0).all() and (np.diff(rows[:, 6:9], axis=1)
                                                           >= 0).all()
    assert out.with_suffix(".png").is_file()


def test_forecast_samples_are_calibrated_when_the_model_is(cli, tiny_forecaster, model,
                                                            tmp_path):
    out = tmp_path / "f.csv"
    result = forecast(cli, tiny_forecaster, model, out, "--samples", "5")
    assert result.rc == 0, result.err
    assert "not calibrated" in result.out
    assert calibrate(cli, tiny_forecaster, model).rc == 0
    result = forecast(cli, tiny_forecaster, model, out, "--samples", "5")
    assert result.rc == 0, result.err
    assert "not calibrated" not in result.out


@pytest.mark.parametrize(("args", "fragments"), [
    (["--quantiles", "0,0.5"], ["--quantiles must lie in (0, 1)", "got 0"]),
    (["--quantiles", "0.5,1.5"], ["--quantiles must lie in (0, 1)", "1.5"]),
    (["--quantiles", "0.5,0.50"], ["--quantiles must name each level once", "0.5"]),
    (["--quantiles", "0.1,median"], ["--quantiles takes levels", "0.1,median"]),
    (["--quantiles", "0.005,0.5"], ["calibrated range"]),
    (["--quantiles", "0.5", "--samples", "3"], ["--quantiles and --samples cannot be "
                                                "combined"]),
    (["--quantiles", "0.5", "--head", "decoder"], ["calibration is of the 'linear'",
                                                    "'decoder'"]),
])
def test_forecast_bad_quantiles(cli, tiny_forecaster, model, tmp_path, args, fragments):
    assert calibrate(cli, tiny_forecaster, model).rc == 0
    out = tmp_path / "f.csv"
    forecast(cli, tiny_forecaster, model, out, *args).assert_error(*fragments)
    assert not out.exists()


def test_forecast_quantiles_without_calibration(cli, tiny_forecaster, model, tmp_path):
    out = tmp_path / "f.csv"
    forecast(cli, tiny_forecaster, model, out, "--quantiles", "0.1,0.9").assert_error(
        "no calibration", "timetok forecast calibrate")
    assert not out.exists()


def test_calibrate_refuses_a_pretrained_model_and_other_data(cli, tiny_forecaster, model,
                                                             make_csv, tmp_path):
    import dataclasses

    from timetok.forecast.model import TokenForecaster

    config = TokenForecaster.from_pretrained(model).config
    pretrained = tmp_path / "lm"
    TokenForecaster(dataclasses.replace(config, horizon=0)).save_pretrained(pretrained)
    shutil.copy(model / "data.json", pretrained)
    calibrate(cli, tiny_forecaster, pretrained).assert_error("no point forecast", "finetune")
    wide = make_csv("wide.csv", columns=("a", "b", "c"))
    cli("forecast", "calibrate", "--model", model, "--dataset", "custom", "--data-path",
        wide).assert_error("2 channel(s)", "has 3")
    assert "calibration" not in json.loads((model / "data.json").read_text())  # none written
