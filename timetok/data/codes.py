"""Code files: a series cut into windows, tokenised, saved; and decoded back to CSV.

``codes.npy`` holds integer codes ``[windows, T/f, C]`` (``[..., levels]`` for residual
VQ); ``codes.stats.npz`` beside it holds each window's RevIN statistics and the column
names, which decoding needs to restore the original scale.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from timetok.data.scaler import Scaler
from timetok.data.series import Series
from timetok.errors import ConfigError, DataError
from timetok.utils import atomic_write_bytes, atomic_write_text


def stats_path(codes_path: Path) -> Path:
    return codes_path.with_name(codes_path.stem + ".stats.npz")


def _scaler(model_dir: Path, n_channels: int) -> Scaler:
    path = model_dir / "scaler.json"
    if path.is_file():
        return Scaler.load(path)
    return Scaler(np.zeros(n_channels, np.float32), np.ones(n_channels, np.float32))


def _npy_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    if len(arrays) == 1:
        np.save(buffer, next(iter(arrays.values())), allow_pickle=False)
    else:
        np.savez(buffer, **arrays)
    return buffer.getvalue()


def encode_series(model, model_dir: Path, series: Series, output: Path,
                  batch_size: int = 256) -> tuple[int, int]:
    """Tokenise non-overlapping windows of a series; returns (windows, rows left out)."""
    context, n_channels = model.config.context_points, model.config.n_channels
    if series.values.shape[1] != n_channels:
        raise ConfigError(
            f"the model was trained on {n_channels} channel(s), {series.path.name} has "
            f"{series.values.shape[1]}; pass a CSV with the same columns"
        )
    n_windows = len(series.values) // context
    if n_windows == 0:
        raise DataError(
            f"{series.path.name} has {len(series.values)} rows, fewer than the model's context "
            f"of {context}; pass a longer series"
        )
    scaled = _scaler(model_dir, n_channels).transform(series.values[: n_windows * context])
    windows = torch.from_numpy(scaled).reshape(n_windows, context, n_channels)
    codes, means, stds = [], [], []
    for batch in windows.split(batch_size):
        c, stats = model.encode(batch)
        codes.append(c)
        if stats is not None:
            means.append(stats.mean)
            stds.append(stats.std)
    stats_arrays = {"columns": np.array(series.columns), "context": np.array(context)}
    if means:
        stats_arrays |= {"mean": torch.cat(means).numpy(), "std": torch.cat(stds).numpy()}
    atomic_write_bytes(stats_path(output), _npy_bytes(**stats_arrays))
    atomic_write_bytes(output, _npy_bytes(codes=torch.cat(codes).numpy().astype(np.int64)))
    return n_windows, len(series.values) - n_windows * context


def _load_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{what} not found: {path}; run 'timetok tokenizer encode' first")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} is not a readable NumPy file ({err}); re-run encode") from None


def decode_series(model, model_dir: Path, codes_path: Path, output: Path,
                  batch_size: int = 256) -> int:
    """Decode a codes file to a CSV on the original scale; returns the number of rows."""
    from timetok.nn.revin import RevinStats

    codes = _load_npy(codes_path, "codes file")
    stats = _load_npy(stats_path(codes_path), "statistics file")
    n_channels, levels = model.config.n_channels, model.quantizer.levels
    expected_ndim = 3 if levels == 1 else 4
    if codes.ndim != expected_ndim or codes.shape[2] != n_channels or (
        levels > 1 and codes.shape[3] != levels
    ):
        raise ConfigError(
            f"codes of shape {codes.shape} do not fit this model (windows, positions, "
            f"{n_channels} channels{f', {levels} levels' if levels > 1 else ''}); "
            "decode with the model that encoded them"
        )
    positions = model.config.context_points // model.compression
    if codes.shape[1] != positions or int(stats["context"]) != model.config.context_points:
        raise ConfigError(
            f"{codes_path.name} has {codes.shape[1]} positions per window, this model makes "
            f"{positions} "
            f"(context {model.config.context_points}); decode with the model that encoded them"
        )
    if "mean" in stats and len(stats["mean"]) != len(codes):
        raise DataError(
            f"{codes_path} has {len(codes)} windows but its statistics file has "
            f"{len(stats['mean'])}; keep the .npy and .stats.npz of one encode run together"
        )
    if not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0 or (
        codes.max() >= model.codebook_size
    ):
        raise DataError(
            f"codes must be integers in [0, {model.codebook_size}); {codes_path} holds others"
        )
    codes_t = torch.from_numpy(codes.astype(np.int64))
    pieces = []
    for i, batch in enumerate(codes_t.split(batch_size)):
        window_stats = None
        if "mean" in stats:
            sl = slice(i * batch_size, i * batch_size + len(batch))
            window_stats = RevinStats(torch.from_numpy(stats["mean"][sl]),
                                      torch.from_numpy(stats["std"][sl]))
        pieces.append(model.decode(batch, window_stats))
    values = torch.cat(pieces).reshape(-1, n_channels).numpy()
    values = _scaler(model_dir, n_channels).inverse_transform(values)
    columns = [str(c) for c in stats["columns"]]
    lines = [",".join(columns)]
    lines += [",".join(f"{v:.6g}" for v in row) for row in values]
    atomic_write_text(output, "\n".join(lines) + "\n")
    return len(values)
