"""The trained baselines: DLinear's decomposition, the models' shapes, the shared training
loop (learning, early stopping, schedule, time budget) and RLinear on a flat context."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.utils.data import DataLoader

from tests.conftest import write_series_csv
from timetok.core.data.series import load_splits
from timetok.core.errors import ConfigError
from timetok.core.nn.lstsq import MIN_STD, apply_linear, linear_mse
from timetok.forecast import baselines
from timetok.forecast.baselines import (
    BASELINES,
    DLinear,
    Recipe,
    RLinear,
    build_model,
    decompose,
    fit,
    recipe,
    train_baseline,
    trained_linear_fit,
)
from timetok.forecast.evaluate import ErrorSums, repeat_last

CONTEXT, HORIZON = 48, 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """800 rows of two noisy sinusoids (periods of about 44 and 63 steps)."""
    csv = write_series_csv(tmp_path_factory.mktemp("baselines") / "series.csv", rows=800)
    return load_splits("custom", CONTEXT, data_path=csv)


def test_the_decomposition_sums_back_to_the_input():
    x = torch.randn(3, 60, 2)
    trend, remainder = decompose(x)
    assert trend.shape == remainder.shape == x.shape
    torch.testing.assert_close(trend + remainder, x)
    # the ends are padded by repeating the first row: 13 copies of x[0] and x[1..12]
    torch.testing.assert_close(trend[:, 0], (12 * x[:, 0] + x[:, :13].sum(dim=1)) / 25)
    assert torch.allclose(decompose(torch.full((1, 40, 1), 2.0))[0], torch.tensor(2.0))


@pytest.mark.parametrize("name", BASELINES)
def test_each_model_forecasts_batch_horizon_channels(name):
    model = build_model(name, "etth1", 32, 8, 3).eval()
    assert model(torch.randn(4, 32, 3)).shape == (4, 8, 3)


@pytest.mark.parametrize("name", ["dlinear-trained", "rlinear-trained"])
def test_training_beats_repeating_the_last_value(data, name):
    val = data.windows("val", CONTEXT, HORIZON)
    held = ErrorSums()
    for x, y in DataLoader(val, batch_size=64):
        held.update(repeat_last(x, HORIZON), y)
    result = train_baseline(name, data, CONTEXT, HORIZON, eval_stride=4)
    history = [epoch["val_mse"] for epoch in result["history"]]
    assert result["val_mse"] == min(history) < history[0]
    assert result["val_mse"] < held.result()["mse"]
    assert result["test_mse"] < 1.0 and result["test_mae"] > 0


def test_dlinear_folds_into_one_linear_map():
    torch.manual_seed(0)
    model = DLinear(60, 12)
    for layer in (model.trend, model.remainder):  # unlike each other, and not at init
        torch.nn.init.normal_(layer.weight)
        torch.nn.init.normal_(layer.bias)
    x = torch.randn(5, 60, 3)
    weights = model.linear_map()
    assert weights.shape == (61, 12)
    torch.testing.assert_close(apply_linear(weights, x), model(x), atol=1e-4, rtol=1e-4)


def test_a_trained_dlinear_becomes_a_map_with_its_validation_error(data):
    train = data.windows("train", CONTEXT, HORIZON)
    val = data.windows("val", CONTEXT, HORIZON, 4)
    fit_ = trained_linear_fit(train, val, "etth1", HORIZON)
    assert fit_.ridge is None and fit_.weights.shape == (CONTEXT + 1, HORIZON)
    measured = linear_mse(val, lambda x: apply_linear(fit_.weights, x))
    assert fit_.val_mse == pytest.approx(measured, rel=1e-4)
    # the same seed trains the same model, and the caller's random state is left alone
    state = torch.get_rng_state()
    assert trained_linear_fit(train, val, "etth1", HORIZON).val_mse == fit_.val_mse
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(ConfigError, match="no training windows"):
        trained_linear_fit([], val, "etth1", HORIZON)


def test_the_learning_rate_halves_each_epoch(data):
    result = train_baseline("dlinear-trained", data, CONTEXT, HORIZON, max_epochs=4,
                            eval_stride=8)
    assert [epoch["lr"] for epoch in result["history"]] == [0.005, 0.0025, 0.00125, 0.000625]
    assert result["epochs"] == 4 and result["stopped"] == "epochs"
    held = Recipe(1e-4, 128, 100, 20, schedule="type3")
    assert [held.learning_rate(e) for e in (1, 2, 3, 4)] == pytest.approx(
        [1e-4, 1e-4, 1e-4, 0.9e-4])


def test_early_stopping_keeps_the_best_epoch(data, monkeypatch):
    scores, snapshots = iter([1.0, 0.5, 0.7, 0.8, 0.9]), []

    def scripted(model, windows, device="cpu"):
        snapshots.append(copy.deepcopy(model.state_dict()))
        return {"mse": next(scores), "mae": 0.0}

    monkeypatch.setattr(baselines, "evaluate", scripted)
    model = DLinear(CONTEXT, HORIZON)
    run = fit(model, data.windows("train", CONTEXT, HORIZON),
              data.windows("val", CONTEXT, HORIZON), recipe("dlinear-trained", "etth1", 96))
    assert (run["epochs"], run["stopped"], run["val_mse"]) == (5, "patience", 0.5)
    for name, value in model.state_dict().items():  # epoch 2's weights, not the last
        torch.testing.assert_close(value, snapshots[1][name])
    assert not torch.equal(model.trend.weight, snapshots[-1]["trend.weight"])


def test_the_time_budget_stops_training(data):
    result = train_baseline("patchtst", data, CONTEXT, HORIZON, time_budget_s=0.0,
                            eval_stride=8)
    assert (result["epochs"], result["stopped"]) == (1, "time")
    assert math.isfinite(result["test_mse"])


def test_a_flat_context_gives_a_finite_rlinear_forecast():
    torch.manual_seed(0)
    model = RLinear(CONTEXT, HORIZON, 2).eval()
    assert model.revin.min_std == MIN_STD
    forecast = model(torch.full((1, CONTEXT, 2), 3.0))
    assert torch.isfinite(forecast).all()
    assert (forecast - 3.0).abs().max() < 1.0  # near the level: the deviation is floored


def test_unknown_baselines_and_settings_are_refused(data):
    with pytest.raises(ConfigError, match="unknown baseline 'arima'"):
        train_baseline("arima", data, CONTEXT, HORIZON)
    with pytest.raises(ConfigError, match="eval_stride must be >= 1"):
        train_baseline("dlinear-trained", data, CONTEXT, HORIZON, eval_stride=0)
