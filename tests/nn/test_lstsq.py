import pytest
import torch
from torch.utils.data import TensorDataset

from tests.synthetic import mixture
from timetok.nn.lstsq import apply_linear, fit_linear
from timetok.nn.revin import RevIN


def _pairs(x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
    return TensorDataset(x[..., None], y[..., None])  # channel-independent ([L, 1], [H, 1])


def test_recovers_a_noiseless_linear_map():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 12, generator=gen)
    weights = torch.randn(13, 4, generator=gen)
    y = torch.cat([x, torch.ones(500, 1)], dim=1) @ weights
    fitted = fit_linear(_pairs(x, y), ridge=1e-9, batch_size=64)
    torch.testing.assert_close(fitted, weights, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(apply_linear(fitted, x[:3, :, None])[..., 0], y[:3],
                               atol=1e-3, rtol=1e-3)


def test_on_the_revin_scale_it_learns_what_is_linear_only_there():
    # The future is the context's last value scaled by a window-dependent level: linear
    # on the RevIN scale (y = x_last), and the fit must find it.
    context = mixture(300, 32, 1, seed=1)[..., 0] * torch.rand(300, 1) * 10
    future = context[:, -1:].expand(-1, 6)
    revin = RevIN(1)
    fitted = fit_linear(_pairs(context, future), ridge=1e-9, transform=revin.pair_transform)
    normed, stats = revin.normalize(context[:5, :, None])
    pred = revin.denormalize(apply_linear(fitted, normed), stats)[..., 0]
    torch.testing.assert_close(pred, future[:5], atol=1e-3, rtol=1e-3)


def test_no_windows_is_an_error():
    with pytest.raises(ValueError, match="no windows"):
        fit_linear(TensorDataset(torch.zeros(0, 8, 1), torch.zeros(0, 2, 1)))
