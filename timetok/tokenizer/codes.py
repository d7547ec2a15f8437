"""Code files: a series cut into windows, tokenised, saved; and decoded back to CSV.

``codes.npy`` holds integer codes ``[windows, T/f, C]`` (``[..., levels]`` for residual
VQ); ``codes.stats.npz`` beside it holds each window's RevIN statistics and the column
names, which decoding needs to restore the original scale. The tokenizer pipeline does
the work; this module cuts the series into windows and reads and writes the files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from timetok.core.data.series import Series
from timetok.core.errors import ConfigError, DataError
from timetok.core.utils import atomic_write_bytes, atomic_write_text
from timetok.tokenizer.pipeline import Scale, TimeSeriesTokenizer

STATS_KEYS = ("columns", "context")  # always written; "mean" and "std" with RevIN


def stats_path(codes_path: Path) -> Path:
    return codes_path.with_name(codes_path.stem + ".stats.npz")


def _npy_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    if len(arrays) == 1:
        np.save(buffer, next(iter(arrays.values())), allow_pickle=False)
    else:
        np.savez(buffer, **arrays)
    return buffer.getvalue()


def encode_series(tokenizer: TimeSeriesTokenizer, series: Series, output: Path
                  ) -> tuple[int, int]:
    """Tokenise non-overlapping windows of a series; returns (windows, rows left out)."""
    context, n_channels = tokenizer.config.context_points, tokenizer.config.n_channels
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
    windows = series.values[: n_windows * context].reshape(n_windows, context, n_channels)
    codes, scale = tokenizer.encode(windows, return_scale=True)
    stats_arrays = {"columns": np.array(series.columns), "context": np.array(context)}
    if scale.mean is not None:
        stats_arrays |= {"mean": scale.mean, "std": scale.std}
    atomic_write_bytes(stats_path(output), _npy_bytes(**stats_arrays))
    atomic_write_bytes(output, _npy_bytes(codes=codes.astype(np.int64)))
    return n_windows, len(series.values) - n_windows * context


def _load_npy(path: Path, what: str):
    if not path.is_file():
        raise DataError(f"{what} not found: {path}; run 'timetok tokenizer encode' first")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"{path} is not a readable NumPy file ({reason}); re-run encode") from None


def _load_codes(path: Path) -> np.ndarray:
    codes = _load_npy(path, "codes file")
    if not isinstance(codes, np.ndarray):  # an .npz archive
        codes.close()
        raise DataError(f"{path} is a .npz archive, not a codes array; pass the .npy file "
                        "that encode wrote (its .stats.npz goes beside it)")
    return codes


def _load_stats(path: Path) -> dict[str, np.ndarray]:
    """The ``.stats.npz`` beside a codes file, checked for every entry decoding reads."""
    stats = _load_npy(path, "statistics file")
    if isinstance(stats, np.ndarray):
        raise DataError(f"{path} holds one array, not the statistics archive encode writes; "
                        "keep the .npy and .stats.npz of one encode run together")
    with stats:
        try:
            arrays = {key: stats[key] for key in stats.files}
        except (OSError, ValueError, EOFError) as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            raise DataError(f"{path} is not a readable statistics file ({reason}); re-run "
                            "encode") from None
    missing = [key for key in STATS_KEYS if key not in arrays]
    if ("mean" in arrays) != ("std" in arrays):
        missing.append("std" if "mean" in arrays else "mean")
    if missing:
        raise DataError(f"{path} lacks {', '.join(map(repr, missing))}; re-run encode to write "
                        "the codes and their statistics together")
    if arrays["context"].size != 1 or not np.issubdtype(arrays["context"].dtype, np.integer):
        raise DataError(f"{path}: 'context' must be one integer, got {arrays['context']!r}; "
                        "re-run encode")
    return arrays


def decode_series(tokenizer: TimeSeriesTokenizer, codes_path: Path, output: Path) -> int:
    """Decode a codes file to a CSV on the original scale; returns the number of rows."""
    model = tokenizer.model
    codes = _load_codes(codes_path)
    stats = _load_stats(stats_path(codes_path))
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
    if stats["columns"].ndim != 1 or len(stats["columns"]) != n_channels:
        raise DataError(
            f"{stats_path(codes_path)} names {stats['columns'].size} column(s), the codes hold "
            f"{n_channels} channel(s); keep the .npy and .stats.npz of one encode run together"
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
    scale = Scale(stats.get("mean"), stats.get("std"))
    values = tokenizer.decode(codes, scale).reshape(-1, n_channels)
    columns = [str(c) for c in stats["columns"]]
    lines = [",".join(columns)]
    lines += [",".join(f"{v:.6g}" for v in row) for row in values]
    atomic_write_text(output, "\n".join(lines) + "\n")
    return len(values)
