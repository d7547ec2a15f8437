"""Closed-form linear forecasts: one ridge least-squares map from a context to a horizon.

The map works on the data's scale (DLinear's class) or on the RevIN scale (RLinear). The
ridge penalty is relative to the mean diagonal of the normal equations, so it is
scale-free. Given validation windows it is chosen from a grid: one eigendecomposition of
the training normal equations gives every penalty's solution, and the validation normal
equations give every solution's validation MSE from sums alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from einops import rearrange
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from timetok.core.errors import DataError
from timetok.core.nn.revin import RevIN

# Relative penalties tried on validation windows: none, then 1e-4 to 1e2 by half decades.
RIDGES = (0.0, *(10 ** (k / 2) for k in range(-8, 5)))
# The RevIN scale's floor on a window's deviation. The fits read windows standardised with
# the training split's statistics (each channel's deviation over it is 1); a context
# flatter than a tenth of that holds no scale worth amplifying more than tenfold.
MIN_STD = 0.1


def linear_revin(min_std: float = MIN_STD) -> RevIN:
    """The RevIN of the linear maps' RevIN scale: no affine weights (so it fits any channel
    count) and a floor of ``min_std`` on each window's deviation."""
    return RevIN(1, min_std=min_std)


@dataclass(frozen=True)
class LinearFit:
    """A fitted map: ``weights`` ``[L + 1, H]`` (bias last), its relative ``ridge`` (``None``
    for a map trained by gradient steps) and its MSE on the data's scale over the
    validation windows (``None`` without them)."""

    weights: Tensor
    ridge: float | None
    val_mse: float | None = None


class _Sums(NamedTuple):
    """Weighted normal equations over pairs: ``A^T D A``, ``A^T D Y``, the sum of ``D Y^2``
    and the number of target values, ``A`` the contexts with a column of ones, ``D`` the
    squared RevIN deviations (ones on the data's scale)."""

    gram: Tensor
    cross: Tensor
    square: float
    count: int


def _sums(windows: Dataset, revin: RevIN | None, batch_size: int, purpose: str) -> _Sums:
    gram = cross = None
    square, count = 0.0, 0
    channels = windows[0][0].shape[-1] if len(windows) else 1
    for x, y in DataLoader(windows, batch_size=max(1, batch_size // channels)):
        x, y = (rearrange(t, "b t c -> (b c) t") for t in (x, y))
        weight = torch.ones(len(x), 1)
        if revin is not None:
            x, y, weight = revin.pair_transform(x, y)
            weight = weight.square()
        a = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
        weighted, y = a * weight.double(), y.double()
        if gram is None:
            gram = torch.zeros(a.shape[1], a.shape[1], dtype=torch.float64)
            cross = torch.zeros(a.shape[1], y.shape[1], dtype=torch.float64)
        gram += weighted.T @ a
        cross += weighted.T @ y
        square += float((weight.double() * y.square()).sum())
        count += y.numel()
    if gram is None:
        raise DataError(f"no windows to {purpose}; pass a longer series or a shorter "
                        "context or horizon")
    return _Sums(gram, cross, square, count)


def fit_linear(
    windows: Dataset,
    revin: RevIN | None = None,
    val_windows: Dataset | None = None,
    ridge: float = 1e-3,
    ridges: Sequence[float] = RIDGES,
    batch_size: int = 4096,
) -> LinearFit:
    """The ridge least-squares map from contexts to horizons over ``windows``.

    ``windows`` (and ``val_windows``) yield pairs ``([L, C], [H, C])``, every channel a
    series of its own. With ``revin`` (see :func:`linear_revin`) the map works on its
    scale, and each window's squared error there is weighted by its squared deviation: the
    error on the data's scale, which a trained RLinear minimises too (unweighted, flat
    windows' huge normalised futures would dominate). With ``val_windows`` the penalty is
    the one of ``ridges`` with the lowest validation MSE; without, it is ``ridge`` (1e-3,
    the fixed penalty of old). Unpenalised, directions the training windows leave
    (numerically) unconstrained get no weight (the minimum-norm solution), so even
    ``ridge`` 0 gives a finite map. ``batch_size`` counts series (window channels).
    """
    train = _sums(windows, revin, batch_size, "fit a linear map on")
    eigenvalues, vectors = torch.linalg.eigh(train.gram)
    # The windows are float32: a singular value under eps * sqrt(L + 1) times the largest
    # is rounding, and so is an eigenvalue under its square (RevIN's zero-mean direction).
    tolerance = eigenvalues.max() * len(eigenvalues) * torch.finfo(torch.float32).eps ** 2
    scale = train.gram.diagonal().mean()
    rotated = vectors.T @ train.cross  # the map is vectors @ (inverse(r)[:, None] * rotated)

    def inverse(r: float) -> Tensor:  # of the penalised eigenvalues, 0 where singular
        shifted = eigenvalues + r * scale
        return torch.where(shifted > tolerance, 1 / shifted, torch.zeros_like(shifted))

    val_mse = None
    if val_windows is not None:
        val = _sums(val_windows, revin, batch_size, "choose the penalty on")
        # tr(W^T A W) = d^T (V^T A V * R R^T) d and tr(W^T B) = d . rowsum(R * V^T B)
        # for W = V diag(d) R, R = V^T X^T Y: each penalty's MSE in O(L^2).
        quadratic = (vectors.T @ val.gram @ vectors) * (rotated @ rotated.T)
        linear = (rotated * (vectors.T @ val.cross)).sum(dim=1)
        errors = torch.stack([(d @ quadratic @ d - 2 * d @ linear + val.square) / val.count
                              for d in map(inverse, ridges)])
        best = int(errors.argmin())
        ridge, val_mse = ridges[best], float(errors[best])
    weights = vectors @ (inverse(ridge)[:, None] * rotated)
    return LinearFit(weights.float(), ridge, val_mse)


def apply_linear(weights: Tensor, x: Tensor) -> Tensor:
    """``x: [B, L, C]`` -> ``[B, H, C]`` with one map shared by the channels."""
    a = torch.cat([x, torch.ones(x.shape[0], 1, x.shape[2])], dim=1)
    return torch.einsum("blc,lh->bhc", a, weights)


def apply_rlinear(weights: Tensor, x: Tensor, revin: RevIN | None = None) -> Tensor:
    """A map fitted on the RevIN scale (RLinear), applied to ``x: [B, L, C]``; ``revin``
    defaults to :func:`linear_revin`'s."""
    revin = revin or linear_revin()
    normed, stats = revin.normalize(x)
    return revin.denormalize(apply_linear(weights, normed), stats)


@torch.no_grad()
def linear_mse(windows: Dataset, predict: Callable[[Tensor], Tensor],
               batch_size: int = 4096) -> float:
    """Mean squared error of ``predict`` (``[S, L, C]`` -> ``[S, H, C]``) over ``windows``."""
    total, count = 0.0, 0
    for x, y in DataLoader(windows, batch_size=batch_size):
        total += float((predict(x) - y).double().pow(2).sum())
        count += y.numel()
    if not count:
        raise DataError("no windows to measure the error on; pass a longer series or a shorter "
                        "context or horizon")
    return total / count
