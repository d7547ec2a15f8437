"""Reconstruction protocol for tokenizers: every test window, both scales, code statistics.

:func:`load` reads a model folder and the dataset it is evaluated on; :func:`evaluate`
runs the protocol and returns an :class:`Evaluation` (report, samples, code counts) that
:meth:`Evaluation.save` writes as ``report.json``/``report.md`` and two plots. The CLI's
``timetok tokenizer evaluate`` and the benchmark both call these.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from timetok.core.data.series import SplitData
from timetok.core.errors import ConfigError
from timetok.core.nn.quantizer import CodeUsage
from timetok.core.nn.revin import RevIN
from timetok.tokenizer.model import TokenizerModel

REPORT_FIGURES = ["mse_revin", "mae_revin", "usage", "perplexity", "entropy_bits",
                  "dead_codes", "codebook_size"]


@dataclass
class Evaluation:
    """A tokenizer's reconstruction report and what its plots draw."""

    report: dict  # JSON-ready figures, "per_channel" among them
    samples_x: np.ndarray  # [n, T, C] test windows, standardised scale
    samples_y: np.ndarray  # [n, T, C] their reconstructions
    code_counts: np.ndarray  # [levels, K] occurrences of each code
    columns: list[str]

    def markdown(self) -> str:
        from timetok.core.report import markdown_table

        report = self.report
        rows = [{"channel": c, **m} for c, m in report["per_channel"].items()]
        rows.append({"channel": "all", "mse": report["mse"], "mae": report["mae"]})
        return "\n\n".join([
            f"# Tokenizer reconstruction: {report['dataset']} {report['split']} "
            f"({report['windows']} windows of {report['context_points']})",
            "Standardised scale (dataset scaler, RevIN inverted):",
            markdown_table(rows, ["channel", "mse", "mae"]),
            markdown_table([report], REPORT_FIGURES),
        ])

    def plot(self, reconstructions: Path, code_usage: Path) -> None:
        from timetok.core.plots import plot_code_usage, plot_reconstructions

        plot_reconstructions(reconstructions, self.samples_x, self.samples_y, self.columns)
        plot_code_usage(code_usage, self.code_counts)

    def save(self, out_dir: str | os.PathLike) -> Path:
        """``report.json``, ``report.md``, ``reconstructions.png`` and ``code_usage.png``."""
        from timetok.core.report import write_report

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_report(out_dir, self.report, self.markdown())
        self.plot(out_dir / "reconstructions.png", out_dir / "code_usage.png")
        return out_dir


def load(model_dir: str | os.PathLike, dataset: str = "etth1", *,
         data_path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
         ) -> tuple[TokenizerModel, SplitData]:
    """A tokenizer folder and a dataset split and standardised for it (the dataset's own
    train scaler, as in training); refuses data with another channel count."""
    from timetok.core.data.series import load_splits

    model = TokenizerModel.from_pretrained(model_dir)
    data = load_splits(dataset, model.config.context_points, data_dir=data_dir,
                       data_path=data_path)
    if data.n_channels != model.config.n_channels:
        raise ConfigError(
            f"the model was trained on {model.config.n_channels} channel(s), {data.path.name} "
            f"has {data.n_channels}; evaluate on data with the same columns"
        )
    return model, data


@torch.no_grad()
def evaluate(
    model: TokenizerModel,
    data: SplitData,
    split: str = "test",
    stride: int = 1,
    batch_size: int = 256,
    track: Callable[[Iterable], Iterable] = iter,
    n_samples: int = 3,
) -> Evaluation:
    """Reconstruction MSE/MAE per channel and overall, code usage, and a few samples.

    Two scales: the dataset's standardised scale (RevIN inverted: what a forecaster sees)
    and each window's own RevIN scale (what the network is trained on). ``stride`` 1 reads
    every window of the split (the protocol).
    """
    if stride < 1:
        raise ConfigError(f"stride must be >= 1, got {stride}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if split not in data.splits:
        raise ConfigError(f"split must be one of {', '.join(data.splits)}, got {split!r}")
    model.eval()
    windows = data.windows(split, model.config.context_points, 0, stride)
    loader = DataLoader(windows, batch_size=batch_size, shuffle=False)
    revin = RevIN(data.n_channels)
    usage = CodeUsage(model.codebook_size, model.quantizer.levels)
    sq = torch.zeros(data.n_channels, dtype=torch.float64)
    ab = torch.zeros_like(sq)
    sq_revin = torch.zeros_like(sq)
    ab_revin = torch.zeros_like(sq)
    samples_x, samples_y = [], []
    picks = set(np.linspace(0, len(windows) - 1, n_samples).astype(int).tolist())
    seen = 0
    for x, _ in track(loader):
        codes, stats = model.encode(x)
        y = model.decode(codes, stats)
        usage.update(codes)
        err = y - x
        sq += err.double().pow(2).sum(dim=(0, 1))
        ab += err.double().abs().sum(dim=(0, 1))
        xn, window_stats = revin.normalize(x)
        err_n = (y - window_stats.mean) / window_stats.std - xn
        sq_revin += err_n.double().pow(2).sum(dim=(0, 1))
        ab_revin += err_n.double().abs().sum(dim=(0, 1))
        for i in sorted(p - seen for p in picks if seen <= p < seen + len(x)):
            samples_x.append(x[i].numpy())
            samples_y.append(y[i].numpy())
        seen += len(x)
    points = len(windows) * model.config.context_points
    per_channel = {
        name: {"mse": float(sq[c] / points), "mae": float(ab[c] / points)}
        for c, name in enumerate(data.columns)
    }
    total = points * data.n_channels
    report = {
        "dataset": data.name,
        "split": split,
        "windows": len(windows),
        "context_points": model.config.context_points,
        "stride": stride,
        "mse": float(sq.sum() / total),
        "mae": float(ab.sum() / total),
        "mse_revin": float(sq_revin.sum() / total),
        "mae_revin": float(ab_revin.sum() / total),
        "codebook_size": model.codebook_size,
        **usage.compute(),
        "per_channel": per_channel,
    }
    return Evaluation(report, np.stack(samples_x), np.stack(samples_y),
                      usage.counts.cpu().numpy(), list(data.columns))
