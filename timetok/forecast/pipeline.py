"""``Forecaster``: the user-facing forecasting API over a finetuned model folder.

Takes series on their original scale, applies the model's train scaler, forecasts, and
returns forecasts on the original scale again. Quantiles, and sample paths made to match
them, come from the folder's ``calibration.json`` (:mod:`timetok.forecast.calibration`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from timetok.core.data.scaler import Scaler
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.core.nn.sampling import Sampling
from timetok.forecast.calibration import (
    CALIBRATE_HINT,
    FILE,
    Calibration,
    check_levels,
    default_output,
)
from timetok.forecast.model import TokenForecaster

logger = logging.getLogger(__name__)


class Forecaster:
    """Point forecasts, calibrated quantiles and sample paths from a finetuned token
    language model.

    >>> f = Forecaster.from_pretrained("runs/ft-ettm1/H96")       # doctest: +SKIP
    >>> f.predict(context).shape           # context [T, C]  ->  [H, C]  # doctest: +SKIP
    >>> f.predict_quantiles(context, (0.1, 0.5, 0.9)).shape  # -> [3, H, C]  # doctest: +SKIP
    >>> f.predict(context, num_samples=100).shape   # -> [100, H, C]     # doctest: +SKIP
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
    def from_pretrained(cls, directory: str | os.PathLike) -> Forecaster:
        """Load a model folder: its weights, ``scaler.json`` and, where the folder has one,
        ``calibration.json``."""
        directory = Path(directory)
        model = TokenForecaster.from_pretrained(directory)
        calibration = Calibration.load(directory) if (directory / FILE).is_file() else None
        scaler_path = directory / "scaler.json"
        if not scaler_path.is_file():
            logger.warning("%s has no scaler.json: contexts are read and forecasts returned "
                           "without the training scaler, so forecasts differ from the trained "
                           "model's; copy scaler.json from the run folder", directory)
            return cls(model, None, calibration)
        return cls(model, Scaler.load(scaler_path), calibration)

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
    def context_points(self) -> int:
        return self.model.config.context_points

    @property
    def point_horizon(self) -> int:
        """The steps a point forecast reaches (0: no forecast heads; sample instead)."""
        return self.model.config.horizon

    def _prepare(self, context) -> tuple[torch.Tensor, bool]:
        x = np.asarray(context, dtype=np.float32)
        single = x.ndim <= 2
        x = x.reshape(1, -1, 1) if x.ndim == 1 else x[None] if single else x
        if x.ndim != 3:
            raise DataError(f"context must be [T, C] or [B, T, C], got shape {tuple(x.shape)}")
        if not np.isfinite(x).all():
            raise DataError("context holds NaN or infinite values; fill them first")
        if x.shape[1] < self.context_points:
            raise DataError(
                f"context has {x.shape[1]} steps, the model needs {self.context_points}; "
                "pass a longer series"
            )
        x = x[:, -self.context_points:]
        if self.scaler is not None:
            if x.shape[2] != len(self.scaler.mean):
                raise ConfigError(
                    f"the model was trained on {len(self.scaler.mean)} channel(s), the "
                    f"context has {x.shape[2]}; pass series with the same columns"
                )
            x = self.scaler.transform(x)
        return torch.from_numpy(np.ascontiguousarray(x)), single

    def _restore(self, y: torch.Tensor | np.ndarray) -> np.ndarray:
        y = y.float().numpy() if isinstance(y, torch.Tensor) else y.astype(np.float32)
        return y if self.scaler is None else self.scaler.inverse_transform(y)

    def _point(self, x: torch.Tensor, horizon: int | None, head: str | None) -> torch.Tensor:
        """The point forecast ``[B, H, C]`` of ``head``, standardised scale."""
        config = self.model.config
        if not config.horizon:
            raise ConfigError(
                "this model has no forecast heads (a pretrained language model); finetune "
                "it first, or sample paths with num_samples"
            )
        horizon = horizon or config.horizon
        if horizon > config.horizon:
            raise ConfigError(
                f"point forecasts reach {config.horizon} steps with this model, "
                f"{horizon} were asked; finetune for that horizon or sample paths with "
                "num_samples"
            )
        predictions = self.model.predict(x)
        head = head or default_output(predictions)
        if head not in predictions:
            raise ConfigError(f"this model forecasts with {', '.join(predictions)}, not "
                              f"{head!r}; pick one of those")
        return predictions[head][:, :horizon]

    def _calibration(self, head: str | None = None) -> Calibration:
        if self.calibration is None:
            raise ConfigError(f"this model has no calibration ({FILE}), which quantiles and "
                              f"calibrated sample paths need; {CALIBRATE_HINT}")
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
        return calibration, self._point(x, horizon, calibration.head).float().numpy()

    def calibrated_for(self, horizon: int | None = None) -> bool:
        """Whether the folder's calibration covers ``horizon`` steps (default: the
        model's), so sampled paths can be calibrated."""
        reach = self.calibration.horizon if self.calibration is not None else 0
        return 0 < (horizon or self.point_horizon or 96) <= reach

    @torch.no_grad()
    def predict_quantiles(self, context, quantiles: Sequence[float] = (0.1, 0.5, 0.9),
                          horizon: int | None = None, head: str | None = None) -> np.ndarray:
        """Calibrated quantiles ``[Q, H, C]`` (``[B, Q, H, C]``) of the future after
        ``context``: the point forecast plus its validation residuals' quantiles, levels in
        ascending order (within the calibrated range, 0.01 to 0.99), original scale.
        ``head``, if given, must be the calibrated forecast's."""
        grid = self._calibration().levels
        levels = check_levels(quantiles, grid[0], grid[-1])
        if horizon is not None and horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {horizon}")
        x, single = self._prepare(context)
        calibration, point = self._calibrated_point(x, horizon, head)
        spread = calibration.quantiles(levels, point.shape[1], calibration.scales(x))
        out = self._restore(point[:, None] + spread.transpose(1, 0, 2, 3))
        return out[0] if single else out

    @torch.no_grad()
    def predict(
        self,
        context,
        horizon: int | None = None,
        num_samples: int | None = None,
        head: str | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        calibrated: bool | None = None,
    ) -> np.ndarray:
        """Forecast ``horizon`` steps after ``context`` ([T, C] or [B, T, C]).

        Without ``num_samples``: the finetuned point forecast of ``head``, ``[H, C]``
        (``[B, H, C]``). With it: sampled paths ``[S, H, C]`` (``[B, S, H, C]``),
        ``calibrated`` (the default where the calibration covers the horizon) so that each
        step's values take the calibrated quantiles around the calibrated head's forecast
        (:meth:`Calibration.map_paths`), or the language model's raw paths
        (``calibrated=False``; with ``None`` beyond the calibration, logged).
        """
        if horizon is not None and horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {horizon}")
        x, single = self._prepare(context)
        if num_samples is None:
            out = self._restore(self._point(x, horizon, head))
            return out[0] if single else out
        horizon = horizon or self.point_horizon or 96
        reason = (f"the calibration reaches {self.calibration.horizon} steps"
                  if self.calibration is not None else f"the model has no {FILE}")
        if calibrated is None:
            calibrated = self.calibrated_for(horizon)
            if not calibrated:
                logger.warning("sample paths of %d steps are the language model's own, not "
                               "calibrated: %s", horizon, reason)
        elif calibrated and self.calibration is not None and not self.calibrated_for(horizon):
            raise ConfigError(f"calibrated paths of {horizon} steps were asked, but {reason}; "
                              "sample fewer steps or pass calibrated=False for the language "
                              "model's own paths")
        if calibrated:
            calibration, point = self._calibrated_point(x, horizon, head)
        sampling = Sampling(temperature, top_k, top_p)
        paths = self.model.sample(x, horizon, num_samples, sampling).float().numpy()
        if calibrated:
            paths = calibration.map_paths(paths, point, calibration.scales(x))
        out = self._restore(paths)
        return out[0] if single else out
