"""The README's Python examples run as written."""

import dataclasses
import re
from pathlib import Path

import numpy as np

from timetok.forecast.model import ForecasterConfig, TokenForecaster
from timetok.tokenizer.model import TokenizerConfig, TokenizerModel

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = dict(embedding_dim=8, block_hidden_size=16, res_hidden_size=8)


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_tokenizer_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TokenizerConfig(n_channels=7, context_points=512, **TINY)
    TokenizerModel(config).save_pretrained("runs/tok-ettm1")
    scope: dict = {}
    exec(compile(blocks()[0], str(README), "exec"), scope)
    assert tuple(scope["codes"].shape) == (8, 128, 7)
    assert tuple(scope["restored"].shape) == (8, 512, 7)


def test_forecaster_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tokenizer = dataclasses.asdict(TokenizerConfig(n_channels=7, context_points=512, **TINY))
    model = TokenForecaster(ForecasterConfig(tokenizer=tokenizer, horizon=96, d_model=16,
                                             n_layers=1, n_heads=2, d_ff=32))
    model.save_pretrained("runs/ft-ettm1/H96")
    scope: dict = {"context": np.random.default_rng(0).normal(size=(600, 7))}
    exec(compile(blocks()[1], str(README), "exec"), scope)
    forecaster = scope["forecaster"]
    assert forecaster.predict(scope["context"]).shape == (96, 7)
    assert forecaster.predict(scope["context"], num_samples=3).shape == (3, 96, 7)
