"""evaluate_forecaster refuses what it cannot evaluate with a timetok error, never a
shape mismatch or a ZeroDivisionError from deep inside."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import write_series_csv
from timetok.core.data.series import load_splits
from timetok.core.errors import ConfigError
from timetok.forecast.evaluate import evaluate_forecaster
from timetok.forecast.model import ForecasterConfig, TokenForecaster
from timetok.tokenizer.model import TokenizerConfig, TokenizerModel

CONTEXT = 32
TOKENIZER = TokenizerConfig(n_channels=1, context_points=CONTEXT, embedding_dim=8,
                            block_hidden_size=16, res_hidden_size=8, num_embeddings=16)


def _model(horizon: int = 8, **overrides) -> TokenForecaster:
    torch.manual_seed(0)
    config = ForecasterConfig(tokenizer=TOKENIZER, context_points=CONTEXT, horizon=horizon,
                              d_model=16, n_layers=1, n_heads=2, d_ff=32, max_horizon=16,
                              **overrides)
    return TokenForecaster(config)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    csv = write_series_csv(tmp_path_factory.mktemp("eval") / "series.csv", rows=200)
    return load_splits("custom", CONTEXT, data_path=csv)


def test_a_shorter_horizon_is_cut_from_the_models_forecast(data):
    report = evaluate_forecaster(_model(horizon=8), data, horizon=4, stride=8)
    assert report["horizon"] == 4
    assert set(report["methods"]) >= {"timetok-decoder", "timetok-linear", "dlinear"}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [(dict(horizon=12), r"horizon must lie in \[1, 8\]"),
     (dict(horizon=-3), "horizon must lie"),
     (dict(batch_size=0), "batch_size must be >= 1"),
     (dict(sample_stride=0, samples=2), "sample_stride must be >= 1"),
     (dict(samples=-1), "samples must be >= 0")],
)
def test_impossible_settings(data, kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        evaluate_forecaster(_model(), data, **kwargs)


def test_a_model_without_heads(data):
    with pytest.raises(ConfigError, match="no forecast heads; finetune"):
        evaluate_forecaster(_model(horizon=0), data)


def test_a_tokenizer_is_not_a_forecaster(data):
    with pytest.raises(ConfigError, match="'tokenizer' model cannot forecast"):
        evaluate_forecaster(TokenizerModel(TOKENIZER), data)


def test_models_of_other_horizons_together(data):
    with pytest.raises(ConfigError, match=r"\[1, 4\]"):
        evaluate_forecaster([_model(horizon=8, heads=["linear"]),
                             _model(horizon=4, heads=["decoder"])], data)
