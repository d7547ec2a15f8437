import json

import pytest
import torch

from tests.synthetic import mixture
from timetok.core.errors import CheckpointError, ConfigError
from timetok.core.model_folder import PretrainedModel
from timetok.core.nn.quantizer import CodeUsage
from timetok.tokenizer.model import TokenizerConfig, TokenizerModel

SMALL = dict(embedding_dim=16, block_hidden_size=32, res_hidden_size=16, num_embeddings=32)


def tiny(**overrides) -> TokenizerModel:
    torch.manual_seed(0)
    return TokenizerModel(TokenizerConfig(**(dict(n_channels=3, context_points=48) | SMALL
                                                  | overrides)))


def warm(model: TokenizerModel, steps: int = 2) -> TokenizerModel:
    """A few training-mode passes so k-means has initialised the codebook."""
    model.train()
    for _ in range(steps):
        model(mixture(32, model.config.context_points, model.config.n_channels, seed=1))
    return model.eval()


@pytest.mark.parametrize("factor", [4, 8, 12, 16])
def test_shapes_for_every_compression_factor(factor):
    model = tiny(compression_factor=factor)
    x = torch.randn(5, 48, 3)
    out = model(x)
    assert out.codes.shape == (5, 48 // factor, 3)
    assert out.reconstruction.shape == x.shape
    assert out.codes.dtype == torch.long
    assert 0 <= int(out.codes.min()) and int(out.codes.max()) < 32


@pytest.mark.parametrize("patch", [1, 6, 16])
def test_shapes_in_patch_mode(patch):
    model = tiny(patch_size=patch)
    assert model(torch.randn(2, 48, 3)).codes.shape == (2, 48 // patch, 3)


def test_patch_mode_encodes_each_patch_on_its_own():
    model = warm(tiny(patch_size=8, revin=False))  # without RevIN statistics stay put
    x = mixture(1, 48, 3, seed=2)
    changed = x.clone()
    changed[:, 8:16] += 5.0  # second patch only
    before, _ = model.encode(x)
    after, _ = model.encode(changed)
    same = (before == after).all(dim=2).squeeze(0)
    assert same[0] and same[2:].all()


@pytest.mark.parametrize("kind", ["vq", "rvq", "fsq"])
def test_encode_decode_round_trip_matches_forward(kind):
    model = warm(tiny(quantizer=kind, num_embeddings=256 if kind == "fsq" else 32))
    x = mixture(4, 48, 3, seed=3)
    codes, stats = model.encode(x)
    expected = (4, 12, 3) if kind != "rvq" else (4, 12, 3, 2)
    assert codes.shape == expected
    decoded = model.decode(codes, stats)
    torch.testing.assert_close(decoded, model(x).reconstruction, atol=1e-5, rtol=1e-5)


def test_codes_are_deterministic_in_eval():
    model = warm(tiny())
    x = mixture(8, 48, 3, seed=5)
    first, _ = model.encode(x)
    second, _ = model.encode(x)
    assert torch.equal(first, second)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model(x)  # eval forward must not move the codebook either
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_channels_share_weights_and_stay_independent():
    model = warm(tiny())
    x = mixture(2, 48, 3, seed=6)
    codes, _ = model.encode(x)
    swapped, _ = model.encode(x[..., [2, 0, 1]])
    assert torch.equal(swapped, codes[..., [2, 0, 1]])


def test_save_and_load_give_identical_outputs(tmp_path):
    model = warm(tiny(revin_affine=True))
    with torch.no_grad():
        model.revin.weight.mul_(1.7)
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "model.safetensors"}
    loaded = PretrainedModel.from_pretrained(tmp_path)
    assert isinstance(loaded, TokenizerModel)
    x = mixture(4, 48, 3, seed=7)
    torch.testing.assert_close(loaded(x).reconstruction, model(x).reconstruction)
    assert torch.equal(loaded.encode(x)[0], model.encode(x)[0])


def test_load_refuses_weights_of_another_configuration(tmp_path):
    warm(tiny()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["embedding_dim"] = 8
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="mis-shaped"):
        TokenizerModel.from_pretrained(tmp_path)


def test_load_refuses_truncated_weights(tmp_path):
    tiny().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        TokenizerModel.from_pretrained(tmp_path)


def test_wrong_channel_count_and_length_are_refused():
    model = tiny()
    with pytest.raises(ConfigError, match="3 channel"):
        model.encode(torch.randn(1, 48, 2))
    with pytest.raises(ConfigError, match="not divisible"):
        model.encode(torch.randn(1, 50, 3))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(compression_factor=5), "4, 8, 12, 16"),
        (dict(patch_size=7), "not divisible by the patch size 7"),
        (dict(context_points=50), "not divisible by the compression factor 4"),
        (dict(quantizer="pq"), "quantizer must be one of"),
        (dict(quantizer="fsq", num_embeddings=300), "fsq_levels"),
    ],
)
def test_config_errors_quote_the_values(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**overrides)


def test_codebook_usage_on_a_synthetic_mixture():
    """k-means init and dead-code restart keep >= 90 % of the codebook in use."""
    torch.manual_seed(0)
    model = TokenizerModel(TokenizerConfig(
        n_channels=1, context_points=64, num_embeddings=64, embedding_dim=16,
        block_hidden_size=32, res_hidden_size=16,
    ))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(150):
        out = model(mixture(64, 64, 1, seed=100 + step))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    model.eval()
    usage = CodeUsage(64)
    usage.update(model.encode(mixture(2000, 64, 1, seed=7))[0])
    stats = usage.compute()
    assert stats["usage"] >= 0.9, stats
    assert stats["perplexity"] > 32, stats


def test_plain_vq_learns_its_codebook_by_gradient(tmp_path):
    """The benchmark's reference: the codebook is a parameter the loss moves (no EMA)."""
    model = tiny(quantizer="plain-vq")
    codebook = dict(model.named_parameters())["quantizer.impl._codebook.embed"]
    model(mixture(8, 48, 3, seed=8)).loss.backward()
    assert codebook.grad is not None and codebook.grad.abs().sum() > 0
    model.eval().save_pretrained(tmp_path)
    loaded = TokenizerModel.from_pretrained(tmp_path)
    x = mixture(2, 48, 3, seed=9)
    assert torch.equal(loaded.encode(x)[0], model.encode(x)[0])
