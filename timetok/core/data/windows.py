"""Sliding windows over a series, indexed lazily: memory grows with the series only."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from timetok.core.errors import DataError


class WindowDataset(Dataset):
    """Windows of ``context`` (+ ``target``) rows over one ``[rows, channels]`` array.

    Item ``i`` is ``(x, y)`` with ``x: [context, C]`` and ``y: [target, C]`` (``[0, C]``
    when ``target`` is 0). With ``channel_independent`` every channel of every window is
    an item of its own and ``C`` is 1. Items are views into one shared tensor.
    """

    def __init__(
        self,
        values: np.ndarray | torch.Tensor,
        context: int,
        target: int = 0,
        stride: int = 1,
        channel_independent: bool = False,
        where: str = "the series",
    ):
        for name, value, least in (("context_points", context, 1),
                                   ("target_points", target, 0), ("stride", stride, 1)):
            if value < least:
                raise DataError(f"{name} must be >= {least}, got {value}")
        self.values = torch.as_tensor(values, dtype=torch.float32)
        if self.values.ndim != 2:
            raise DataError(f"expected a [rows, channels] array, got shape {tuple(values.shape)}")
        self.context, self.target, self.stride = context, target, stride
        self.channel_independent = channel_independent
        rows, length = len(self.values), context + target
        if rows < length:
            raise DataError(
                f"{where} has {rows} rows, one window needs context + target = {length}; "
                "use a smaller context_points or target_points, or a longer series"
            )
        self.n_windows = (rows - length) // stride + 1

    @property
    def n_channels(self) -> int:
        return 1 if self.channel_independent else self.values.shape[1]

    def __len__(self) -> int:
        if self.channel_independent:
            return self.n_windows * self.values.shape[1]
        return self.n_windows

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        channel = None
        if self.channel_independent:
            index, channel = divmod(index, self.values.shape[1])
        start = index * self.stride
        window = self.values[start : start + self.context + self.target]
        if channel is not None:
            window = window[:, channel : channel + 1]
        return window[: self.context], window[self.context :]
