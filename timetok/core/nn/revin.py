"""Reversible instance normalisation (Kim et al., ICLR 2022), per window and channel."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class RevinStats(NamedTuple):
    """What ``RevIN.denormalize`` needs to undo a normalisation: ``[B, 1, C]`` each."""

    mean: Tensor
    std: Tensor


class RevIN(nn.Module):
    """Normalise each window and channel to zero mean and unit variance, and back.

    With ``affine`` a learned per-channel scale and shift follow the normalisation; the
    inverse divides them out first, so ``denormalize(normalize(x))`` returns ``x``. The
    deviation is ``sqrt(var + eps)``, raised to ``min_std`` where it is lower (0: never),
    so a (near) flat window is not blown up.
    """

    def __init__(self, n_channels: int, affine: bool = False, eps: float = 1e-5,
                 min_std: float = 0.0):
        super().__init__()
        self.eps = eps
        self.min_std = min_std
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(n_channels))
            self.bias = nn.Parameter(torch.zeros(n_channels))

    def normalize(self, x: Tensor) -> tuple[Tensor, RevinStats]:
        """``x: [B, T, C]`` -> normalised ``[B, T, C]`` and the statistics to invert it."""
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps)
        std = std.clamp_min(self.min_std).detach()
        stats = RevinStats(mean, std)
        return self.normalize_with(x, stats), stats

    def normalize_with(self, y: Tensor, stats: RevinStats) -> Tensor:
        """Normalise ``y`` with statistics taken elsewhere (a future with its context's)."""
        y = (y - stats.mean) / stats.std
        if self.affine:
            y = y * self.weight + self.bias
        return y

    def pair_transform(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Series ``x: [S, L]`` and their futures ``[S, H]``, both on the scale of ``x``,
        and each series' deviation ``[S, 1]``: an error there times it is the error on the
        series' own scale (without ``affine``)."""
        normed, stats = self.normalize(x[..., None])
        return (normed[..., 0], self.normalize_with(y[..., None], stats)[..., 0],
                stats.std[..., 0])

    def denormalize(self, y: Tensor, stats: RevinStats) -> Tensor:
        if self.affine:
            y = (y - self.bias) / self.weight
        return y * stats.std + stats.mean
