"""PNG figures for reports (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reconstructions(
    path: Path, x: np.ndarray, y: np.ndarray, columns: list[str], max_channels: int = 4
) -> None:
    """``x``, ``y``: ``[windows, T, C]`` truth and reconstruction, one column per window."""
    plt = _pyplot()
    n_windows, _, n_channels = x.shape
    rows = min(n_channels, max_channels)
    channels = np.linspace(0, n_channels - 1, rows).astype(int)
    fig, axes = plt.subplots(rows, n_windows, figsize=(4 * n_windows, 2.2 * rows),
                             squeeze=False, sharex=True)
    for r, c in enumerate(channels):
        for w in range(n_windows):
            ax = axes[r][w]
            ax.plot(x[w, :, c], lw=1.0, color="black", label="input")
            ax.plot(y[w, :, c], lw=1.0, color="tab:orange", label="reconstruction")
            if w == 0:
                ax.set_ylabel(columns[c])
            if r == 0:
                ax.set_title(f"window {w + 1}")
    axes[0][0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_code_usage(path: Path, counts: np.ndarray) -> None:
    """Histogram of code frequencies, most used first; ``counts: [levels, K]``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3))
    for level, row in enumerate(np.atleast_2d(counts)):
        freq = np.sort(row)[::-1] / max(row.sum(), 1)
        ax.bar(np.arange(len(freq)), freq, width=1.0, alpha=0.7, label=f"level {level}")
    ax.set_xlabel("code (sorted by frequency)")
    ax.set_ylabel("share of positions")
    used = int((np.atleast_2d(counts)[0] > 0).sum())
    ax.set_title(f"code usage: {used} of {counts.shape[-1]} codes used")
    if len(np.atleast_2d(counts)) > 1:
        ax.legend()
    fig.tight_layout()
    _save(fig, path)


def plot_forecast(path: Path, context: np.ndarray, stats: dict[str, np.ndarray],
                  columns: list[str], truth: np.ndarray | None = None,
                  max_channels: int = 8, band: str = "samples, 10-90 %") -> None:
    """Context, the point forecast (or, without one, the samples' median), the 10-90 %
    band (``q10`` to ``q90``, labelled ``band``) when there is one, and the truth when
    known. Up to ``max_channels`` channels, evenly picked; the title says when some are
    left out."""
    plt = _pyplot()
    n_channels = context.shape[1]
    channels = np.linspace(0, n_channels - 1, min(n_channels, max_channels)).astype(int)
    fig, axes = plt.subplots(len(channels), 1, figsize=(10, 2.2 * len(channels)),
                             squeeze=False, sharex=True)
    n_context = len(context)
    point = stats["forecast"] if "forecast" in stats else stats["median"]
    label = "forecast" if "forecast" in stats else "median of samples"
    future = np.arange(n_context, n_context + len(point))
    for ax, c in zip(axes[:, 0], channels, strict=True):
        ax.plot(np.arange(n_context), context[:, c], color="black", lw=1, label="context")
        if "q10" in stats:
            ax.fill_between(future, stats["q10"][:, c], stats["q90"][:, c], alpha=0.25,
                            color="tab:blue", label=band)
        ax.plot(future, point[:, c], color="tab:blue", lw=1.2, label=label)
        if truth is not None:
            ax.plot(future[: len(truth)], truth[: len(point), c], color="tab:green", lw=1,
                    label="truth")
        ax.set_ylabel(columns[c])
    shown = "" if len(channels) == n_channels else (
        f" ({len(channels)} of {n_channels} channels shown)")
    axes[0, 0].set_title(f"{len(point)}-step forecast{shown}", fontsize=10)
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=4)
    fig.tight_layout()
    _save(fig, path)


def plot_metric_by_horizon(path: Path, records: list[dict], metric: str = "mse",
                           leave_out: tuple[str, ...] = ()) -> None:
    """One panel per dataset: ``metric`` against the horizon, a line per measured method
    and a marker per published figure, from benchmark records (settings ``H=<n>``);
    methods in ``leave_out`` (one far off the scale, say) are not drawn."""
    from matplotlib.ticker import ScalarFormatter

    plt = _pyplot()
    records = [r for r in records if r["metric"] == metric and r["setting"].startswith("H=")
               and r["method"] not in leave_out]
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        panel = [r for r in records if r["dataset"] == dataset]
        for method in dict.fromkeys(r["method"] for r in panel):
            points = sorted((int(r["setting"][2:]), r["value"]) for r in panel
                            if r["method"] == method)
            horizons, values = zip(*points, strict=True)
            published = any(r["source"] == "published" for r in panel if r["method"] == method)
            style = dict(ls="none", marker="x") if published else dict(marker="o", ms=3)
            ax.plot(horizons, values, label=method + (" (published)" if published else ""),
                    lw=2.2 if method.startswith("timetok") else 1, **style)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({int(r["setting"][2:]) for r in panel}))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set(title=dataset, xlabel="horizon", ylabel=f"test {metric}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """Render to PNG bytes, then write them atomically (a unique temporary file per write)."""
    from io import BytesIO

    from timetok.core.utils import atomic_write_bytes

    buffer = BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plot_confusion(path: Path, matrix: np.ndarray, classes: list[str]) -> None:
    """Confusion matrix, rows the true class, each row as shares of that class."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=float)
    shares = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1)
    size = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right")
    ax.set_yticks(ticks, classes)
    for i, j in np.ndindex(matrix.shape):
        ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=8,
                color="white" if shares[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    _save(fig, path)


def plot_history(path: Path, history_csv: Path, columns: list[str], title: str) -> None:
    """Curves of ``columns`` of a run's ``history.csv`` against the epoch."""
    import csv

    plt = _pyplot()
    with history_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    epochs = [int(row["epoch"]) for row in rows]
    for column in columns:
        values = [float(row[column]) if row.get(column) else np.nan for row in rows]
        ax.plot(epochs, values, marker="o", ms=3, label=column)
    ax.set(xlabel="epoch", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_grouped_bars(path: Path, rows: list[dict], metric: str, title: str) -> None:
    """One group of bars per dataset, a bar per method, error bars from ``<metric> sd``."""
    plt = _pyplot()
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(datasets)), 4.2))
    for i, method in enumerate(methods):
        found = {r["dataset"]: r for r in rows if r["method"] == method}
        xs = [d + (i - (len(methods) - 1) / 2) * width for d in range(len(datasets))]
        ys = [found[d][metric] if d in found else np.nan for d in datasets]
        errs = [(found[d].get(f"{metric} sd") or 0) if d in found else 0 for d in datasets]
        ax.bar(xs, ys, width, yerr=errs, capsize=2, label=method)
    ax.set_xticks(range(len(datasets)), datasets)
    low = np.nanmin([r[metric] for r in rows]) if rows else 0
    ax.set_ylim(max(0.0, low - 0.1), 1.0)
    ax.set(ylabel=metric, title=title)
    ax.legend(fontsize=7, ncol=min(len(methods), 5), loc="upper center",
              bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    _save(fig, path)


def plot_label_curve(path: Path, rows: list[dict], metric: str, title: str) -> None:
    """``metric`` against the share of labels (``rows`` with ``labels`` as "5%"), a line per
    method with error bars from ``<metric> sd``, the share on a log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = sorted((float(r["labels"].rstrip("%")), r) for r in rows if r["method"] == method)
        ax.errorbar([share for share, _ in mine], [r[metric] for _, r in mine],
                    yerr=[r.get(f"{metric} sd") or 0 for _, r in mine], marker="o", capsize=2,
                    label=method)
    ax.set_xscale("log")
    ax.set(xlabel="labelled share of the training samples (%)", ylabel=metric, title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_roc(path: Path, reports: dict[str, dict]) -> None:
    """ROC curves (``mortality_report``'s ``roc``), one per label, against the diagonal of
    a random ranking."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label, report in reports.items():
        ax.plot(report["roc"]["fpr"], report["roc"]["tpr"], lw=1.5,
                label=f"{label} (AUROC {report['auroc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="random")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1),
           ylim=(0, 1.01), title="ROC")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_precision_recall(path: Path, reports: dict[str, dict]) -> None:
    """Precision against recall (``mortality_report``'s ``pr``), one curve per label, with
    the prevalence (a random ranking's precision)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label, report in reports.items():
        ax.plot(report["pr"]["recall"], report["pr"]["precision"], lw=1.5,
                label=f"{label} (AUPRC {report['auprc']:.3f})")
    prevalence = next(iter(reports.values()))["prevalence"]
    ax.axhline(prevalence, color="grey", lw=0.8, ls="--", label=f"prevalence {prevalence:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01),
           title="precision-recall")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_calibration(path: Path, reports: dict[str, dict]) -> None:
    """Reliability diagram: per label, the observed share of positives against the mean
    predicted probability per bin (``mortality_report``'s ``calibration``), each point
    sized by its stays."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfectly calibrated")
    for label, report in reports.items():
        bins = report["calibration"]
        predicted = [b["predicted"] for b in bins]
        observed = [b["observed"] for b in bins]
        sizes = np.array([b["stays"] for b in bins], dtype=float)
        line, = ax.plot(predicted, observed, lw=1)
        ax.scatter(predicted, observed, s=20 + 180 * sizes / max(sizes.max(initial=0), 1),
                   color=line.get_color(), label=f"{label} (size: stays)")
    ax.set(xlabel="mean predicted probability", ylabel="observed share of deaths",
           xlim=(0, 1), ylim=(0, 1), title="calibration")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_kl_per_dim(path: Path, kl: list[float], free_bits: float, active: int) -> None:
    """KL to the prior of each latent dimension (nats per set) with the free-bits floor: a
    collapsed dimension sits at or below the floor."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.25 * len(kl) + 2), 3.2))
    ax.bar(np.arange(len(kl)), kl, color="tab:blue")
    ax.set_xticks(np.arange(0, len(kl), max(1, len(kl) // 16)))
    ax.axhline(free_bits, color="tab:red", lw=0.8, ls="--", label=f"free bits {free_bits:g}")
    ax.set(xlabel="latent dimension", ylabel="KL (nats per set)",
           title=f"KL per dimension on validation: {active} of {len(kl)} active")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_usage_snapshots(path: Path, snapshots: dict[int, np.ndarray], most: int = 6) -> None:
    """The code-frequency distribution (most used first) at up to ``most`` epochs spread
    over training: a flattening curve is a codebook coming into use."""
    plt = _pyplot()
    epochs = sorted(snapshots)
    keep = sorted({epochs[int(i)] for i in np.linspace(0, len(epochs) - 1, min(most,
                                                                               len(epochs)))})
    fig, ax = plt.subplots(figsize=(8, 3.5))
    colours = plt.cm.viridis(np.linspace(0, 1, len(keep)))
    for colour, epoch in zip(colours, keep, strict=True):
        counts = snapshots[epoch]
        freq = np.sort(counts)[::-1] / max(counts.sum(), 1)
        used = int((counts > 0).sum())
        ax.plot(np.where(freq > 0, freq, np.nan), color=colour,
                label=f"epoch {epoch}: {used}/{len(counts)} used")
    ax.set(xlabel="code (sorted by frequency)", ylabel="share of positions", yscale="log",
           title="codebook usage over training (validation images)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
