"""Calibrated forecast quantiles from validation residuals (split-conformal style).

A point forecast's errors on validation windows, ``y - ŷ`` on the standardised scale, are
summarised per horizon step and channel by their empirical quantiles at ``LEVELS``; the
forecast's quantile at level ``q`` is the point forecast plus the residuals' ``q``
quantile (interpolated between grid levels). Where validation windows are few, each step
pools its neighbouring steps' residuals, enough for ``MIN_VALUES`` values per step.

Optionally the residuals are first divided by the context's recent spread (the standard
deviation of its last ``SCALE_WINDOW`` steps per channel, floored at ``SCALE_FLOOR``), and
each forecast's quantiles are multiplied by its own context's: bands then widen after a
volatile context and narrow after a calm one. :func:`calibrate_model` fits both and keeps
the one with the lower CRPS forward in time: fitted on the earlier half of the validation
windows, scored on the later half. A model folder keeps the result in the
``calibration`` section of its ``data.json``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from timetok.core.errors import CheckpointError, ConfigError
from timetok.core.model_folder import read_data_section, write_data_section

SECTION = "calibration"  # of the model folder's data.json
LEVELS = (0.01, *(round(0.05 * i, 2) for i in range(1, 20)), 0.99)
MIN_VALUES = 1000  # residuals behind each step's quantiles; fewer windows pool steps
MAX_WINDOWS = 2000  # validation windows read, evenly spread (stride-1 neighbours repeat)
POINT_OUTPUTS = ("blend", "linear", "decoder")  # the default point forecast, in order
CALIBRATE_HINT = "run 'timetok forecast calibrate' on the model folder and its dataset"
SCALE_WINDOW = 96  # context steps whose spread scales a window's residuals
SCALE_FLOOR = 0.05  # on the standardised scale: a flat context does not collapse the band


def context_scale(x, window: int) -> np.ndarray:
    """The spread of the last ``window`` steps of each context, ``[B, 1, C]`` from ``x``
    ``[B, L, C]`` (standardised; numpy or torch), floored at ``SCALE_FLOOR``; ones when
    ``window`` is 0."""
    x = x.detach().float().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if not window:
        return np.ones((x.shape[0], 1, x.shape[2]))
    return x[:, -window:].astype(np.float64).std(axis=1, keepdims=True) + SCALE_FLOOR


def default_output(outputs: Iterable[str]) -> str:
    """A model's default point forecast: the blend, else the linear head's, else the
    decoder head's."""
    outputs = list(outputs)
    return next(name for name in POINT_OUTPUTS if name in outputs)


def check_levels(levels: Iterable[float], low: float = 0.0, high: float = 1.0) -> list[float]:
    """Quantile levels, distinct and within (0, 1) (and [``low``, ``high``] where those are
    tighter), sorted ascending."""
    levels = [float(q) for q in levels]
    if not levels:
        raise ConfigError("quantiles must name at least one level, e.g. 0.1,0.5,0.9")
    for q in levels:
        if not 0 < q < 1:
            raise ConfigError(f"quantiles must lie in (0, 1), got {q:g}")
        if not low <= q <= high:
            raise ConfigError(f"quantiles must lie in [{low:g}, {high:g}], the calibrated "
                              f"range, got {q:g}")
    repeated = sorted({q for q in levels if levels.count(q) > 1})
    if repeated:
        raise ConfigError(f"quantiles must name each level once, got "
                          f"{', '.join(f'{q:g}' for q in repeated)} more than once")
    return sorted(levels)


def interpolate(grid: np.ndarray, table: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per step and channel, the quantile function tabulated at levels ``grid`` ``[G]`` by
    ``table`` ``[G, H, C]``, read at levels ``u`` ``[..., H, C]`` (linear between grid
    levels, held at the ends)."""
    table = np.broadcast_to(table, (len(grid), *u.shape[-2:]))
    u = np.clip(u, grid[0], grid[-1])
    j = np.clip(np.searchsorted(grid, u, side="right") - 1, 0, len(grid) - 2)
    w = (u - grid[j]) / (grid[j + 1] - grid[j])
    steps = np.arange(u.shape[-2])[:, None]
    channels = np.arange(u.shape[-1])[None, :]
    low, high = table[j, steps, channels], table[j + 1, steps, channels]
    return low + w * (high - low)


@dataclass(frozen=True)
class Calibration:
    """Residual quantiles of one point forecast (``head``), per step and channel.

    ``residuals`` ``[G, H, C]`` holds the quantiles at ``levels`` ``[G]`` on the
    standardised scale; ``C`` is 1 when the channels share them. ``windows``: validation
    windows read; ``span``: steps pooled per step; ``scale_window``: 0 for quantiles
    shared by every window, else the residuals are in units of the context's spread over
    that many last steps (:func:`context_scale`).
    """

    head: str
    levels: np.ndarray
    residuals: np.ndarray
    windows: int
    span: int = 1
    dataset: str = ""
    scale_window: int = 0

    def __post_init__(self):
        levels = np.asarray(self.levels, dtype=np.float64)
        residuals = np.asarray(self.residuals, dtype=np.float64)
        if (levels.ndim != 1 or len(levels) < 2 or not (np.diff(levels) > 0).all()
                or levels[0] <= 0 or levels[-1] >= 1):
            raise ConfigError("calibration levels must increase within (0, 1), at least two")
        if residuals.ndim != 3 or residuals.shape[0] != len(levels) or not residuals.size:
            raise ConfigError(f"calibration residuals must be [levels, horizon, channels], "
                              f"got shape {residuals.shape} for {len(levels)} levels")
        if not np.isfinite(residuals).all():
            raise ConfigError("calibration residuals hold NaN or infinite values")
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "residuals", np.sort(residuals, axis=0))  # monotone in q

    @property
    def horizon(self) -> int:
        return self.residuals.shape[1]

    @property
    def channels(self) -> int:
        return self.residuals.shape[2]

    def scales(self, x) -> np.ndarray:
        """Each context's scale ``[B, 1, C]`` for contexts ``x`` ``[B, L, C]``
        (standardised): ones for a marginal calibration."""
        return context_scale(x, self.scale_window)

    @classmethod
    def from_residuals(cls, residuals: np.ndarray, head: str, levels: Sequence[float] = LEVELS,
                       min_values: int = MIN_VALUES, dataset: str = "",
                       scales: np.ndarray | None = None,
                       scale_window: int = 0) -> Calibration:
        """Quantiles of ``residuals`` ``[N, H, C]`` (``y - ŷ``, standardised), divided by
        ``scales`` ``[N, 1, C]`` (the contexts' spreads over ``scale_window`` steps) where
        given, each step pooling the steps within ``span // 2`` of its own (fewer at the
        horizon's ends), ``span`` the least odd number giving ``min_values`` residuals per
        channel (at most the horizon's length)."""
        if scales is not None:
            residuals = residuals / scales
        n, horizon, channels = residuals.shape
        if not n:
            raise ConfigError("no residuals to calibrate on; pass validation windows")
        half = min(max(math.ceil((min_values / n - 1) / 2), 0), horizon - 1)
        if half == 0:
            table = np.quantile(residuals, levels, axis=0)
        else:
            table = np.stack([
                np.quantile(residuals[:, max(h - half, 0):h + half + 1].reshape(-1, channels),
                            levels, axis=0)
                for h in range(horizon)
            ], axis=1)
        return cls(head, np.asarray(levels), table, n, 2 * half + 1, dataset,
                   scale_window if scales is not None else 0)

    def quantiles(self, levels: Sequence[float], horizon: int | None = None,
                  scale: np.ndarray | None = None) -> np.ndarray:
        """Residual quantiles at ``levels`` ``[Q, H, C]`` over the first ``horizon`` steps;
        with the contexts' ``scale`` ``[B, 1, C]`` (:meth:`scales`), ``[Q, B, H, C]``."""
        horizon = horizon or self.horizon
        if horizon > self.horizon:
            raise ConfigError(f"the calibration reaches {self.horizon} steps, {horizon} were "
                              "asked")
        table = self.residuals[:, :horizon]
        u = np.broadcast_to(np.asarray(levels, dtype=np.float64)[:, None, None],
                            (len(levels), *table.shape[1:]))
        q = interpolate(self.levels, table, u)
        return q if scale is None else q[:, None] * scale[None]

    def map_paths(self, paths: np.ndarray, point: np.ndarray,
                  scale: np.ndarray | None = None) -> np.ndarray:
        """Sample paths ``[B, S, H, C]`` -> paths whose per-step quantiles are the
        calibrated ones around ``point`` ``[B, H, C]`` (standardised scale), in units of the
        contexts' ``scale`` ``[B, 1, C]`` where given.

        Ensemble copula coupling: the path ranked ``r`` of ``S`` at a step and channel
        takes the calibrated quantile at level ``(r + 0.5) / S`` (held at the grid's
        ends); so each step's values are calibrated and the paths keep the sampled ranks'
        order across steps (ties in sample order).
        """
        samples, horizon = paths.shape[1], paths.shape[2]
        ranks = np.argsort(np.argsort(paths, axis=1, kind="stable"), axis=1, kind="stable")
        u = (ranks + 0.5) / samples
        table = self.residuals[:, :horizon]
        spread = interpolate(self.levels, table, u)
        if scale is not None:
            spread = spread * scale[:, None]
        return (point[:, None] + spread).astype(np.float32)

    def to_dict(self) -> dict:
        return {"head": self.head, "horizon": self.horizon, "channels": self.channels,
                "windows": self.windows, "span": self.span, "dataset": self.dataset,
                "scale_window": self.scale_window, "levels": self.levels.tolist(),
                "residual_quantiles": self.residuals.round(6).tolist()}

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the calibration into the model folder ``directory`` (``data.json``)."""
        return write_data_section(directory, SECTION, self.to_dict())

    @classmethod
    def load(cls, directory: str | os.PathLike, required: bool = True) -> Calibration | None:
        """Read a model folder's calibration; None where it has none and not ``required``."""
        data = read_data_section(directory, SECTION, required, what="calibration")
        if data is None:
            return None
        try:
            return cls(data["head"], data["levels"], data["residual_quantiles"],
                       int(data["windows"]), int(data.get("span", 1)), data.get("dataset", ""),
                       int(data.get("scale_window", 0)))
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"cannot read the calibration of {directory}: {err}; "
                                  f"{CALIBRATE_HINT} to write it anew") from None


@torch.no_grad()
def collect_residuals(forecast: Callable[[Tensor], Tensor], windows,
                      max_windows: int = MAX_WINDOWS, batch_size: int = 256,
                      scale_window: int = SCALE_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """``y - forecast(x)`` ``[N, H, C]`` over at most ``max_windows`` of ``windows`` (pairs
    ``([L, C], [H, C])``, standardised), evenly spread, and the contexts' scales ``[N, 1,
    C]`` over their last ``scale_window`` steps; forecasts longer than ``H`` are cut."""
    if not len(windows):
        raise ConfigError("no validation windows to calibrate on; use a longer series")
    index = np.unique(np.linspace(0, len(windows) - 1, min(len(windows), max_windows))
                      .round().astype(int))
    parts, scales = [], []
    for x, y in DataLoader(Subset(windows, index.tolist()), batch_size=batch_size):
        parts.append((y - forecast(x).float().cpu()[:, :y.shape[1]]).numpy())
        scales.append(context_scale(x, scale_window))
    return np.concatenate(parts), np.concatenate(scales)


def validation_crps(calibration: Calibration, residuals: np.ndarray, scales: np.ndarray,
                    chunk: int = 64) -> float:
    """Mean CRPS (quantile grid) of ``calibration``'s bands around the point forecasts
    whose errors are ``residuals`` ``[N, H, C]``, the contexts' scales ``scales``."""
    from timetok.forecast.probabilistic import CRPS_LEVELS, crps_from_quantiles

    unit = calibration.quantiles(CRPS_LEVELS, residuals.shape[1])[:, None]  # (Q, 1, H, C)
    if not calibration.scale_window:
        scales = np.ones_like(scales)
    total = sum(float(crps_from_quantiles(unit * scales[None, i:i + chunk],
                                          residuals[i:i + chunk]).sum())
                for i in range(0, len(residuals), chunk))
    return total / residuals.size


def calibration_variants(model, windows, head: str | None = None, dataset: str = "",
                         max_windows: int = MAX_WINDOWS, min_values: int = MIN_VALUES,
                         batch_size: int = 256) -> dict[str, tuple[Calibration, float]]:
    """The ``marginal`` and the ``scaled`` calibration of a finetuned ``TokenForecaster``'s
    point forecast ``head`` (default: its default output) on validation ``windows`` (pairs
    ``([L, C], [H, C])``, standardised with the model's scaler, in time order), each with
    its forward CRPS (:func:`forward_crps`)."""
    if not model.config.horizon:
        raise ConfigError("a pretrained language model has no point forecast to calibrate; "
                          "finetune it first")
    head = head or default_output(model.outputs)
    if head not in model.outputs:
        raise ConfigError(f"this model forecasts with {', '.join(model.outputs)}, not {head!r}; "
                          "pick one of those")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    window = min(SCALE_WINDOW, model.config.context_points)
    try:
        residuals, scales = collect_residuals(lambda x: model.predict(x.to(device))[head],
                                              windows, max_windows, batch_size, window)
    finally:
        model.train(was_training)

    def fit(variant: str, part: slice) -> Calibration:
        scaled = variant == "scaled"
        return Calibration.from_residuals(residuals[part], head, min_values=min_values,
                                          dataset=dataset,
                                          scales=scales[part] if scaled else None,
                                          scale_window=window if scaled else 0)

    return {variant: (fit(variant, slice(None)),
                      forward_crps(functools.partial(fit, variant), residuals, scales))
            for variant in ("marginal", "scaled")}


def forward_crps(fit: Callable[[slice], Calibration], residuals: np.ndarray,
                 scales: np.ndarray) -> float:
    """The CRPS of a calibration fitted (``fit(part)``) on the earlier half of the
    residuals, in time order, over the later half; in sample below 2 windows. Scored
    forward, a drift between the period calibrated on and the period forecast counts
    against a calibration as it will on new data."""
    half = len(residuals) // 2
    if not half:
        return validation_crps(fit(slice(None)), residuals, scales)
    return validation_crps(fit(slice(None, half)), residuals[half:], scales[half:])


def calibrate_model(model, windows, head: str | None = None, dataset: str = "",
                    max_windows: int = MAX_WINDOWS, min_values: int = MIN_VALUES,
                    batch_size: int = 256) -> Calibration:
    """The calibration of a finetuned ``TokenForecaster``'s point forecast (see
    :func:`calibration_variants`): marginal, or scaled by each context's recent spread,
    whichever has the lower forward CRPS on the validation windows."""
    variants = calibration_variants(model, windows, head, dataset, max_windows, min_values,
                                    batch_size)
    return min(variants.values(), key=lambda variant: variant[1])[0]


def calibrate_folder(model_dir: str | os.PathLike, data, head: str | None = None,
                     max_windows: int = MAX_WINDOWS) -> Calibration:
    """Calibrate a finetuned model folder on the validation split of ``data`` (a
    ``SplitData``), standardised with the folder's own scaler, and write the calibration
    into the folder."""
    from timetok.core.data.scaler import Scaler
    from timetok.core.data.windows import WindowDataset
    from timetok.forecast.model import TokenForecaster

    model_dir = Path(model_dir)
    model = TokenForecaster.from_pretrained(model_dir).eval()
    scaler = Scaler.from_dict(read_data_section(model_dir, "scaler", what="training scaler"))
    if len(scaler.mean) != data.n_channels:
        raise ConfigError(f"the model was trained on {len(scaler.mean)} channel(s), "
                          f"{data.name} has {data.n_channels}; calibrate on the data it "
                          "was finetuned on")
    values = scaler.transform(data.scaler.inverse_transform(data.splits["val"]))
    windows = WindowDataset(values, model.config.context_points, model.config.horizon,
                            where=f"the validation split of {data.name}")
    calibration = calibrate_model(model, windows, head, data.name, max_windows)
    calibration.save(model_dir)
    return calibration
