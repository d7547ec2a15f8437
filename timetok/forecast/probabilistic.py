"""Probabilistic forecast metrics (the protocol that scores a model folder with them is
:func:`timetok.forecast.evaluate.evaluate_probabilistic`).

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

from collections.abc import Iterable, Sequence

import numpy as np

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
