"""Probabilistic forecast metrics, and their protocol for a finetuned model folder.

Quantile forecasts are arrays ``[Q, ...]`` at levels ``[Q]`` over values ``y`` ``[...]``:

- ``quantile_loss``: the pinball loss ``max(q (y - ŷ_q), (q - 1) (y - ŷ_q))`` per level
  and value;
- ``weighted_quantile_loss`` (WQL, as Chronos reports it): ``2 Σ pinball_q / Σ |y|``,
  averaged over the levels (0.1, ..., 0.9 by default);
- ``crps_from_quantiles``: twice the pinball loss averaged over the levels, the
  quantile-grid approximation of CRPS (exact as the grid fills (0, 1));
- ``coverage``: the share of values inside an interval.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from timetok.core.errors import ConfigError
from timetok.core.nn.sampling import Sampling

WQL_LEVELS = tuple(round(0.1 * i, 1) for i in range(1, 10))
# The midpoints of 20 equal bins of (0, 1): CRPS's integral over the levels by the
# midpoint rule.
CRPS_LEVELS = tuple(round(0.025 + 0.05 * i, 3) for i in range(20))
INTERVALS = {"coverage80": (0.1, 0.9), "coverage50": (0.25, 0.75)}


def quantile_loss(quantile_preds: np.ndarray, y: np.ndarray,
                  quantiles: Sequence[float]) -> np.ndarray:
    """Pinball loss ``[Q, ...]`` of ``quantile_preds`` ``[Q, ...]`` at levels ``quantiles``."""
    q = np.asarray(quantiles, dtype=np.float64).reshape(-1, *[1] * np.ndim(y))
    miss = np.asarray(y, dtype=np.float64)[None] - quantile_preds
    return np.maximum(q * miss, (q - 1) * miss)


def weighted_quantile_loss(quantile_preds: np.ndarray, y: np.ndarray,
                           quantiles: Sequence[float] = WQL_LEVELS) -> float:
    """WQL: ``2 Σ pinball_q / Σ |y|`` averaged over the levels ``quantiles``."""
    loss = quantile_loss(quantile_preds, y, quantiles)
    per_level = 2 * loss.reshape(len(quantiles), -1).sum(axis=1) / np.abs(y).sum()
    return float(per_level.mean())


def crps_from_quantiles(quantile_preds: np.ndarray, y: np.ndarray,
                        quantiles: Sequence[float] = CRPS_LEVELS) -> np.ndarray:
    """Approximate CRPS per value ``[...]``: twice the pinball loss averaged over evenly
    spread levels ``quantiles``."""
    return 2 * quantile_loss(quantile_preds, y, quantiles).mean(axis=0)


def coverage(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> float:
    """The share of ``y`` within ``[lower, upper]``."""
    return float(((y >= lower) & (y <= upper)).mean())


def sample_quantiles(samples: np.ndarray, quantiles: Sequence[float],
                     axis: int = 0) -> np.ndarray:
    """Empirical quantiles ``[Q, ...]`` of ``samples`` along ``axis``, sorted along Q."""
    return np.sort(np.quantile(samples, quantiles, axis=axis), axis=0)


class QuantileSums:
    """Running sums for CRPS, WQL and coverage over batches of quantile forecasts at
    ``levels``, which must hold ``CRPS_LEVELS``, ``WQL_LEVELS`` and the intervals' ends.

    CRPS and coverage are read on the scale given; WQL, being relative to ``Σ |y|``, on
    the original scale (``scale`` and ``shift`` per channel undo the standardisation).
    """

    def __init__(self, levels: Sequence[float], scale: np.ndarray, shift: np.ndarray):
        self.levels = list(levels)
        self.scale, self.shift = scale, shift
        self.crps = self.abs_y = 0.0
        self.pinball = np.zeros(len(WQL_LEVELS))
        self.inside = dict.fromkeys(INTERVALS, 0.0)
        self.n = 0

    def _at(self, preds: np.ndarray, levels: Iterable[float]) -> np.ndarray:
        return preds[[self.levels.index(q) for q in levels]]

    def update(self, preds: np.ndarray, y: np.ndarray) -> None:
        """``preds`` ``[Q, B, H, C]`` at ``levels``, ``y`` ``[B, H, C]``, standardised."""
        self.crps += float(crps_from_quantiles(self._at(preds, CRPS_LEVELS), y).sum())
        original = self._at(preds, WQL_LEVELS) * self.scale + self.shift
        y_original = y * self.scale + self.shift
        self.pinball += quantile_loss(original, y_original, WQL_LEVELS).reshape(
            len(WQL_LEVELS), -1).sum(axis=1)
        self.abs_y += float(np.abs(y_original).sum())
        for name, (low, high) in INTERVALS.items():
            self.inside[name] += coverage(*self._at(preds, (low, high)), y) * y.size
        self.n += y.size

    def result(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {"crps": self.crps / n,
                "wql": float((2 * self.pinball / max(self.abs_y, 1e-12)).mean()),
                **{name: count / n for name, count in self.inside.items()}}


@torch.no_grad()
def evaluate_probabilistic(
    model_dir: str | os.PathLike,
    data,
    split: str = "test",
    batch_size: int = 64,
    stride: int = 1,
    samples: int = 100,
    sample_stride: int = 50,
    sampling: Sampling = Sampling(),
    track: Callable[[Iterable], Iterable] = iter,
    device: str | torch.device = "cpu",
    calibration=None,
) -> dict:
    """CRPS, WQL (0.1-0.9), coverage80 and coverage50 of a finetuned model folder's
    forecasts on a split of ``data`` (a ``SplitData`` of the data it was finetuned on),
    standardised scale (WQL: original scale):

    - ``timetok-calibrated``: its point forecast plus the calibrated residual quantiles
      (``calibration`` where given, else the folder's ``calibration.json``, else fitted on
      the validation split), scaled by the context's spread where the calibration is;
    - ``residual-quantiles``: the in-run linear baseline with the lower validation MSE
      (``dlinear`` or ``rlinear``, fitted as ``evaluate_forecaster`` fits them) plus its
      own validation residuals' quantiles, the same for every window;
    - with ``samples``, on every ``sample_stride``-th batch: ``timetok-sampled``, the
      language model's raw paths' quantiles, and ``timetok-sampled-calibrated``, the
      same paths mapped onto the calibration (what ``forecast --samples`` writes).

    Each method reports the windows it was scored on.
    """
    from timetok.core.nn.lstsq import apply_linear, apply_rlinear, fit_linear, linear_revin
    from timetok.forecast.calibration import Calibration, calibrate_model, collect_residuals
    from timetok.forecast.pipeline import Forecaster

    for name, value, least in (("batch_size", batch_size, 1), ("stride", stride, 1),
                               ("samples", samples, 0), ("sample_stride", sample_stride, 1)):
        if value < least:
            raise ConfigError(f"{name} must be >= {least}, got {value}")
    forecaster = Forecaster.from_pretrained(model_dir)  # checks the calibration, if any
    model = forecaster.model.to(device)
    context, horizon = model.config.context_points, model.config.horizon
    if not horizon:
        raise ConfigError("a pretrained language model has no point forecast to evaluate; "
                          "finetune it first")
    val = data.windows("val", context, horizon)
    source = "given"
    if calibration is None:
        calibration, source = forecaster.calibration, "calibration.json"
    if calibration is None:
        calibration = calibrate_model(model, val, dataset=data.name)
        source = "fitted on the validation split"

    # evaluate_forecaster's linear baselines, as it fits them
    train = data.windows("train", context, horizon)
    fits = {"dlinear": fit_linear(train, val_windows=val),
            "rlinear": fit_linear(train, linear_revin(), val_windows=val)}
    baselines = {"dlinear": lambda x: apply_linear(fits["dlinear"].weights, x),
                 "rlinear": lambda x: apply_rlinear(fits["rlinear"].weights, x)}
    baseline = min(fits, key=lambda name: fits[name].val_mse)
    baseline_calibration = Calibration.from_residuals(
        collect_residuals(baselines[baseline], val)[0], baseline)

    levels = sorted({*CRPS_LEVELS, *WQL_LEVELS, *(q for pair in INTERVALS.values()
                                                  for q in pair)})
    scale, shift = data.scaler.std.astype(np.float64), data.scaler.mean.astype(np.float64)
    names = ["timetok-calibrated", "residual-quantiles"]
    if samples:
        names += ["timetok-sampled", "timetok-sampled-calibrated"]
    sums = {name: QuantileSums(levels, scale, shift) for name in names}
    windows = dict.fromkeys(names, 0)
    baseline_spread = baseline_calibration.quantiles(levels)[:, None]
    test = data.windows(split, context, horizon, stride)
    for i, (x, y) in enumerate(track(DataLoader(test, batch_size=batch_size))):
        xd, y = x.to(device), y.numpy()
        point = model.predict(xd)[calibration.head].float().cpu().numpy()
        scale = calibration.scales(x)
        spread = calibration.quantiles(levels, scale=scale)  # (Q, B, H, C)
        preds = {"timetok-calibrated": point[None] + spread,
                 "residual-quantiles": baselines[baseline](x).numpy()[None] + baseline_spread}
        if samples and i % sample_stride == 0:
            paths = model.sample(xd, horizon, samples, sampling).float().cpu().numpy()
            preds["timetok-sampled"] = sample_quantiles(paths, levels, axis=1)
            preds["timetok-sampled-calibrated"] = sample_quantiles(
                calibration.map_paths(paths, point, scale), levels, axis=1)
        for name, pred in preds.items():
            sums[name].update(pred, y)
            windows[name] += len(y)
    return {
        "dataset": data.name, "split": split, "horizon": horizon, "context_points": context,
        "stride": stride, "head": calibration.head, "calibration": source, "baseline": baseline,
        "samples": samples,
        "methods": {name: {**s.result(), "windows": windows[name]} for name, s in sums.items()},
    }
