"""``Forecaster``: the user-facing forecasting API over a finetuned model folder.

Takes series on their original scale (numpy arrays, torch tensors or pandas DataFrames),
applies the model's train scaler, forecasts, and returns forecasts on the original scale
again, as the kind it was given. Quantiles, and sample paths made to match them, come from
the folder's calibration (:mod:`timetok.forecast.calibration`). :meth:`Forecaster.fit`
finetunes one from Python by the recipe ``timetok forecast finetune`` runs.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from timetok.core.data.scaler import Scaler
from timetok.core.devices import resolve_device
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.core.model_folder import read_data_section, write_data_section
from timetok.core.nn.sampling import Sampling
from timetok.core.utils import is_dataframe
from timetok.forecast.calibration import CALIBRATE_HINT, Calibration, check_levels, default_output
from timetok.forecast.model import TokenForecaster

logger = logging.getLogger(__name__)


class _Series:
    """A context as the caller gave it: its values ``[B, T, C]`` and how to hand results
    back in the same kind (numpy, torch, or a DataFrame of one series)."""

    def __init__(self, context, columns: list[str]):
        self.frame = self.tensor = None
        if is_dataframe(context):
            self.frame = context
            values = _frame_values(context, columns)
        elif isinstance(context, torch.Tensor):
            self.tensor = context
            values = context.detach().float().cpu().numpy()
        else:
            values = np.asarray(context, dtype=np.float32)
        self.ndim = values.ndim
        self.values = (values.reshape(1, -1, 1) if values.ndim == 1 else
                       values[None] if values.ndim == 2 else values).astype(np.float32)
        if self.values.ndim != 3:
            raise DataError(f"context must be [T], [T, C] or [B, T, C], got shape "
                            f"{tuple(values.shape)}")
        if not np.isfinite(self.values).all():
            raise DataError("context holds NaN or infinite values; fill them first")

    def back(self, out: np.ndarray, axes: tuple[str, ...]) -> np.ndarray | torch.Tensor:
        """Results ``[B, ..., H, C]`` -> the caller's kind and shape (no batch axis for one
        series; a DataFrame indexed by step, its columns ``axes`` over the channels)."""
        out = out[0] if self.ndim <= 2 else out
        if self.tensor is not None:
            return torch.from_numpy(np.ascontiguousarray(out)).to(self.tensor.device)
        if self.frame is not None:
            return _to_frame(out, self.frame, axes)
        return out



def _frame_values(frame, columns: list[str]) -> np.ndarray:
    """A DataFrame's numeric columns ``[T, C]``: the scaler's columns, in its order, where
    it names them all; else every numeric column."""
    numeric = frame.select_dtypes("number")
    if columns and set(columns) <= set(map(str, numeric.columns)):
        numeric = numeric[[c for c in numeric.columns if str(c) in columns]]
        numeric = numeric[sorted(numeric.columns, key=lambda c: columns.index(str(c)))]
    if numeric.shape[1] == 0:
        raise DataError("the DataFrame has no numeric columns; pass the series' columns")
    return numeric.to_numpy(dtype=np.float32)


def _future_index(frame, steps: int):
    """The ``steps`` index labels after the frame's: its timestamps continued where the
    frame is indexed by time at a regular frequency, else step numbers after its rows."""
    import pandas as pd

    index = frame.index
    if isinstance(index, pd.DatetimeIndex) and len(index) >= 3:
        freq = index.freq or pd.infer_freq(index)
        if freq is not None:
            return pd.date_range(index[-1], periods=steps + 1, freq=freq,
                                 name=index.name)[1:]
    return pd.RangeIndex(len(frame), len(frame) + steps, name="step")


def _to_frame(out: np.ndarray, frame, axes: tuple[str, ...]):
    """``[H, C]`` -> a DataFrame of the frame's numeric columns, indexed by the future's
    timestamps where the frame has regular ones; ``[K, H, C]`` -> columns ``(column, k)``
    with the ``axes[0]`` labels (quantile levels, sample numbers)."""
    import pandas as pd

    names = [str(c) for c in frame.select_dtypes("number").columns][:out.shape[-1]]
    index = _future_index(frame, out.shape[-2])
    if out.ndim == 2:
        return pd.DataFrame(out, index=index, columns=names)
    labels = axes[0]
    columns = pd.MultiIndex.from_product([names, list(labels)])
    flat = out.transpose(1, 2, 0).reshape(out.shape[1], -1)  # (H, C*K), channel-major
    return pd.DataFrame(flat, index=index, columns=columns)


class Forecaster:
    """Point forecasts, calibrated quantiles, sample paths and embeddings from a finetuned
    token language model.

    >>> f = Forecaster.from_pretrained("runs/ft-ettm1/H96")       # doctest: +SKIP
    >>> f.predict(context).shape           # context [T, C]  ->  [H, C]  # doctest: +SKIP
    >>> f.predict_quantiles(context, (0.1, 0.5, 0.9)).shape  # -> [3, H, C]  # doctest: +SKIP
    >>> f.predict(context, num_samples=100).shape   # -> [100, H, C]     # doctest: +SKIP
    >>> f.embed(context).shape             # -> [C, L / f, d_model]      # doctest: +SKIP
    """

    def __init__(self, model: TokenForecaster, scaler: Scaler | None = None,
                 calibration: Calibration | None = None):
        self.model = model.eval()
        self.scaler = scaler
        if calibration is not None:
            problem = self._mismatch(calibration)
            if problem:
                raise CheckpointError(f"the calibration does not match the model: {problem}; "
                                      f"{CALIBRATE_HINT} to write it anew")
        self.calibration = calibration

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike,
                        device: str | torch.device = "auto") -> Forecaster:
        """Load a model folder (weights, training scaler and, where it has one, the
        calibration) onto ``device``."""
        directory = Path(directory)
        model = TokenForecaster.from_pretrained(directory, map_location=resolve_device(device))
        scaler = Scaler.from_dict(read_data_section(directory, "scaler",
                                                    what="training scaler"))
        return cls(model, scaler, Calibration.load(directory, required=False))

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write the model folder :meth:`from_pretrained` reads back."""
        directory = self.model.save_pretrained(directory)
        if self.scaler is not None:
            write_data_section(directory, "scaler", self.scaler.to_dict())
        if self.calibration is not None:
            self.calibration.save(directory)
        return directory

    @classmethod
    def fit(cls, data, horizon: int = 96, pretrained: str | os.PathLike | None = None, *,
            save_path: str | os.PathLike | None = None, device: str = "auto",
            tokenizer_settings: dict | None = None, pretrain_settings: dict | None = None,
            **settings) -> Forecaster:
        """Finetune a forecaster of ``horizon`` steps on ``data`` (a DataFrame, or an array
        or tensor ``[T, C]``, original scale) by the recipe ``timetok forecast finetune``
        runs, split and scaled as a ``custom`` dataset (70 % train, 10 % validation).

        ``pretrained``: a pretrained language model folder; None trains a tokenizer and
        pretrains one on ``data`` first (``tokenizer_settings`` and ``pretrain_settings``:
        their configs' fields). ``settings``: :class:`~timetok.forecast.config.
        FinetuneConfig` fields (``max_steps``, ``heads``, ``lr`` ...). The runs go under
        ``save_path`` (default: a temporary folder, removed once the model is loaded)."""
        from timetok.forecast.fitting import fit_folder

        if save_path is not None:
            folder = fit_folder(data, horizon, pretrained, Path(save_path), tokenizer_settings,
                                pretrain_settings, settings)
            return cls.from_pretrained(folder, device)
        with tempfile.TemporaryDirectory(prefix="timetok-fit-") as work:
            folder = fit_folder(data, horizon, pretrained, Path(work), tokenizer_settings,
                                pretrain_settings, settings)
            return cls.from_pretrained(folder, device)

    def _mismatch(self, calibration: Calibration) -> str | None:
        config = self.model.config
        if calibration.horizon != config.horizon:
            return f"it reaches {calibration.horizon} steps, the model {config.horizon}"
        if calibration.head not in self.model.outputs:
            return f"it is of {calibration.head!r}, the model has {', '.join(self.model.outputs)}"
        channels = len(self.scaler.mean) if self.scaler is not None else calibration.channels
        if calibration.channels not in (1, channels):
            return f"it has {calibration.channels} channels, the scaler {channels}"
        return None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_points(self) -> int:
        return self.model.config.context_points

    @property
    def point_horizon(self) -> int:
        """The steps a point forecast reaches (0: no forecast heads; sample instead)."""
        return self.model.config.horizon

    def _prepare(self, context) -> tuple[torch.Tensor, _Series]:
        """The context's last ``context_points`` steps, standardised, ``[B, L, C]``."""
        series = _Series(context, self.scaler.columns if self.scaler is not None else [])
        x = series.values
        if x.shape[1] < self.context_points:
            raise DataError(f"context has {x.shape[1]} steps, the model needs "
                            f"{self.context_points}; pass a longer series")
        x = x[:, -self.context_points:]
        if self.scaler is not None:
            if x.shape[2] != len(self.scaler.mean):
                raise ConfigError(
                    f"the model was trained on {len(self.scaler.mean)} channel(s), the "
                    f"context has {x.shape[2]}; pass series with the same columns"
                )
            x = self.scaler.transform(x)
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device), series

    def _restore(self, y: torch.Tensor | np.ndarray) -> np.ndarray:
        y = y.float().cpu().numpy() if isinstance(y, torch.Tensor) else y.astype(np.float32)
        return y if self.scaler is None else self.scaler.inverse_transform(y)

    def _point(self, x: torch.Tensor, horizon: int | None, head: str | None) -> torch.Tensor:
        """The point forecast ``[B, H, C]`` of ``head``, standardised scale."""
        config = self.model.config
        if not config.horizon:
            raise ConfigError("this model has no forecast heads (a pretrained language model); "
                              "finetune it first, or sample paths with num_samples")
        horizon = horizon or config.horizon
        if horizon > config.horizon:
            raise ConfigError(f"point forecasts reach {config.horizon} steps with this model, "
                              f"{horizon} were asked; finetune for that horizon or sample "
                              "paths with num_samples")
        predictions = self.model.predict(x)
        head = head or default_output(predictions)
        if head not in predictions:
            raise ConfigError(f"this model forecasts with {', '.join(predictions)}, not "
                              f"{head!r}; pick one of those")
        return predictions[head][:, :horizon]

    def _calibration(self, head: str | None = None) -> Calibration:
        if self.calibration is None:
            raise ConfigError("this model has no calibration, which quantiles and calibrated "
                              f"sample paths need; {CALIBRATE_HINT}")
        if head is not None and head != self.calibration.head:
            raise ConfigError(f"the calibration is of the {self.calibration.head!r} forecast, "
                              f"not {head!r}; leave the head out or calibrate that head")
        return self.calibration

    def _calibrated_point(self, x: torch.Tensor, horizon: int | None,
                          head: str | None = None) -> tuple[Calibration, np.ndarray]:
        """The calibration and its head's point forecast ``[B, H, C]``, standardised."""
        calibration = self._calibration(head)
        if calibration.channels not in (1, x.shape[2]):
            raise ConfigError(f"the calibration has {calibration.channels} channels, the "
                              f"context {x.shape[2]}; pass series with the same columns")
        return calibration, self._point(x, horizon, calibration.head).float().cpu().numpy()

    def calibrated_for(self, horizon: int | None = None) -> bool:
        """Whether the folder's calibration covers ``horizon`` steps (default: the
        model's), so sampled paths can be calibrated."""
        reach = self.calibration.horizon if self.calibration is not None else 0
        return 0 < (horizon or self.point_horizon or 96) <= reach

    @torch.no_grad()
    def embed(self, context) -> np.ndarray | torch.Tensor:
        """The language model's last-layer states over the codes of each channel's last
        ``context_points`` steps: ``[C, N, d_model]`` (``[B, C, N, d_model]`` for a batch),
        ``N = context_points / f``. A tensor gives a tensor; an array or a DataFrame gives
        an array (an embedding has no time axis a DataFrame could index)."""
        x, series = self._prepare(context)
        out = self.model.embed(x).float().cpu().numpy()
        if series.tensor is not None:
            return series.back(out, ())
        return out[0] if series.ndim <= 2 else out

    @torch.no_grad()
    def predict_quantiles(self, context, quantiles: Sequence[float] = (0.1, 0.5, 0.9),
                          horizon: int | None = None, head: str | None = None):
        """Calibrated quantiles ``[Q, H, C]`` (``[B, Q, H, C]``) of the future after
        ``context``: the point forecast plus its validation residuals' quantiles, levels in
        ascending order (within the calibrated range, 0.01 to 0.99), original scale; a
        DataFrame gives a DataFrame whose columns are ``(column, level)``. ``head``, if
        given, must be the calibrated forecast's."""
        grid = self._calibration().levels
        levels = check_levels(quantiles, grid[0], grid[-1])
        if horizon is not None and horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {horizon}")
        x, series = self._prepare(context)
        calibration, point = self._calibrated_point(x, horizon, head)
        spread = calibration.quantiles(levels, point.shape[1], calibration.scales(x.cpu()))
        out = self._restore(point[:, None] + spread.transpose(1, 0, 2, 3))
        return series.back(out, (levels,))

    @torch.no_grad()
    def predict(self, context, horizon: int | None = None, num_samples: int | None = None,
                head: str | None = None, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, calibrated: bool | None = None):
        """Forecast ``horizon`` steps after ``context`` ([T, C] or [B, T, C]; a DataFrame of
        one series), on its original scale and as its kind.

        Without ``num_samples``: the finetuned point forecast of ``head``, ``[H, C]``
        (``[B, H, C]``). With it: sampled paths ``[S, H, C]`` (``[B, S, H, C]``; a
        DataFrame's columns ``(column, path)``), ``calibrated`` (the default where the
        calibration covers the horizon) so that each step's values take the calibrated
        quantiles around the calibrated head's forecast (:meth:`Calibration.map_paths`),
        or the language model's raw paths (``calibrated=False``; with ``None`` beyond the
        calibration, logged).
        """
        if horizon is not None and horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {horizon}")
        x, series = self._prepare(context)
        if num_samples is None:
            return series.back(self._restore(self._point(x, horizon, head)), ())
        horizon = horizon or self.point_horizon or 96
        calibrated = self._sample_calibrated(horizon, calibrated)
        if calibrated:
            calibration, point = self._calibrated_point(x, horizon, head)
        sampling = Sampling(temperature, top_k, top_p)
        paths = self.model.sample(x, horizon, num_samples, sampling).float().cpu().numpy()
        if calibrated:
            paths = calibration.map_paths(paths, point, calibration.scales(x.cpu()))
        return series.back(self._restore(paths), (range(num_samples),))

    def _sample_calibrated(self, horizon: int, calibrated: bool | None) -> bool:
        """Whether ``horizon``-step paths are mapped onto the calibration."""
        reason = (f"the calibration reaches {self.calibration.horizon} steps"
                  if self.calibration is not None else "the model has no calibration")
        if calibrated is None:
            calibrated = self.calibrated_for(horizon)
            if not calibrated:
                logger.warning("sample paths of %d steps are the language model's own, not "
                               "calibrated: %s", horizon, reason)
        elif calibrated and self.calibration is not None and not self.calibrated_for(horizon):
            raise ConfigError(f"calibrated paths of {horizon} steps were asked, but {reason}; "
                              "sample fewer steps or pass calibrated=False for the language "
                              "model's own paths")
        return calibrated
