import numpy as np
import pytest
import torch

from timetok.core.errors import CheckpointError, ConfigError
from timetok.core.model_folder import PretrainedModel
from timetok.core.nn.sampling import Sampling
from timetok.doppler.model import (
    GeneratorConfig,
    GeneratorModel,
    SpectrogramTokenizer,
    SpectrogramTokenizerConfig,
)

TOK = dict(image_size=32, channels=[8, 16], embedding_dim=8, num_embeddings=16)


def generator(users=("ann", "bob", "cy"), **sizes) -> GeneratorModel:
    torch.manual_seed(0)
    sizes = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0) | sizes
    return GeneratorModel(GeneratorConfig(SpectrogramTokenizerConfig(**TOK), list(users),
                                                **sizes)).eval()


def test_tokenizer_round_trip_shapes_and_codes():
    torch.manual_seed(0)
    tok = SpectrogramTokenizer(SpectrogramTokenizerConfig(**TOK))
    x = torch.rand(4, 32, 32)
    tok.train()
    out = tok(x)  # k-means initialises the codebook
    assert out.codes.shape == (4, 8, 8) and out.reconstruction.shape == (4, 32, 32)
    assert out.loss.isfinite() and out.recon_loss >= 0
    tok.eval()
    codes = tok.encode(x)
    assert codes.min() >= 0 and codes.max() < 16
    # decode(encode(x)) is the forward pass's reconstruction in eval mode
    assert torch.allclose(tok.decode(codes), tok(x).reconstruction, atol=1e-6)
    assert 0 <= float(tok.decode(codes).min()) and float(tok.decode(codes).max()) <= 1


def test_tokenizer_learns_to_reconstruct():
    torch.manual_seed(0)
    tok = SpectrogramTokenizer(SpectrogramTokenizerConfig(**TOK))
    rows = torch.arange(32)[:, None]
    x = torch.stack([((rows - 4 * k).abs() < 2).float().expand(32, 32) for k in range(8)])
    opt = torch.optim.Adam(tok.parameters(), 3e-3)
    first = None
    for _ in range(60):
        out = tok(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else out.recon_loss.item()
    assert out.recon_loss.item() < 0.3 * first


def test_tokenizer_config_refusals():
    with pytest.raises(ConfigError, match="divisible by 8"):
        SpectrogramTokenizerConfig(image_size=36, channels=[8, 8, 8])
    with pytest.raises(ConfigError, match="residual VQ"):
        SpectrogramTokenizerConfig(**(TOK | {"quantizer": "rvq"}))
    with pytest.raises(ConfigError, match="shape"):
        SpectrogramTokenizer(SpectrogramTokenizerConfig(**TOK)).encode(torch.rand(2, 16, 16))


def test_conditioning_changes_logits_and_null_prefix_does_not():
    gen = generator()
    codes = torch.randint(0, 16, (1, 64)).expand(3, -1)
    users = torch.tensor([[0], [1], [2]])
    logits = gen.prior(codes, users)
    assert not torch.allclose(logits[0], logits[1]) and not torch.allclose(logits[1], logits[2])
    nulls = gen.prior(codes, gen.prior.null_conditions(3))
    assert torch.allclose(nulls[0], nulls[1]) and torch.allclose(nulls[1], nulls[2])


@pytest.mark.parametrize("grid_positions, every", [(False, False), (True, False), (True, True)])
def test_generate_shapes_order_determinism_and_cache(grid_positions, every):
    gen = generator(grid_positions=grid_positions, user_every_code=every)
    images = gen.generate(["bob", 0], num_samples=2, seed=3)
    assert images.shape == (4, 32, 32) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    again = gen.generate(["bob", 0], num_samples=2, seed=3)
    np.testing.assert_array_equal(images, again)
    cached = gen.generate_codes([1], 2, Sampling(temperature=0))
    uncached = gen.generate_codes([1], 2, Sampling(temperature=0), use_cache=False)
    assert torch.equal(cached, uncached)
    guided = gen.generate_codes([1], 1, Sampling(temperature=0), guidance_scale=3.0)
    assert guided.shape == (1, 8, 8)


def test_unknown_users_are_refused():
    gen = generator()
    with pytest.raises(ConfigError, match="outside the trained range 0...2"):
        gen.generate([3])
    with pytest.raises(ConfigError, match="unknown user 'dan'"):
        gen.generate(["dan"])


@pytest.mark.parametrize("grid_positions, every", [(False, False), (True, False), (True, True)])
def test_generator_saves_and_loads(tmp_path, grid_positions, every):
    gen = generator(grid_positions=grid_positions, user_every_code=every)
    assert gen.prior.config.grid_width == (8 if grid_positions else 0)
    assert gen.prior.config.condition_every_code == every
    gen.save_pretrained(tmp_path / "gen")
    loaded = PretrainedModel.from_pretrained(tmp_path / "gen")
    assert isinstance(loaded, GeneratorModel)
    assert loaded.config == gen.config
    np.testing.assert_array_equal(loaded.generate([2], 2, seed=1), gen.generate([2], 2, seed=1))
    with pytest.raises(CheckpointError, match="spectrogram-generator"):
        SpectrogramTokenizer.from_pretrained(tmp_path / "gen")


def test_tokenizer_stays_frozen_in_training_mode():
    gen = generator()
    gen.train()
    assert not gen.tokenizer.training and gen.prior.training
    assert not any(p.requires_grad for p in gen.tokenizer.parameters())
