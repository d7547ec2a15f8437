"""``timetok forecast predict``: a forecast CSV (and its plot) for a series, through the
:class:`~timetok.forecast.pipeline.Forecaster` pipeline."""

from __future__ import annotations

from pathlib import Path

import click

from timetok.core.cli_options import (
    check_distinct,
    check_writable,
    option,
    threads_option,
    writing,
)


def quantile_levels(text: str) -> list[float]:
    """``--quantiles 0.1,0.5,0.9`` -> levels in (0, 1), distinct, ascending."""
    from timetok.core.errors import ConfigError
    from timetok.forecast.calibration import check_levels

    try:
        levels = [float(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"--quantiles takes levels in (0, 1) separated by commas, e.g. "
                          f"0.1,0.5,0.9; got {text!r}") from None
    return check_levels(levels)


def resolve_input(value: str, data_dir: str | None) -> Path:
    """``--input``: a CSV file, or a registered series dataset by its name (``etth1``) or
    its file's (``ETTh1.csv``), found where ``timetok data`` finds it (the bundled copy
    included)."""
    from timetok.core.data.registry import datasets, resolve_path
    from timetok.core.errors import DataError

    path = Path(value)
    if path.is_file():
        return path
    key = value.strip().lower()
    for spec in datasets().values():
        if spec.kind == "series" and key in (spec.name, str(spec.filename or "").lower()):
            return resolve_path(spec.name, data_dir)
    raise DataError(f"--input {value}: no such file; pass a CSV path, or a registered series "
                    "dataset by name (timetok data list), e.g. --input etth1 for the bundled "
                    "ETTh1")


def _stats(forecaster, values, horizon, num_samples, levels, head, sampling) -> tuple:
    """The columns to write per channel (name -> [H, C]), the plot band's name, and whether
    sampled paths were calibrated."""
    import numpy as np

    stats, reach, band, calibrated = {}, forecaster.point_horizon, "samples, 10-90 %", None
    if not num_samples or (reach and reach >= (horizon or reach)):
        # The point forecast, with samples too where the heads reach the horizon: it is
        # what the plot draws, the samples' band around it.
        stats["forecast"] = forecaster.predict(values, horizon, head=head)
    if levels:
        quantiles = forecaster.predict_quantiles(values, levels, horizon, head)  # (Q, H, C)
        stats |= {f"q{q:g}": v for q, v in zip(levels, quantiles, strict=True)}
        band = "calibrated, 10-90 %"
    if num_samples:
        calibrated = forecaster.calibrated_for(horizon)
        paths = forecaster.predict(values, horizon, num_samples, None, *sampling,
                                   calibrated)  # (S, H, C)
        stats |= {"mean": paths.mean(0), "median": np.median(paths, 0),
                  "q10": np.quantile(paths, 0.1, 0), "q50": np.quantile(paths, 0.5, 0),
                  "q90": np.quantile(paths, 0.9, 0)}
        band = f"{'calibrated' if calibrated else 'raw'} samples, 10-90 %"
    return stats, band, calibrated


@click.command("predict")
@option("--model", "model", required=True, type=click.Path(), help="Model folder.")
@option("--input", "input_path", required=True,
        help="CSV of the series (its last context-length rows are the context), or a "
             "registered dataset's name, e.g. etth1 (timetok data list).")
@option("--data-dir", type=click.Path(file_okay=False), default=None,
        help="Where a dataset named by --input is looked for first.")
@option("--horizon", type=click.IntRange(min=1), default=None,
        help="Steps to forecast [default: the model's].")
@option("--samples", "num_samples", type=click.IntRange(min=1), default=None,
        help="Sample this many paths: mean, median and 10/50/90 % quantiles. The paths "
             "take the calibrated quantiles where the model has a calibration reaching the "
             "horizon (timetok forecast calibrate), else they are the language model's own.")
@option("--quantiles", default=None,
        help="Write these calibrated quantiles beside the point forecast, e.g. 0.1,0.5,0.9 "
             "(levels within 0.01-0.99; the model needs a calibration: timetok forecast "
             "calibrate).")
@option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True)
@option("--top-k", type=click.IntRange(min=1), default=None)
@option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None)
@option("--head", type=click.Choice(["blend", "decoder", "linear"]), default=None,
        help="Point forecast to write: a head's, or the decoder head blended with the linear "
             "skip [default: blend, else linear, else decoder, as the model has them].")
@option("--truth", type=click.Path(), default=None, help="CSV of the true future, to plot.")
@option("--output", type=click.Path(dir_okay=False), default="forecast.csv",
        show_default=True, help="CSV to write (.csv); a PNG of the same name goes beside it.")
@option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
        help="Seed of the sampled paths.")
@threads_option
def predict(model, input_path, data_dir, horizon, num_samples, quantiles, temperature, top_k,
            top_p, head, truth, output, seed, threads) -> None:
    """Forecast the future of a series: a point forecast, with calibrated quantiles, or
    sampled paths with bands."""
    import numpy as np
    import torch

    from timetok.core.data.series import read_csv
    from timetok.core.errors import ConfigError, DataError
    from timetok.core.plots import plot_forecast
    from timetok.core.utils import atomic_write_text
    from timetok.forecast.pipeline import Forecaster

    levels = quantile_levels(quantiles) if quantiles is not None else None
    if levels and num_samples:
        raise ConfigError("--quantiles and --samples cannot be combined: --quantiles writes "
                          "the calibrated quantiles themselves; pass one of them")
    output = Path(output)
    figure = output.with_suffix(".png")
    if output.suffix.lower() != ".csv":
        raise ConfigError(f"--output must name a .csv file (the plot goes beside it as .png), "
                          f"got {output}; pass e.g. --output forecast.csv")
    source = resolve_input(input_path, data_dir)
    check_distinct(output, "--output", {"the input": source, "the --truth file": truth},
                   also=(figure,))
    check_writable(output, "--output", folder=False)
    check_writable(figure, "--output", folder=False)
    torch.manual_seed(seed)  # the sampled paths' draws, not a training run's
    forecaster = Forecaster.from_pretrained(model, device="cpu")
    series = read_csv(source)
    try:  # the truth is checked before anything is written
        true = read_csv(truth).values if truth else None
    except DataError as err:
        raise DataError(f"--truth: {err}") from None
    if true is not None and true.shape[1] != len(series.columns):
        raise DataError(f"--truth {truth} has {true.shape[1]} column(s), --input has "
                        f"{len(series.columns)}; pass the true future of the same columns")
    stats, band, calibrated = _stats(forecaster, series.values, horizon, num_samples, levels,
                                     head, (temperature, top_k, top_p))
    columns = [f"{c}_{k}" for c in series.columns for k in stats]
    values = np.stack([stats[k][:, i] for i in range(len(series.columns)) for k in stats], 1)
    lines = ["step," + ",".join(columns)]
    lines += [f"{t + 1}," + ",".join(f"{v:.6g}" for v in row) for t, row in enumerate(values)]
    with writing(output, "--output"):
        atomic_write_text(output, "\n".join(lines) + "\n")
        shown = stats  # plot_forecast draws its band from q10 to q90
        if levels and {0.1, 0.9} <= set(levels):
            shown = stats | {"q10": stats["q0.1"], "q90": stats["q0.9"]}
        plot_forecast(figure, series.values[-forecaster.context_points:], shown,
                      series.columns, true, band=band)
    click.echo(f"wrote {output} and {figure}")
    if num_samples and not calibrated:
        click.echo("the sampled paths are the language model's own, not calibrated: the "
                   "model has no calibration reaching the horizon (timetok forecast calibrate)")
