"""Classification protocol: every sample of a split, accuracy, macro-F1, a per-class table
and the confusion matrix (metrics from ``torchmetrics``), beside a simple baseline fitted
in the same run on the same splits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader

from timetok.core.errors import CheckpointError, ConfigError


def load_for_evaluation(config, need_head: bool):
    """The TimeMAE folder ``config.model`` and the labelled data the config names (an
    ``EvaluateConfig``-like object), checked against each other."""
    from timetok.core.data.labelled import load_labelled
    from timetok.mae.model import TimeMAE

    model = TimeMAE.from_pretrained(config.model)
    if need_head and model.head is None:
        raise ConfigError(f"{config.model} is a pretrained encoder without a classification "
                          "head; finetune it first (timetok mae finetune)")
    data = load_labelled(config.dataset, data_dir=config.data_dir, data_path=config.data_path,
                         val_fraction=config.val_fraction, seed=config.split_seed)
    c = model.config
    if (c.length, c.n_channels) != (data.length, data.n_channels):
        raise CheckpointError(
            f"{config.model} reads series of {c.length} steps x {c.n_channels} channel(s), "
            f"{data.name} has {data.length} x {data.n_channels}; pass the data it was "
            "trained on"
        )
    if need_head and c.n_classes != data.n_classes:
        raise CheckpointError(f"{config.model} tells {c.n_classes} classes apart, {data.name} "
                              f"has {data.n_classes}; pass the data it was finetuned on")
    return model, data


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
        logits = model(x.to(device), observed=observed.to(device)).logits
        probs.append(logits.softmax(-1).cpu())
        labels.append(y)
    return torch.cat(probs), torch.cat(labels)


@torch.no_grad()
def embed_split(model, dataset, batch_size: int = 256, device: str | torch.device = "cpu"
                ) -> tuple[np.ndarray, np.ndarray]:
    """The pooled representations ``[N, d_model]`` and labels ``[N]`` of a labelled dataset."""
    model.eval().to(device)
    chunks, labels = [], []
    for x, y, observed in DataLoader(dataset, batch_size=batch_size):
        chunks.append(model.embed(x.to(device), observed.to(device)).cpu())
        labels.append(y)
    return torch.cat(chunks).numpy(), torch.cat(labels).numpy()


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
            str(cls): {**{name: float(values[i]) for name, values in per_class.items()},
                       "support": int(support[i])}
            for i, cls in enumerate(classes)
        },
        "confusion": multiclass_confusion_matrix(preds, labels, num_classes=k).tolist(),
    }


# --- the in-run baseline ------------------------------------------------------------------


def _minirocket_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("aeon") is not None


def minirocket_predict(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray,
                       seed: int = 0) -> np.ndarray:
    """aeon's MiniRocket fitted on ``train_x [N, T, C]``; class indices of ``x``."""
    try:
        from aeon.classification.convolution_based import MiniRocketClassifier
    except ImportError:
        raise ImportError("the MiniRocket baseline needs aeon: pip install "
                          "'timetok[classify]'") from None
    model = MiniRocketClassifier(random_state=seed)
    model.fit(train_x.transpose(0, 2, 1), train_y)  # aeon: [N, C, T]
    return model.predict(x.transpose(0, 2, 1)).astype(np.int64)


def nearest_neighbour_predict(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray,
                              chunk: int = 512) -> np.ndarray:
    """The class of each series' nearest training series (Euclidean distance over every
    step and channel: the classic UCR baseline)."""
    flat_train = train_x.reshape(len(train_x), -1).astype(np.float64)
    norms = (flat_train ** 2).sum(1)
    out = []
    for start in range(0, len(x), chunk):
        flat = x[start:start + chunk].reshape(-1, flat_train.shape[1]).astype(np.float64)
        distance = norms[None, :] - 2 * flat @ flat_train.T  # + |x|^2, the same per row
        out.append(train_y[distance.argmin(1)])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


BASELINE_NAMES = {"minirocket": "MiniRocket (aeon)",
                  "nearest-neighbour": "1-nearest neighbour (Euclidean)"}


def baseline_report(data, split: str, baseline: str = "auto", seed: int = 0) -> dict | None:
    """Accuracy and macro-F1 of a simple classifier of the standardised series, fitted on
    the training samples (and the validation ones when ``split`` is test) and scored on
    ``split``; None for ``baseline="none"``."""
    if baseline == "none":
        return None
    if baseline == "auto":
        baseline = "minirocket" if _minirocket_available() else "nearest-neighbour"
    fit_on = ["train", "val"] if split == "test" else ["train"]
    train_x = np.concatenate([data.splits[s].x for s in fit_on])
    train_y = np.concatenate([data.splits[s].y for s in fit_on])
    scored = data.splits[split]
    started = time.perf_counter()
    if baseline == "minirocket":
        predicted = minirocket_predict(train_x, train_y, scored.x, seed)
    else:
        predicted = nearest_neighbour_predict(train_x, train_y, scored.x)
    probs = torch.nn.functional.one_hot(torch.from_numpy(predicted), data.n_classes).float()
    report = classification_report(probs, torch.from_numpy(scored.y), data.classes)
    return {"method": BASELINE_NAMES[baseline], "fitted_on": "+".join(fit_on),
            "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
            "fit_s": round(time.perf_counter() - started, 2)}


def markdown_report(report: dict) -> str:
    """The report of :func:`timetok.mae.recipe.evaluate` as Markdown."""
    from timetok.core.report import markdown_table

    rows = [{"method": "TimeMAE", "accuracy": report["accuracy"],
             "macro_f1": report["macro_f1"]}]
    baseline = report.get("baseline")
    if baseline:
        rows.append({"method": f"{baseline['method']}, fitted on {baseline['fitted_on']}",
                     "accuracy": baseline["accuracy"], "macro_f1": baseline["macro_f1"]})
    per_class = [{"class": c, **m} for c, m in report["per_class"].items()]
    return (f"# TimeMAE, {report['dataset']} {report['split']} ({report['samples']} samples)"
            "\n\n" + markdown_table(rows, ["method", "accuracy", "macro_f1"]) + "\n\n"
            + markdown_table(per_class, ["class", "precision", "recall", "f1", "support"]))
