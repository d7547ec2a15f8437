"""``Forecaster``: the user-facing forecasting API over a finetuned model folder.

Takes series on their original scale, applies the model's train scaler, forecasts, and
returns forecasts on the original scale again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from timetok.data.scaler import Scaler
from timetok.errors import ConfigError, DataError
from timetok.models.forecaster import TokenForecaster
from timetok.nn.sampling import Sampling

logger = logging.getLogger(__name__)


class Forecaster:
    """Point forecasts and sample paths from a finetuned token language model.

    >>> f = Forecaster.from_pretrained("runs/ft-ettm1/H96")       # doctest: +SKIP
    >>> f.predict(context).shape           # context [T, C]  ->  [H, C]  # doctest: +SKIP
    >>> f.predict(context, num_samples=100).shape   # -> [100, H, C]     # doctest: +SKIP
    """

    def __init__(self, model: TokenForecaster, scaler: Scaler | None = None):
        self.model = model.eval()
        self.scaler = scaler

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> Forecaster:
        directory = Path(directory)
        model = TokenForecaster.from_pretrained(directory)
        scaler_path = directory / "scaler.json"
        if not scaler_path.is_file():
            logger.warning("%s has no scaler.json: contexts are read and forecasts returned "
                           "without the training scaler, so forecasts differ from the trained "
                           "model's; copy scaler.json from the run folder", directory)
            return cls(model, None)
        return cls(model, Scaler.load(scaler_path))

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

    def _restore(self, y: torch.Tensor) -> np.ndarray:
        y = y.float().numpy()
        return y if self.scaler is None else self.scaler.inverse_transform(y)

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
    ) -> np.ndarray:
        """Forecast ``horizon`` steps after ``context`` ([T, C] or [B, T, C]).

        Without ``num_samples``: the finetuned point forecast, ``[H, C]`` (``[B, H, C]``).
        With it: sampled paths ``[S, H, C]`` (``[B, S, H, C]``).
        """
        if horizon is not None and horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {horizon}")
        x, single = self._prepare(context)
        config = self.model.config
        if num_samples is not None:
            sampling = Sampling(temperature, top_k, top_p)
            paths = self.model.sample(x, horizon or config.horizon or 96, num_samples, sampling)
            out = self._restore(paths)
        else:
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
            head = head or next(h for h in ("blend", "linear", "decoder") if h in predictions)
            if head not in predictions:
                raise ConfigError(f"this model forecasts with {', '.join(predictions)}, not "
                                  f"{head!r}; pick one of those")
            out = self._restore(predictions[head][:, :horizon])
        return out[0] if single else out
