"""Reconstruction protocol for tokenizers: every test window, both scales, code statistics."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader

from timetok.core.data.series import SplitData
from timetok.core.errors import ConfigError
from timetok.core.nn.quantizer import CodeUsage
from timetok.core.nn.revin import RevIN
from timetok.tokenizer.model import TokenizerModel


@torch.no_grad()
def evaluate_tokenizer(
    model: TokenizerModel,
    data: SplitData,
    split: str = "test",
    stride: int = 1,
    batch_size: int = 256,
    track: Callable[[Iterable], Iterable] = iter,
    n_samples: int = 3,
) -> tuple[dict, dict]:
    """Reconstruction MSE/MAE per channel and overall, code usage, and a few samples.

    Two scales: the dataset's standardised scale (RevIN inverted: what a forecaster sees)
    and each window's own RevIN scale (what the network is trained on). Returns the
    report (JSON-ready) and arrays for plots: ``samples_x``/``samples_y`` ``[n, T, C]``
    and ``code_counts`` ``[levels, K]``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if split not in data.splits:
        raise ConfigError(f"split must be one of {', '.join(data.splits)}, got {split!r}")
    model.eval()
    windows = data.windows(split, model.config.context_points, 0, stride)
    loader = DataLoader(windows, batch_size=batch_size, shuffle=False)
    revin = RevIN(data.n_channels)
    usage = CodeUsage(model.codebook_size, model.quantizer.levels)
    sq = torch.zeros(data.n_channels, dtype=torch.float64)
    ab = torch.zeros_like(sq)
    sq_revin = torch.zeros_like(sq)
    ab_revin = torch.zeros_like(sq)
    samples_x, samples_y = [], []
    picks = set(np.linspace(0, len(windows) - 1, n_samples).astype(int).tolist())
    seen = 0
    for x, _ in track(loader):
        codes, stats = model.encode(x)
        y = model.decode(codes, stats)
        usage.update(codes)
        err = y - x
        sq += err.double().pow(2).sum(dim=(0, 1))
        ab += err.double().abs().sum(dim=(0, 1))
        xn, window_stats = revin.normalize(x)
        err_n = (y - window_stats.mean) / window_stats.std - xn
        sq_revin += err_n.double().pow(2).sum(dim=(0, 1))
        ab_revin += err_n.double().abs().sum(dim=(0, 1))
        for i in sorted(p - seen for p in picks if seen <= p < seen + len(x)):
            samples_x.append(x[i].numpy())
            samples_y.append(y[i].numpy())
        seen += len(x)
    points = len(windows) * model.config.context_points
    per_channel = {
        name: {"mse": float(sq[c] / points), "mae": float(ab[c] / points)}
        for c, name in enumerate(data.columns)
    }
    total = points * data.n_channels
    report = {
        "dataset": data.name,
        "split": split,
        "windows": len(windows),
        "context_points": model.config.context_points,
        "stride": stride,
        "mse": float(sq.sum() / total),
        "mae": float(ab.sum() / total),
        "mse_revin": float(sq_revin.sum() / total),
        "mae_revin": float(ab_revin.sum() / total),
        "codebook_size": model.codebook_size,
        **usage.compute(),
        "per_channel": per_channel,
    }
    extras = {
        "samples_x": np.stack(samples_x),
        "samples_y": np.stack(samples_y),
        "code_counts": usage.counts.cpu().numpy(),
    }
    return report, extras
