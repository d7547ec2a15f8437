"""Closed-form linear forecasts: one ridge least-squares map from a context to a horizon."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from timetok.errors import DataError
from timetok.nn.revin import RevIN


def fit_linear(
    windows: Dataset,
    ridge: float = 1e-3,
    batch_size: int = 4096,
    transform: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
) -> Tensor:
    """Weights ``[L + 1, H]`` (bias last) minimising the squared error over ``windows``.

    ``windows`` yields channel-independent pairs ``([L, 1], [H, 1])``; ``transform`` maps a
    batch of pairs ``[S, L]``, ``[S, H]`` to the scale the map should work on. The ridge
    term is relative to the mean diagonal of the normal equations, so it is scale-free.
    """
    xtx = xty = None
    for x, y in DataLoader(windows, batch_size=batch_size):
        x, y = x[..., 0], y[..., 0]
        if transform is not None:
            x, y = transform(x, y)
        a = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
        if xtx is None:
            xtx = torch.zeros(a.shape[1], a.shape[1], dtype=torch.float64)
            xty = torch.zeros(a.shape[1], y.shape[1], dtype=torch.float64)
        xtx += a.T @ a
        xty += a.T @ y.double()
    if xtx is None:
        raise DataError("no windows to fit a linear map on; pass a longer series or a shorter "
                        "context or horizon")
    xtx += ridge * torch.eye(len(xtx), dtype=torch.float64) * xtx.diagonal().mean()
    return torch.linalg.solve(xtx, xty).float()


def apply_linear(weights: Tensor, x: Tensor) -> Tensor:
    """``x: [B, L, C]`` -> ``[B, H, C]`` with one map shared by the channels."""
    a = torch.cat([x, torch.ones(x.shape[0], 1, x.shape[2])], dim=1)
    return torch.einsum("blc,lh->bhc", a, weights)


def apply_rlinear(weights: Tensor, x: Tensor, revin: RevIN | None = None) -> Tensor:
    """A map fitted on the RevIN scale (RLinear), applied to ``x: [B, L, C]``."""
    revin = revin or RevIN(1)  # without affine weights it fits any channel count
    normed, stats = revin.normalize(x)
    return revin.denormalize(apply_linear(weights, normed), stats)


def linear_mse(windows: Dataset, predict: Callable[[Tensor], Tensor],
               batch_size: int = 4096) -> float:
    """Mean squared error of ``predict`` (``[S, L, 1]`` -> ``[S, H, 1]``) over ``windows``."""
    total, count = 0.0, 0
    for x, y in DataLoader(windows, batch_size=batch_size):
        total += float((predict(x) - y).double().pow(2).sum())
        count += y.numel()
    if not count:
        raise DataError("no windows to measure the error on; pass a longer series or a shorter "
                        "context or horizon")
    return total / count
