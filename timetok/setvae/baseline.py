"""The simple baseline beside every SeqSetVAE figure: a logistic regression on
per-variable stay summaries (scikit-learn, in timetok's ``dev`` extra).

Each stay becomes, per variable, the last, mean, min and max of its values, their count
and the hours from its last observation to the stay's last, beside the statics: the
features a clinician's score reads, and the model a reader would try first. They are
standardised on the training stays (clipped to +-5; a missing one 0 with a missing flag).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from timetok.core.data.records import Records

SUMMARIES = ("last", "mean", "min", "max", "count", "hours_since_last")
PENALTIES = (0.003, 0.01, 0.03, 0.1)  # inverse L2 strengths C, picked by validation AUROC
DEFAULT_C = 0.01  # without validation stays: the penalty the benchmark picks most often


def summary_features(records: Records, index: np.ndarray) -> np.ndarray:
    """``[n, V * 6 + P]`` float32 features of the stays ``index [n]`` of ``records`` (NaN
    where a variable is never observed, or a static missing)."""
    index = np.asarray(index, dtype=np.int64)
    rows = records.observations(index)
    n, v = len(index), len(records.variable_names)
    stay = np.repeat(np.arange(n), records.counts()[index])
    cell = stay * v + records.variables[rows].astype(np.int64)  # (stay, variable) pairs
    values = records.values[rows].astype(np.float64)
    times = records.times[rows].astype(np.float64)
    count = np.bincount(cell, minlength=n * v).astype(np.float64)
    seen = count > 0
    mean = np.bincount(cell, values, minlength=n * v) / np.maximum(count, 1)
    low, high = np.full(n * v, np.inf), np.full(n * v, -np.inf)
    np.minimum.at(low, cell, values)
    np.maximum.at(high, cell, values)
    # Observations are sorted by time within a stay: the last write of a cell is its latest.
    last, last_time = np.full(n * v, np.nan), np.full(n * v, np.nan)
    last[cell], last_time[cell] = values, times
    end = np.full(n, 0.0)
    np.maximum.at(end, stay, times)
    since = np.repeat(end, v) - last_time
    columns = [last, mean, low, high, count, since]
    features = np.stack([np.where(seen | (c is count), c, np.nan) for c in columns], axis=-1)
    features = features.reshape(n, v * len(SUMMARIES))
    return np.concatenate([features, records.statics[index]], axis=1).astype(np.float32)


def _sklearn():
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
    except ImportError:
        raise ImportError("the logistic baseline needs scikit-learn: pip install scikit-learn "
                          "(or timetok's dev extra, pip install 'timetok[dev]')") from None
    return LogisticRegression, roc_auc_score


def fit_logistic(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray | None = None,
                 y_val: np.ndarray | None = None
                 ) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """Logistic regression on summary features -> (probability of class 1 of a feature
    matrix, ``{"C", "val_auroc"}``). With validation stays of both classes, the penalty
    of the best validation AUROC among :data:`PENALTIES`; else ``C = 0.01``."""
    LogisticRegression, roc_auc_score = _sklearn()
    with warnings.catch_warnings():  # a variable no training stay observed: its mean is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(x_train, axis=0))
        scale = np.nan_to_num(np.nanstd(x_train, axis=0), nan=1.0) + 1e-6

    def prepare(x: np.ndarray) -> np.ndarray:
        z = (x - mean) / scale
        missing = np.isnan(z)
        return np.concatenate([np.nan_to_num(z).clip(-5, 5), missing], axis=1)

    pick = y_val is not None and len(np.unique(y_val)) == 2
    best, chosen = None, {}
    for c in PENALTIES if pick else (DEFAULT_C,):
        model = LogisticRegression(C=c, max_iter=5000).fit(prepare(x_train), y_train)
        auroc = roc_auc_score(y_val, model.decision_function(prepare(x_val))) if pick else None
        if best is None or auroc > chosen["val_auroc"]:
            best, chosen = model, {"C": c, "val_auroc": None if auroc is None else float(auroc)}
    return (lambda x: best.predict_proba(prepare(x))[:, 1]), chosen
