"""``timetok forecast``: the token language model forecaster: pretrain, finetune, evaluate,
calibrate, predict. Each training command parses its flags into its stage config
(:mod:`timetok.forecast.config`) and calls the recipe (:mod:`timetok.forecast.recipe`);
predict goes through the :class:`~timetok.forecast.pipeline.Forecaster` pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from timetok.core.cli_options import (
    FiniteFloat,
    OrderedGroup,
    check_save_path,
    check_writable,
    data_options,
    dataset_names,
    device_option,
    hidden_alias,
    int_list,
    json_option,
    option,
    pass_settings,
    print_summary,
    resolve_device,
    run_options,
    threads_option,
    writing,
)
from timetok.core.paths import check_apart
from timetok.forecast.config import FinetuneConfig, PretrainConfig, horizon_steps

PRE, FT = PretrainConfig.defaults(), FinetuneConfig.defaults()


class HorizonSteps(click.ParamType):
    """``720:150,96:1500`` (or a YAML mapping) -> ``{720: 150, 96: 1500}``."""

    name = "H:STEPS,..."

    def convert(self, value, param, ctx):
        from timetok.core.errors import ConfigError

        try:
            return horizon_steps(value)
        except ConfigError as err:
            self.fail(str(err).replace("horizon_steps", "--horizon-steps"), param, ctx)



@click.group(cls=OrderedGroup)
def forecast() -> None:
    """Token language model forecaster: next-code pretraining over a tokenizer, finetuned
    to forecast."""


@forecast.command()
@option("--tokenizer", "--vqvae-checkpoint", "tokenizer", type=click.Path(),
        help="Trained tokenizer folder (frozen throughout); required.")
@data_options
@option("--context-points", type=click.IntRange(min=1), default=PRE["context_points"],
        show_default=True)
@option("--max-horizon", type=click.IntRange(min=1), default=PRE["max_horizon"],
        show_default=True,
        help="Longest horizon the model will forecast or sample. Pretraining windows span "
             "the context and this many steps, so every position sampling reaches is trained.")
@option("--batch-size", type=click.IntRange(min=1), default=PRE["batch_size"], show_default=True)
@option("--stride", type=click.IntRange(min=1), default=PRE["stride"], show_default=True)
@option("--val-stride", type=click.IntRange(min=1), default=PRE["val_stride"], show_default=True)
@option("--d-model", type=click.IntRange(min=1), default=PRE["d_model"], show_default=True)
@option("--n-layers", type=click.IntRange(min=1), default=PRE["n_layers"], show_default=True)
@option("--n-heads", type=click.IntRange(min=1), default=PRE["n_heads"], show_default=True)
@option("--d-ff", type=click.IntRange(min=1), default=PRE["d_ff"], show_default=True)
@option("--dropout", type=FiniteFloat(0, 1, max_open=True), default=PRE["dropout"],
        show_default=True, help="Dropout on embeddings and residual branches.")
@option("--attn-dropout", type=FiniteFloat(0, 1, max_open=True),
        default=PRE["attn_dropout"], show_default=True,
        help="Dropout on attention probabilities (off, as in PatchTST).")
@option("--code-embedding", type=click.Choice(["codebook", "learned"]),
        default=PRE["code_embedding"], show_default=True,
        help="Start code embeddings from the tokenizer's codebook or not.")
@option("--lr", "--learning-rate", "lr", type=FiniteFloat(min=0, min_open=True),
        default=PRE["lr"], show_default=True)
@option("--weight-decay", type=FiniteFloat(min=0), default=PRE["weight_decay"],
        show_default=True)
@option("--warmup-steps", type=click.IntRange(min=0), default=PRE["warmup_steps"],
        show_default=True)
@option("--patience", type=click.IntRange(min=1), default=PRE["patience"],
        help="Validations without improvement before stopping early [default: never].")
@option("--save-path", type=click.Path(file_okay=False), default=None,
        help="Run folder [default: runs/lm-DATASET].")
@run_options
@json_option
@pass_settings
def pretrain(**s) -> None:
    """Next-code pretraining of a causal Transformer over a frozen tokenizer's codes.

    Several datasets may be named at once: --dataset etth1,ettm1. --max-time budgets the
    training steps and the validations among them; loading the data, the validation the
    run ends with and the export come on top (a budget in --max-steps or --n-epochs does
    not depend on the machine's load).
    """
    from timetok.forecast.recipe import pretrain as run

    dataset_names(s["dataset"])
    config = PretrainConfig.from_settings(s)
    save_path = Path(config.default_save_path())
    check_save_path(save_path, s)
    with writing(save_path, "--save-path"):
        summary = run(config)
    print_summary(summary, save_path, s["as_json"])


@forecast.command()
@option("--model", "--pretrained-model-path", "model", type=click.Path(),
        help="Pretrained language model folder (from timetok forecast pretrain), or a "
             "finetuned model to start from (its heads' fitted parts are fitted anew); "
             "required.")
@data_options
@option("--horizon", "--target-points", "horizon", multiple=True,
        default=[str(h) for h in FT["horizon"]], show_default=True,
        help="Steps to forecast; repeat or comma-separate for several.")
@option("--horizon-steps", type=HorizonSteps(), default=None,
        help="Optimiser steps of some horizons' runs, e.g. 720:150,96:1500 (longer horizons "
             "cost more per step); the others train for --max-steps or --n-epochs.")
@option("--chain/--no-chain", default=FT["chain"], show_default=True,
        help="With several horizons: finetune the longest first and start each next one "
             "from the last one's finetuned model, so shorter horizons build on the longer "
             "ones' training.")
@option("--heads", default=FT["heads"], show_default=True,
        help="Forecast heads to train: decoder, linear, or both.")
@option("--freeze", "--freeze-policy", "freeze_policy", default=FT["freeze_policy"],
        show_default=True,
        help="What stays fixed: none (everything trains), head-only (only the forecast "
             "heads train), tokenizer, backbone (and the tokenizer), or a comma list of "
             "parts: tokenizer, embeddings, backbone, code-head, query, linear-head. A choice "
             "that leaves nothing to train is refused.")
@option("--temperature", type=FiniteFloat(min=0, min_open=True), default=FT["temperature"],
        show_default=True, help="Softmax temperature of the soft codebook lookup.")
@option("--linear-skip/--no-linear-skip", default=FT["linear_skip"], show_default=True,
        help="A fixed context-to-horizon linear map, fitted by least squares on the "
             "training windows: the linear head adds it, and the decoder head's forecast is "
             "blended with it (weights fitted on the validation windows).")
@option("--skip-scale", type=click.Choice(["auto", "revin", "standard"]),
        default=FT["skip_scale"], show_default=True,
        help="The skip's scale: RevIN-normalised (RLinear), standardised (DLinear's class), "
             "or auto: the one with the lower validation MSE.")
@option("--trained-skip/--no-trained-skip", default=FT["trained_skip"], show_default=True,
        help="Also train a DLinear by its authors' recipe for the dataset and keep it as the "
             "skip where its validation MSE is lower than the least-squares fit's.")
@option("--blend", "blend", type=click.Choice(["channel", "shared"]), default=FT["blend"],
        show_default=True,
        help="The blend's weights: per step and channel, or per step shared by the channels "
             "(always shared when several datasets are finetuned on together).")
@option("--batch-size", type=click.IntRange(min=1), default=FT["batch_size"], show_default=True)
@option("--stride", type=click.IntRange(min=1), default=FT["stride"], show_default=True)
@option("--val-stride", type=click.IntRange(min=1), default=FT["val_stride"], show_default=True)
@option("--lr", "--learning-rate", "lr", type=FiniteFloat(min=0, min_open=True),
        default=FT["lr"],
        help="Peak learning rate [default: 1e-3 for the decoder head alone, else 1e-4].")
@option("--weight-decay", type=FiniteFloat(min=0), default=FT["weight_decay"],
        show_default=True)
@option("--warmup-steps", type=click.IntRange(min=0), default=FT["warmup_steps"],
        show_default=True)
@option("--patience", type=click.IntRange(min=1), default=FT["patience"], show_default=True,
        help="Validations without improvement before stopping early.")
@option("--save-path", type=click.Path(file_okay=False), default=None,
        help="Run folder [default: runs/ft-DATASET]; one H<horizon> folder per horizon.")
@run_options
@json_option
@pass_settings
def finetune(**s) -> None:
    """Finetune a pretrained language model to forecast H steps (one model per horizon).

    --max-time budgets each run's training steps and the validations among them; the
    trained skip, the validations the run starts and ends with, the blend, the calibration
    and the export come on top (a budget in --max-steps, --horizon-steps or --n-epochs does
    not depend on the machine's load).
    """
    from timetok.core.train.freeze import format_table
    from timetok.forecast.recipe import finetune as run
    from timetok.forecast.recipe import finetune_folders

    dataset_names(s["dataset"])
    config = FinetuneConfig.from_settings(s, horizon_steps=s["horizon_steps"] or {})
    for save_path in finetune_folders(config).values():  # all free before the first run
        check_save_path(save_path, s)

    def report(horizon: int, save_path: Path, module, summary: dict | None) -> None:
        if summary is None:
            if not s["as_json"]:
                click.echo(f"H={horizon}, --freeze {config.freeze_policy}:\n"
                           + format_table(module.table))
            return
        print_summary(summary, save_path, s["as_json"], module.summary_lines(summary))

    with writing(config.default_save_path(), "--save-path"):
        run(config, report)


@forecast.command()
@option("--model", "model", required=True, type=click.Path(),
        help="Finetuned model folder, or a folder of H<horizon> model folders.")
@data_options
@option("--horizons", multiple=True, default=[], help="Horizons to evaluate [default: all].")
@option("--stride", type=click.IntRange(min=1), default=1, show_default=True,
        help="1: every test window (the protocol).")
@option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@option("--samples", type=click.IntRange(min=1), default=None,
        help="Also sample this many paths and report CRPS.")
@option("--sample-stride", type=click.IntRange(min=1), default=50, show_default=True,
        help="Sample on every Nth test batch (sampling is costly).")
@option("--temperature", type=FiniteFloat(min=0), default=1.0, show_default=True)
@option("--top-k", type=click.IntRange(min=1), default=None)
@option("--top-p", type=FiniteFloat(0, 1, min_open=True), default=None)
@option("--out", type=click.Path(file_okay=False), default=None,
        help="Report folder [default: MODEL/eval-DATASET].")
@device_option
@threads_option
@json_option
def evaluate(model, dataset, data_path, data_dir, horizons, stride, batch_size, samples,
             sample_stride, temperature, top_k, top_p, out, device, threads, as_json) -> None:
    """Test MSE/MAE per horizon beside in-run baselines and published figures."""
    from rich.progress import track

    from timetok.core.data.registry import get_spec
    from timetok.core.nn.sampling import Sampling
    from timetok.forecast.recipe import evaluate as run

    dataset_names(dataset, one=True)
    out = Path(out or Path(model) / f"eval-{get_spec(dataset).name}")
    check_apart(out, "out", {"model": model, "data_path": data_path, "data_dir": data_dir},
                may_lie_inside=("model",))
    check_writable(out, "--out")
    with writing(out, "--out"):
        full = run(model, dataset, data_path=data_path, data_dir=data_dir,
                   horizons=int_list(horizons, "--horizons"), stride=stride,
                   batch_size=batch_size, samples=samples, sample_stride=sample_stride,
                   sampling=Sampling(temperature, top_k, top_p), out=out,
                   device=resolve_device(device),
                   track=lambda it, h: track(it, description=f"H={h}", disable=as_json,
                                             transient=True))
    markdown = full.pop("markdown")
    if as_json:
        click.echo(json.dumps({k: v for k, v in full.items() if k != "out"}, indent=2))
    else:
        click.echo(markdown)
        click.echo(f"\nreport in {out}")


@forecast.command()
@option("--model", "model", required=True, type=click.Path(),
        help="Finetuned model folder; its calibration (in data.json) is written anew.")
@data_options
@option("--head", type=click.Choice(["blend", "decoder", "linear"]), default=None,
        help="Point forecast to calibrate [default: blend, else linear, else decoder, as the "
             "model has them].")
@option("--max-windows", type=click.IntRange(min=1), default=2000, show_default=True,
        help="Validation windows read, evenly spread over the split.")
@threads_option
def calibrate(model, dataset, data_path, data_dir, head, max_windows, threads) -> None:
    """Calibrate a finetuned model's forecast quantiles on the validation split.

    The point forecast's residuals on the validation windows give, per step and channel,
    the quantiles that 'predict --quantiles' adds to the forecast and that calibrate
    'predict --samples'. Finetuning writes them already; this re-computes them.
    """
    from timetok.core.model_folder import DATA_NAME
    from timetok.forecast.recipe import calibrate as run

    dataset_names(dataset, one=True)
    target = Path(model) / DATA_NAME
    check_writable(target, "--model", folder=False)
    with writing(target, "--model"):
        calibration = run(model, dataset, data_path=data_path, data_dir=data_dir, head=head,
                          max_windows=max_windows)
    scaled = (f"in units of the context's spread over its last {calibration.scale_window} "
              "steps" if calibration.scale_window else "the same for every context")
    click.echo(f"wrote the calibration into {target}: the {calibration.head!r} forecast's "
               f"residual quantiles over {calibration.windows} validation windows of "
               f"{calibration.dataset} ({calibration.horizon} steps, pooled over "
               f"{calibration.span}; {scaled}, chosen by forward CRPS on validation)")


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
@option("--temperature", type=FiniteFloat(min=0), default=1.0, show_default=True)
@option("--top-k", type=click.IntRange(min=1), default=None)
@option("--top-p", type=FiniteFloat(0, 1, min_open=True), default=None)
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
    for path in (output, figure):
        check_apart(path, "output", {"model": model, "input_path": source, "truth": truth,
                                     "data_dir": data_dir})
        check_writable(path, "--output", folder=False)
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


forecast.add_command(predict)
hidden_alias(forecast, predict, "forecast")  # the verb's name before the group was 'forecast'

