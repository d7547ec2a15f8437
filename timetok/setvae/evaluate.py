"""Mortality protocol: AUROC and AUPRC (the literature's PhysioNet 2012 metrics), the
Brier score, the ROC and precision-recall curves and a reliability table (metrics from
``torchmetrics``); the stays an evaluation reads, the baseline beside the model and the
report folder (the recipe is :func:`timetok.setvae.recipe.evaluate`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from timetok.core.data.records import Records
from timetok.core.errors import ConfigError, DataError


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


# --- the evaluate recipe's parts -----------------------------------------------------------

PARTS = ("train", "val", "test")


def model_stays(clf, model: str, dataset: str | None = None, data_dir: str | None = None,
                data_path: str | None = None, sets: tuple[str, ...] | None = None,
                limit: int | None = None) -> Records:
    """The stays to score with a finetuned folder's classifier: the model's own data (its
    ``records`` settings) unless ``dataset``, ``data_dir`` or ``data_path`` name other data;
    its sets and limit unless given or ``dataset`` names another dataset."""
    from timetok.core.data.records import load_records
    from timetok.setvae.artifacts import first_stays

    own = clf.settings
    dataset = dataset or own.dataset
    same = dataset == own.dataset
    if same and data_path is None and data_dir is None:
        if not Path(own.source).exists():
            raise ConfigError(f"{model} was trained on {own.source}, which is not there; "
                              "pass data_dir or data_path")
        data_path = own.source
    if sets is None and same and own.sets:
        sets = tuple(own.sets)
    if limit is None and same:
        limit = own.limit
    records = load_records(dataset, data_dir=data_dir, data_path=data_path, sets=sets)
    return first_stays(records, limit) if limit else records


def check_unseen(clf, model: str, records: Records, index: np.ndarray, part: str) -> None:
    """Refuse stays of the model's own dataset that it trained or selected on."""
    if records.name != clf.settings.dataset or clf.split is None:
        return
    seen = set(clf.split["train"]).union(clf.split["val"])
    overlap = sorted(seen.intersection(records.ids[index].tolist()))
    if overlap:
        raise ConfigError(
            f"{len(overlap)} of the {len(index)} {part} stays (e.g. {overlap[0]}) were among "
            f"{model}'s training or validation stays; evaluate the stays of split "
            f"{clf.settings.split}, the split it was trained on")


def logistic_baseline(records: Records, parts: tuple[np.ndarray, ...], part: str,
                      bins: int = 10) -> dict:
    """The logistic regression on stay summaries (:mod:`timetok.setvae.baseline`), fitted
    on the split's training stays, its penalty picked on the validation stays when the
    test stays are scored, and its report on the ``part`` stays; ``{"skipped": why}``
    when scikit-learn is missing or the training stays hold one class."""
    from timetok.setvae.baseline import fit_logistic, summary_features

    train, val, scored = parts[0], parts[1], parts[PARTS.index(part)]
    labels = records.labels
    if len(np.unique(labels[train])) < 2:
        return {"skipped": "the training stays hold one class"}
    pick = (summary_features(records, val), labels[val]) if part == "test" else (None, None)
    try:
        predict, chosen = fit_logistic(summary_features(records, train), labels[train], *pick)
    except ImportError as err:
        return {"skipped": str(err)}
    probs = predict(summary_features(records, scored)).astype(np.float32)
    return {"method": "logistic regression on stay summaries", "C": chosen["C"],
            **mortality_report(probs, labels[scored], bins)}


HEADLINE = ("stays", "positives", "auroc", "auprc", "brier", "ece")


def headline_rows(report: dict) -> list[dict]:
    """The model's figures and, where it ran, the baseline's: one row each."""
    rows = [{"method": "SeqSetVAE", **{k: report[k] for k in HEADLINE}}]
    baseline = report.get("baseline") or {}
    if "auroc" in baseline:
        rows.append({"method": f"logistic (C {baseline['C']:g})",
                     **{k: baseline[k] for k in HEADLINE}})
    return rows


def headline(report: dict) -> dict:
    """The figures a person reads first: the model's, the baseline's (or why it was
    skipped) and the report folder."""
    baseline = report.get("baseline")
    if baseline and "auroc" in baseline:
        baseline = {"method": baseline["method"], "C": baseline["C"],
                    **{k: baseline[k] for k in HEADLINE}}
    return {**{k: report[k] for k in HEADLINE}, "baseline": baseline, "out": report["out"]}


def write_evaluation(out_dir: Path, report: dict, ids: np.ndarray, labels: np.ndarray,
                     probs: np.ndarray) -> str:
    """``report.json``, ``report.md``, ``predictions.csv`` and the ROC, precision-recall and
    calibration curves (the baseline's beside the model's) in ``out_dir``; returns the
    Markdown."""
    from timetok.core.plots import plot_calibration, plot_precision_recall, plot_roc
    from timetok.core.report import markdown_table, write_report
    from timetok.core.utils import atomic_write_text

    baseline = report.get("baseline") or {}
    note = ""
    if "skipped" in baseline:
        note = f"\n\nBaseline skipped: {baseline['skipped']}."
    elif baseline:
        note = ("\n\nlogistic: a logistic regression on per-variable stay summaries, fitted "
                "on the split's training stays in this run.")
    markdown = (f"# SeqSetVAE mortality, {report['dataset']} split {report['split']}, "
                f"{report['part']} stays\n\n"
                + markdown_table(headline_rows(report), ["method", *HEADLINE]) + note
                + "\n\n## calibration\n\n"
                + markdown_table(report["calibration"],
                                 ["low", "high", "stays", "predicted", "observed"]))
    rows = "".join(f"{i},{y},{p:.6f}\n" for i, y, p in zip(ids, labels, probs, strict=True))
    write_report(out_dir, report, markdown)
    atomic_write_text(out_dir / "predictions.csv", "stay_id,label,probability\n" + rows)
    curves = {Path(report["model"]).name: report}
    if "auroc" in baseline:
        curves["logistic"] = baseline
    plot_roc(out_dir / "roc.png", curves)
    plot_precision_recall(out_dir / "precision_recall.png", curves)
    plot_calibration(out_dir / "calibration.png", curves)
    return markdown
