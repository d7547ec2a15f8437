"""``TimeSeriesTokenizer``: a trained tokenizer folder as codes and series on the data's scale.

The pipeline standardises its input with the scaler the folder was trained with (section
``scaler`` of ``data.json``), lets the model RevIN-normalise each series and channel,
encodes, and undoes both on the way back, so every series in and out is on the data's
original scale.

>>> tok = TimeSeriesTokenizer.from_pretrained("runs/tokenizer-etth1")    # doctest: +SKIP
>>> codes, scale = tok.encode(frame, return_scale=True)                  # doctest: +SKIP
>>> tok.decode(codes, scale)  # a DataFrame like ``frame``               # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange

from timetok.core.data.scaler import Scaler
from timetok.core.devices import resolve_device
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.core.model_folder import read_data_section, write_data_section
from timetok.core.nn.revin import RevinStats
from timetok.core.utils import is_dataframe
from timetok.tokenizer.model import TokenizerModel


@dataclass(frozen=True)
class Scale:
    """What ``decode`` needs beside the codes to return to the data's scale.

    ``mean``/``std``: ``[B, 1, C]``, each series' level and spread per channel that RevIN
    took out, on the standardised scale (None for a tokenizer without RevIN); ``index``:
    the DataFrame's index when a DataFrame was encoded.
    """

    mean: np.ndarray | None
    std: np.ndarray | None
    index: Any = None


@dataclass(frozen=True)
class _Form:
    """How a caller's input came: the kind to answer in and what it needs to be rebuilt."""

    kind: str  # "numpy", "torch" or "pandas"
    batched: bool
    device: torch.device | None = None
    index: Any = None
    columns: list | None = None


class TimeSeriesTokenizer:
    """Series ``[T, C]`` or ``[B, T, C]`` (numpy, torch or a DataFrame of channels over
    time) to discrete codes and back, on the data's original scale.

    Each series is one window: its length must be a multiple of the tokenizer's
    ``compression`` (steps per code); the model was trained on windows of
    ``config.context_points`` steps and reconstructs windows of that length best.

    - ``encode(series)``: codes ``[T/f, C]`` / ``[B, T/f, C]`` (``[..., levels]`` for residual
      VQ), integers in ``[0, codebook_size)``. A DataFrame gives a DataFrame of codes: one
      column per channel (``(channel, level)`` columns for residual VQ), indexed by the
      time stamp where each code's ``f`` steps start (``index[::f]``).
    - ``decode(codes, scale)``: series of the same kind as ``codes``; ``scale`` (from
      ``encode(..., return_scale=True)``) restores each series' level and spread, and a
      DataFrame's index.
    - ``reconstruct(series)``: decode(encode(series)), the same kind, columns and index.
    - ``embed(series)``: the quantized latents ``[..., T/f, C, D]`` the decoder reads
      (``quantized=False``: the encoder's continuous output before quantization).
    """

    def __init__(self, model: TokenizerModel, scaler: Scaler, device: str = "cpu",
                 batch_size: int = 256):
        if len(scaler.mean) != model.config.n_channels:
            raise ConfigError(f"scaler has {len(scaler.mean)} channel(s), the model "
                              f"{model.config.n_channels}; pass the scaler it was trained with")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.scaler = scaler
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str = "auto",
                        batch_size: int = 256) -> TimeSeriesTokenizer:
        """A tokenizer folder: ``config.json``, ``model.safetensors`` and the training
        data's scaler (``data.json``, or ``scaler.json`` in folders exported before it)."""
        model = TokenizerModel.from_pretrained(path)
        section = read_data_section(path, "scaler", what="scaler of the training data")
        try:
            scaler = Scaler.from_dict(section)
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"the scaler in {path} is unreadable ({err}); re-export "
                                  "the model") from None
        if len(scaler.mean) != model.config.n_channels:
            raise CheckpointError(f"the scaler in {path} has {len(scaler.mean)} channel(s), "
                                  f"the model {model.config.n_channels}; re-export the model")
        return cls(model, scaler, device, batch_size)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write a folder :meth:`from_pretrained` reads back."""
        path = self.model.save_pretrained(path)
        write_data_section(path, "scaler", self.scaler.to_dict())
        return path

    @property
    def config(self):
        return self.model.config

    @property
    def compression(self) -> int:
        """Time steps per code."""
        return self.model.compression

    @property
    def codebook_size(self) -> int:
        return self.model.codebook_size

    # --- verbs ----------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, series, return_scale: bool = False):
        """Series -> codes of the same kind (and the :class:`Scale` to decode them with)."""
        x, form = self._read_series(series)
        pieces = [self.model.encode(batch) for batch in x.split(self.batch_size)]
        codes = torch.cat([c for c, _ in pieces])
        out = self._codes_out(codes, form)
        if not return_scale:
            return out
        stats = [s for _, s in pieces]
        scale = Scale(None, None, form.index) if stats[0] is None else Scale(
            torch.cat([s.mean for s in stats]).cpu().numpy(),
            torch.cat([s.std for s in stats]).cpu().numpy(), form.index)
        return out, scale

    @torch.no_grad()
    def decode(self, codes, scale: Scale | None = None):
        """Codes from :meth:`encode` -> series of the same kind, on the data's scale."""
        c, form = self._read_codes(codes)
        stats = self._stats(scale, len(c))
        pieces = []
        for start in range(0, len(c), self.batch_size):
            part = None if stats is None else RevinStats(
                *(s[start:start + self.batch_size] for s in stats))
            pieces.append(self.model.decode(c[start:start + self.batch_size], part))
        index = scale.index if scale is not None else None
        return self._series_out(torch.cat(pieces), form, index)

    @torch.no_grad()
    def reconstruct(self, series):
        """The series encoded and decoded back: the same kind, columns and index."""
        x, form = self._read_series(series)
        pieces = []
        for batch in x.split(self.batch_size):
            codes, stats = self.model.encode(batch)
            pieces.append(self.model.decode(codes, stats))
        return self._series_out(torch.cat(pieces), form, form.index)

    @torch.no_grad()
    def embed(self, series, quantized: bool = True):
        """Series -> latents ``[..., T/f, C, D]``: the quantized vectors the decoder reads,
        or with ``quantized=False`` the encoder's output before quantization. A DataFrame
        gives a DataFrame with ``(channel, dim)`` columns indexed like its codes."""
        x, form = self._read_series(series)
        pieces = []
        for batch in x.split(self.batch_size):
            z = self.model.encode_latents(self.model.normalize(batch)[0])  # (B*C, T/f, D)
            if quantized:
                z = self.model.quantizer(z)[0]
            pieces.append(rearrange(z, "(b c) t d -> b t c d", c=batch.shape[-1]))
        return self._out(torch.cat(pieces), form, "dim")

    # --- inputs ---------------------------------------------------------------------------

    def _columns(self, frame) -> list:
        """The DataFrame's channels (the first level of its columns), checked against
        those the scaler was fitted on."""
        import pandas as pd

        channels = list(dict.fromkeys(frame.columns.get_level_values(0)))
        names, trained = [str(c) for c in channels], self.scaler.columns
        if trained and names != trained:
            fix = (f"select them in this order: series[{trained!r}]"
                   if sorted(names) == sorted(trained) else "pass those columns")
            raise DataError(f"series has columns {names}, the tokenizer was trained on "
                            f"{trained}; {fix}")
        for name, column in frame.items():
            if not pd.api.types.is_numeric_dtype(column):
                raise DataError(f"series column {name!r} is not numeric; move it to the "
                                f"index (series.set_index({name!r})) or drop it")
        return channels

    def _read_series(self, series) -> tuple[torch.Tensor, _Form]:
        """Any accepted input -> ``[B, T, C]`` float32 on the standardised scale."""
        form, values = self._unpack(series, "series")
        if values.ndim not in (2, 3):
            raise DataError(f"series must be [time, channels] or [batch, time, channels], got "
                            f"shape {tuple(values.shape)}; for one channel pass series[:, None]")
        if values.dtype.kind not in "iuf":  # signed, unsigned, floating
            raise DataError(f"series must hold real numbers, got dtype {values.dtype}")
        values = values if values.ndim == 3 else values[None]
        n_channels, steps, f = self.config.n_channels, values.shape[1], self.compression
        if values.shape[-1] != n_channels:
            raise DataError(f"series has {values.shape[-1]} channel(s), the tokenizer was "
                            f"trained on {n_channels}; pass data with the same channels")
        if steps == 0 or steps % f:
            raise DataError(f"series length {steps} is not a positive multiple of the "
                            f"tokenizer's compression {f}; trim it to {steps // f * f} steps "
                            f"or pad it to {(steps // f + 1) * f}")
        if not np.isfinite(values).all():
            raise DataError("series holds NaN or infinite values; fill or drop them first")
        scaled = self.scaler.transform(values.astype(np.float32))
        return torch.from_numpy(scaled).to(self.device), form

    def _read_codes(self, codes) -> tuple[torch.Tensor, _Form]:
        """Codes as :meth:`encode` returns them -> ``[B, T/f, C(, levels)]`` long."""
        form, values = self._unpack(codes, "codes")
        levels = self.model.quantizer.levels
        if form.kind == "pandas" and levels > 1:
            values = values.reshape(len(values), -1, levels)
        base = 2 if levels == 1 else 3
        if values.ndim not in (base, base + 1):
            shape = "[positions, channels]" if levels == 1 else "[positions, channels, levels]"
            raise DataError(f"codes must be {shape} or with a batch dimension first, got "
                            f"shape {tuple(values.shape)}; pass codes as encode returns them")
        batched = values.ndim == base + 1
        values = values if batched else values[None]
        if values.shape[2] != self.config.n_channels or values.shape[3:] not in (
                (), (levels,)):
            raise DataError(f"codes of shape {tuple(values.shape)} do not fit this tokenizer "
                            f"({self.config.n_channels} channel(s), {levels} level(s)); decode "
                            "with the tokenizer that encoded them")
        if not np.issubdtype(values.dtype, np.integer) or values.size and (
                values.min() < 0 or values.max() >= self.codebook_size):
            raise DataError(f"codes must be integers in [0, {self.codebook_size}); pass codes "
                            "as encode returns them")
        form = _Form(form.kind, batched, form.device, form.index, form.columns)
        return torch.from_numpy(values.astype(np.int64)).to(self.device), form

    def _unpack(self, data, name: str) -> tuple[_Form, np.ndarray]:
        if isinstance(data, torch.Tensor):
            return _Form("torch", data.ndim == 3, data.device), data.detach().cpu().numpy()
        if isinstance(data, np.ndarray):
            return _Form("numpy", data.ndim == 3), data
        if is_dataframe(data):
            form = _Form("pandas", False, None, data.index, self._columns(data))
            return form, data.to_numpy()
        raise DataError(f"{name} must be a numpy array, a torch tensor or a pandas DataFrame, "
                        f"got {type(data).__name__}; wrap it with numpy.asarray")

    def _stats(self, scale: Scale | None, n: int) -> RevinStats | None:
        if not self.config.revin:
            return None
        if scale is None or scale.mean is None or scale.std is None:
            raise ConfigError("decode needs the scale encode returned with these codes: "
                              "codes, scale = tokenizer.encode(series, return_scale=True); "
                              "tokenizer.decode(codes, scale)")
        expected = (n, 1, self.config.n_channels)
        if scale.mean.shape != expected or scale.std.shape != expected:
            raise DataError(f"scale holds statistics of shape {scale.mean.shape}, the codes "
                            f"need {expected}; pass the scale encode returned with them")
        return RevinStats(torch.as_tensor(scale.mean, device=self.device),
                          torch.as_tensor(scale.std, device=self.device))

    # --- outputs --------------------------------------------------------------------------

    def _series_out(self, y: torch.Tensor, form: _Form, index):
        values = self.scaler.inverse_transform(y.cpu().numpy())
        if form.kind == "pandas":
            import pandas as pd

            keep = index is not None and len(index) == values.shape[1]
            return pd.DataFrame(values[0], columns=form.columns,
                                index=index if keep else None)
        return self._array_out(values, form)

    def _codes_out(self, codes: torch.Tensor, form: _Form):
        return self._out(codes, form, "level") if codes.ndim == 4 else self._out(codes, form)

    def _out(self, values: torch.Tensor, form: _Form, inner: str | None = None):
        """``[B, T/f, C(, K)]`` per code position -> the caller's kind; a DataFrame has one
        row per position and ``(channel, inner)`` columns when there is a last axis K."""
        if form.kind != "pandas":
            return self._array_out(values.cpu().numpy(), form)
        import pandas as pd

        rows = values[0].cpu().numpy()
        index = form.index[::self.compression] if form.index is not None else None
        if inner is None:
            return pd.DataFrame(rows, columns=form.columns, index=index)
        columns = pd.MultiIndex.from_product([form.columns, range(rows.shape[-1])],
                                             names=[None, inner])
        return pd.DataFrame(rows.reshape(len(rows), -1), columns=columns, index=index)

    @staticmethod
    def _array_out(values: np.ndarray, form: _Form):
        values = values if form.batched else values[0]
        if form.kind == "torch":
            return torch.from_numpy(np.ascontiguousarray(values)).to(form.device)
        return values
