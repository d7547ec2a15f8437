import pytest
import torch
from torch.utils.data import TensorDataset

from tests.synthetic import mixture
from timetok.core.data.windows import WindowDataset
from timetok.core.nn.lstsq import (
    RIDGES,
    apply_linear,
    apply_rlinear,
    fit_linear,
    linear_mse,
    linear_revin,
)


def _pairs(x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
    return TensorDataset(x[..., None], y[..., None])  # channel-independent ([L, 1], [H, 1])


def _noisy(n: int, context: int, horizon: int, seed: int) -> TensorDataset:
    """Few windows, a long context, noisy targets: a regime where the penalty pays."""
    gen = torch.Generator().manual_seed(seed)
    x = mixture(n, context + horizon, 1, seed=seed)[..., 0]
    truth = torch.linspace(0, 1, horizon)[None] * x[:, context - 1:context]
    y = truth + torch.randn(n, horizon, generator=gen)
    return _pairs(x[:, :context], y)


def test_recovers_a_noiseless_linear_map():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 12, generator=gen)
    weights = torch.randn(13, 4, generator=gen)
    y = torch.cat([x, torch.ones(500, 1)], dim=1) @ weights
    fit = fit_linear(_pairs(x, y), ridge=1e-9, batch_size=64)
    assert fit.ridge == 1e-9 and fit.val_mse is None
    torch.testing.assert_close(fit.weights, weights, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(apply_linear(fit.weights, x[:3, :, None])[..., 0], y[:3],
                               atol=1e-3, rtol=1e-3)


def test_on_the_revin_scale_it_learns_what_is_linear_only_there():
    # The future is the context's last value scaled by a window-dependent level: linear
    # on the RevIN scale (y = x_last), and the fit must find it.
    context = mixture(300, 32, 1, seed=1)[..., 0] * torch.rand(300, 1) * 10
    future = context[:, -1:].expand(-1, 6)
    revin = linear_revin()
    fit = fit_linear(_pairs(context, future), revin, ridge=1e-9)
    pred = apply_rlinear(fit.weights, context[:5, :, None], revin)[..., 0]
    torch.testing.assert_close(pred, future[:5], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("revin", [None, linear_revin()], ids=["standard", "revin"])
def test_the_eigendecomposition_solves_the_penalised_normal_equations(revin):
    data = _noisy(80, 24, 5, seed=2)
    x, y = data.tensors[0][..., 0], data.tensors[1][..., 0]
    weight = torch.ones(len(x), 1)
    if revin is not None:  # each window's error counts on the data's scale
        x, y, weight = revin.pair_transform(x, y)
    a = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
    weighted = a * weight.square().double()
    gram, cross = weighted.T @ a, weighted.T @ y.double()
    for ridge in (1e-3, 0.3):
        penalty = ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=torch.float64)
        direct = torch.linalg.solve(gram + penalty, cross.double()).float()
        torch.testing.assert_close(fit_linear(data, revin, ridge=ridge).weights, direct,
                                   atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("revin", [None, linear_revin()], ids=["standard", "revin"])
def test_the_validation_mse_from_sums_is_the_mse_of_the_forecasts(revin):
    train, val = _noisy(80, 24, 5, seed=3), _noisy(40, 24, 5, seed=4)
    for ridges in ((0.0,), (1e-2,), RIDGES):
        fit = fit_linear(train, revin, val_windows=val, ridges=ridges)
        weights = fit.weights
        forecast = ((lambda x, w=weights: apply_linear(w, x)) if revin is None
                    else (lambda x, w=weights: apply_rlinear(w, x, revin)))
        assert fit.val_mse == pytest.approx(linear_mse(val, forecast), rel=1e-4)


@pytest.mark.parametrize("revin", [None, linear_revin()], ids=["standard", "revin"])
def test_validation_picks_a_penalty_where_one_pays(revin):
    train, val = _noisy(60, 48, 4, seed=5), _noisy(200, 48, 4, seed=6)
    fit = fit_linear(train, revin, val_windows=val)
    unpenalised = fit_linear(train, revin, val_windows=val, ridges=(0.0,))
    assert fit.ridge > 0
    assert fit.val_mse <= unpenalised.val_mse
    assert fit.val_mse == min(fit_linear(train, revin, val_windows=val, ridges=(r,)).val_mse
                              for r in RIDGES)


def _flat_series(rows: int = 600) -> torch.Tensor:
    """``[rows, 3]``: a constant; steps between long flat stretches; 1 plus 1e-6 noise."""
    gen = torch.Generator().manual_seed(7)
    steps = torch.randn(rows // 50, generator=gen).repeat_interleave(50)
    return torch.stack([torch.full((rows,), 5.0), steps,
                        1 + 1e-6 * torch.randn(rows, generator=gen)], dim=1)


@pytest.mark.parametrize("revin", [None, linear_revin()], ids=["standard", "revin"])
def test_flat_windows_never_blow_the_forecast_up(revin):
    series = _flat_series()
    context, horizon = 32, 24
    train, val = (WindowDataset(part, context, horizon) for part in (series[:400],
                                                                     series[400:]))
    contexts = series.unfold(0, context, 1).transpose(1, 2)  # every window, [B, L, 3]
    low, high = series.min(dim=0).values, series.max(dim=0).values
    margin = 0.25 * float(high.max() - low.min())  # the fit before the floor overshot 1.9x
    for ridges in ((0.0,), RIDGES):
        fit = fit_linear(train, revin, val_windows=val, ridges=ridges)
        pred = (apply_linear(fit.weights, contexts) if revin is None
                else apply_rlinear(fit.weights, contexts, revin))
        assert torch.isfinite(pred).all()
        assert ((low - margin <= pred) & (pred <= high + margin)).all()  # each channel's
        assert fit.val_mse <= margin ** 2


def test_no_windows_is_an_error():
    with pytest.raises(ValueError, match="no windows"):
        fit_linear(TensorDataset(torch.zeros(0, 8, 1), torch.zeros(0, 2, 1)))
