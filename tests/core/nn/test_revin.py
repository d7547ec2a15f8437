import pytest
import torch

from timetok.core.nn.revin import RevIN


def test_inversion_is_exact_without_affine():
    x = torch.randn(4, 50, 3) * 7 + 3
    revin = RevIN(3)
    y, stats = revin.normalize(x)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(4, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(revin.denormalize(y, stats), x, atol=1e-5, rtol=1e-6)


def test_inversion_is_exact_with_affine():
    x = torch.randn(4, 50, 3) * 0.01 - 100
    revin = RevIN(3, affine=True)
    with torch.no_grad():
        revin.weight.copy_(torch.tensor([0.5, 2.0, -1.5]))
        revin.bias.copy_(torch.tensor([1.0, -3.0, 0.2]))
    y, stats = revin.normalize(x)
    torch.testing.assert_close(revin.denormalize(y, stats), x, atol=1e-4, rtol=1e-6)


def test_constant_window_survives():
    x = torch.full((1, 16, 2), 5.0)
    revin = RevIN(2)
    y, stats = revin.normalize(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(revin.denormalize(y, stats), x)


def test_a_future_is_normalised_with_its_context_statistics():
    context, future = torch.randn(5, 40) * 3 + 2, torch.randn(5, 8)
    x, y, scale = RevIN(1).pair_transform(context, future)
    mean, std = context.mean(1, keepdim=True), context.std(1, unbiased=False, keepdim=True)
    torch.testing.assert_close(x, (context - mean) / std, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y, (future - mean) / std, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scale, std, atol=1e-4, rtol=1e-4)


def test_the_deviation_floor_holds_flat_windows_only():
    x = torch.stack([torch.randn(64), 3 + 1e-6 * torch.randn(64)], dim=1)[None]  # [1, 64, 2]
    plain, floored = RevIN(2), RevIN(2, min_std=0.1)
    (y, _), (y_floor, stats_floor) = plain.normalize(x), floored.normalize(x)
    torch.testing.assert_close(y_floor[..., 0], y[..., 0])  # a varied window: untouched
    assert float(stats_floor.std[0, 0, 1]) == pytest.approx(0.1)
    assert y_floor[..., 1].abs().max() < 1e-4 < y[..., 1].abs().max()
    torch.testing.assert_close(floored.denormalize(y_floor, stats_floor), x)
