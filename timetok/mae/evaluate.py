"""Classification protocol: every sample of a split, accuracy, macro-F1, a per-class table
and the confusion matrix (metrics from ``torchmetrics``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.utils.data import DataLoader

from timetok.core.errors import ConfigError


@torch.no_grad()
def predict_split(model, dataset, batch_size: int = 256,
                  track: Callable[[Iterable], Iterable] = iter,
                  device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities ``[N, K]`` and true labels ``[N]`` over a labelled dataset of
    ``(x, y, observed)`` items."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    model.eval().to(device)
    probs, labels = [], []
    for x, y, observed in track(DataLoader(dataset, batch_size=batch_size)):
        logits = model(x.to(device), observed.to(device)).logits
        probs.append(logits.softmax(-1).cpu())
        labels.append(y)
    return torch.cat(probs), torch.cat(labels)


def classification_report(probs: torch.Tensor, labels: torch.Tensor,
                          classes: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix
    (rows: true class, columns: predicted)."""
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    k = len(classes)
    preds = probs.argmax(-1)
    per_class = {
        name: metric(preds, labels, num_classes=k, average="none")
        for name, metric in [("precision", multiclass_precision),
                             ("recall", multiclass_recall), ("f1", multiclass_f1_score)]
    }
    support = torch.bincount(labels, minlength=k)
    return {
        "samples": len(labels),
        "accuracy": float(multiclass_accuracy(preds, labels, num_classes=k, average="micro")),
        "macro_f1": float(multiclass_f1_score(preds, labels, num_classes=k, average="macro")),
        "per_class": {
            cls: {**{name: float(values[i]) for name, values in per_class.items()},
                  "support": int(support[i])}
            for i, cls in enumerate(classes)
        },
        "confusion": multiclass_confusion_matrix(preds, labels, num_classes=k).tolist(),
    }
