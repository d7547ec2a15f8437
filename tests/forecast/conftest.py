"""The tiny trained run the forecaster's CLI tests share (trained once for the folder)."""

import pytest

from tests.forecast.cli_run import train_pipeline


@pytest.fixture(scope="package")
def pipeline(tmp_path_factory):
    """A tiny tokenizer, language model and H=8/H=6 forecaster; treat it as read-only."""
    return train_pipeline(tmp_path_factory.mktemp("forecast-cli"))
