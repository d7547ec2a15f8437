import dataclasses

import pytest
import torch

from tests.synthetic import mixture
from timetok.forecast.model import ForecasterConfig
from timetok.forecast.modules import PretrainModule
from timetok.tokenizer.model import TokenizerConfig


def _save_tiny_language_model(path):
    """A 32-step-context language model, untrained, saved to ``path``."""
    from timetok.forecast.model import TokenForecaster

    tokenizer = TokenizerConfig(n_channels=1, context_points=32, embedding_dim=8,
                                num_embeddings=16, block_hidden_size=16, res_hidden_size=8)
    TokenForecaster(ForecasterConfig(tokenizer=tokenizer, context_points=32, max_horizon=16,
                                     d_model=16, n_layers=1, n_heads=2, d_ff=32)
                    ).save_pretrained(path)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_pretraining_trains_every_position_that_sampling_reaches():
    tokenizer = TokenizerConfig(n_channels=1, context_points=64, embedding_dim=8,
                                num_embeddings=32, block_hidden_size=16, res_hidden_size=8)
    config = ForecasterConfig(tokenizer=dataclasses.asdict(tokenizer), context_points=64,
                              max_horizon=30, d_model=16, n_layers=1, n_heads=2, d_ff=32)
    assert config.pretrain_future == 32  # 30 steps padded to whole codes of 4
    torch.manual_seed(0)
    module = PretrainModule(dataclasses.asdict(config))
    batch = mixture(4, 64, 1, seed=0), mixture(4, config.pretrain_future, 1, seed=1)
    module.training_step(batch, 0).backward()
    # Sampling H=30 feeds the context's 16 codes and 7 of the 8 sampled ones back in.
    fed = config.n_context + config.n_future(config.max_horizon) - 1
    position_grads = module.model.lm.transformer.wpe.weight.grad[:fed]
    assert (position_grads.abs().sum(dim=1) > 0).all()


def test_finetuning_exports_a_calibration_of_the_default_forecast(tmp_path):
    from tests.conftest import write_series_csv
    from timetok.forecast.calibration import Calibration
    from timetok.forecast.config import FinetuneConfig
    from timetok.forecast.data import WindowDataModule
    from timetok.forecast.modules import finetune_module

    _save_tiny_language_model(tmp_path / "lm")
    csv = write_series_csv(tmp_path / "series.csv")
    data = WindowDataModule("custom", 32, 8, channel_independent=True, data_path=str(csv))
    data.load()
    config = FinetuneConfig(model=str(tmp_path / "lm"), heads="linear", linear_skip=False,
                            warmup_steps=0)
    module = finetune_module(config, config.model, 8)
    summary = module.prepare_export(data)
    assert summary["calibration_windows"] == len(data.windows("val", False))
    module.save_artifacts(tmp_path / "ft")
    calibration = Calibration.load(tmp_path / "ft")
    assert (calibration.head, calibration.horizon, calibration.channels) == ("linear", 8, 2)


def test_finetuning_keeps_the_skip_fit_with_the_lower_validation_error(tmp_path):
    from tests.conftest import write_series_csv
    from timetok.core.nn.lstsq import fit_linear, linear_revin
    from timetok.forecast.baselines import trained_linear_fit
    from timetok.forecast.config import FinetuneConfig
    from timetok.forecast.data import WindowDataModule
    from timetok.forecast.modules import finetune_module

    _save_tiny_language_model(tmp_path / "lm")
    data = WindowDataModule("custom", 32, 8, data_path=str(write_series_csv(tmp_path / "s.csv")))
    data.load()
    train, val = data.windows("train"), data.windows("val")
    config = FinetuneConfig(model=str(tmp_path / "lm"), dataset="etth1", heads="linear",
                            seed=1)  # the recipe of ETTh1's trained DLinear, on these windows
    module = finetune_module(config, config.model, 8, data)
    errors = {("ridge", scale): fit_linear(train, revin, val_windows=val).val_mse
              for scale, revin in (("revin", linear_revin()), ("standard", None))}
    errors["trained", "standard"] = trained_linear_fit(train, val, "etth1", 8).val_mse
    chosen = module.model.config
    assert (chosen.skip_fit, chosen.skip_scale) == min(errors, key=errors.get)
    plain = finetune_module(config.replace(trained_skip=False), config.model, 8, data)
    assert plain.model.config.skip_fit == "ridge"
