"""Mortality protocol: AUROC and AUPRC (the literature's PhysioNet 2012 metrics), the
Brier score, the ROC and precision-recall curves and a reliability table (metrics from
``torchmetrics``)."""

from __future__ import annotations

import numpy as np
import torch

from timetok.core.errors import DataError


def calibration_bins(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width bins of the predicted probability ``probs [N]``: per non-empty bin its
    range, stays, mean prediction and observed share of positives ``labels [N]``."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows.append({"low": float(edges[b]), "high": float(edges[b + 1]),
                         "stays": int(inside.sum()), "predicted": float(probs[inside].mean()),
                         "observed": float(labels[inside].mean())})
    return rows


def mortality_report(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict:
    """AUROC, AUPRC (average precision), Brier score, expected calibration error, the
    curves' points and the reliability bins of ``probs [N]`` (probability of class 1)
    against ``labels [N]`` (0 or 1)."""
    from torchmetrics.functional.classification import (
        binary_auroc,
        binary_average_precision,
        binary_calibration_error,
        binary_precision_recall_curve,
        binary_roc,
    )

    probs = np.asarray(probs, dtype=np.float32)
    labels = np.asarray(labels).astype(np.int64)
    if probs.shape != labels.shape or probs.ndim != 1:
        raise DataError(f"probabilities {list(probs.shape)} and labels {list(labels.shape)} "
                        "must be two [N] arrays")
    positives = int(labels.sum())
    if not 0 < positives < len(labels):
        raise DataError(f"AUROC and AUPRC need both classes; the {len(labels)} stays hold "
                        f"{positives} positive(s); evaluate on more stays")
    p, y = torch.from_numpy(probs), torch.from_numpy(labels)
    fpr, tpr, _ = binary_roc(p, y)
    precision, recall, _ = binary_precision_recall_curve(p, y)
    return {
        "stays": len(labels), "positives": positives, "prevalence": positives / len(labels),
        "auroc": float(binary_auroc(p, y)), "auprc": float(binary_average_precision(p, y)),
        "brier": float(((p - y) ** 2).mean()),
        "ece": float(binary_calibration_error(p, y, n_bins=bins)),
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "pr": {"precision": precision.tolist(), "recall": recall.tolist()},
        "calibration": calibration_bins(probs, labels.astype(np.float64), bins),
    }
