import dataclasses

import pytest
import torch

from tests.synthetic import mixture
from timetok.models.forecaster import ForecasterConfig
from timetok.models.tokenizer import TokenizerConfig
from timetok.train.forecaster import PretrainModule


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
