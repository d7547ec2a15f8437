import math

import pytest
import torch

from timetok.core.errors import ConfigError
from timetok.core.nn.quantizer import CodeUsage, Quantizer, fsq_levels_for


@pytest.mark.parametrize("kind", ["vq", "rvq", "fsq"])
def test_fixed_returns_and_round_trip(kind):
    torch.manual_seed(0)
    quantizer = Quantizer(kind, dim=8, codebook_size=256 if kind == "fsq" else 16, levels=3)
    z = torch.randn(4, 10, 8)
    quantized, indices, loss = quantizer(z)
    assert quantized.shape == z.shape
    assert indices.shape == ((4, 10, 3) if kind == "rvq" else (4, 10))
    assert loss.ndim == 0
    quantizer.eval()
    quantized, indices, _ = quantizer(z)
    torch.testing.assert_close(quantizer.decode_indices(indices), quantized)
    assert quantizer.codebook.shape == (quantizer.codebook_size, 8)


@pytest.mark.parametrize("kind", ["vq", "rvq", "fsq"])
def test_mixed_precision_picks_the_float32_codes(kind):
    # In bf16 the nearest-code search picks another code for about 0.7 % of these vectors.
    torch.manual_seed(0)
    quantizer = Quantizer(kind, 64, 256, kmeans_init=False).eval()
    z = torch.randn(4, 256, 64)
    _, expected, _ = quantizer(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        quantized, indices, _ = quantizer(z)
    assert torch.equal(indices, expected)
    assert quantized.dtype == torch.float32


def test_fsq_codebook_size_is_the_product_of_levels():
    assert Quantizer("fsq", 8, 1024).codebook_size == math.prod(fsq_levels_for(1024))
    assert Quantizer("fsq", 8, 0 + 2, fsq_levels=[3, 3]).codebook_size == 9
    with pytest.raises(ConfigError, match=">= 2"):
        fsq_levels_for(16, [1, 4])


def test_code_usage_statistics():
    usage = CodeUsage(4)
    usage.update(torch.tensor([0, 0, 1, 1]))
    stats = usage.compute()
    assert stats["usage"] == 0.5
    assert stats["dead_codes"] == 2
    assert stats["perplexity"] == pytest.approx(2.0)
    assert stats["entropy_bits"] == pytest.approx(1.0)
    usage.reset()
    assert usage.counts.sum() == 0


def test_code_usage_per_level():
    usage = CodeUsage(4, levels=2)
    usage.update(torch.tensor([[[0, 1], [1, 1]]]))
    assert usage.counts.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0]]
    assert usage.compute()["usage"] == pytest.approx((0.5 + 0.25) / 2)


def test_dead_code_restarts_are_counted_in_training_only():
    torch.manual_seed(0)
    quantizer = Quantizer("vq", 8, 64, kmeans_init=False)
    quantizer.train()
    for _ in range(5):  # a narrow batch: most codes go unused and are re-seeded
        quantizer(torch.randn(2, 4, 8) * 0.01)
    restarted = quantizer.restarts
    assert restarted > 0
    quantizer.eval()
    quantizer(torch.randn(2, 4, 8))
    assert quantizer.restarts == restarted
    assert Quantizer("fsq", 4, 256).restarts == 0
