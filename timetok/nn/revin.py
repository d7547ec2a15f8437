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
    inverse divides them out first, so ``denormalize(normalize(x))`` returns ``x``.
    """

    def __init__(self, n_channels: int, affine: bool = False, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(n_channels))
            self.bias = nn.Parameter(torch.zeros(n_channels))

    def normalize(self, x: Tensor) -> tuple[Tensor, RevinStats]:
        """``x: [B, T, C]`` -> normalised ``[B, T, C]`` and the statistics to invert it."""
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        y = (x - mean) / std
        if self.affine:
            y = y * self.weight + self.bias
        return y, RevinStats(mean, std)

    def denormalize(self, y: Tensor, stats: RevinStats) -> Tensor:
        if self.affine:
            y = (y - self.bias) / self.weight
        return y * stats.std + stats.mean
