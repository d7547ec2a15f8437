"""``timetok lm``: the token language model (system 2): pretrain, finetune, evaluate,
calibrate, forecast."""

from __future__ import annotations

import json
from pathlib import Path

import click

from timetok.core.cli_options import (
    OrderedGroup,
    check_distinct,
    check_new_run,
    check_writable,
    data_options,
    dataset_names,
    device_option,
    int_list,
    json_option,
    option,
    pass_settings,
    print_summary,
    resolve_device,
    run_options,
    run_options_from,
    saved_settings,
    writing,
)


@click.group(cls=OrderedGroup)
def lm() -> None:
    """Token language model: next-code pretraining over a tokenizer, finetuned to forecast."""


@lm.command()
@option("--tokenizer", "--vqvae-checkpoint", "tokenizer_dir", required=True,
        type=click.Path(), help="Trained tokenizer folder (frozen throughout).")
@data_options
@option("--context-points", type=click.IntRange(min=1), default=512, show_default=True)
@option("--max-horizon", type=click.IntRange(min=1), default=720, show_default=True,
        help="Longest horizon the model will forecast or sample. Pretraining windows span "
             "the context and this many steps, so every position sampling reaches is trained.")
@option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@option("--stride", type=click.IntRange(min=1), default=1, show_default=True)
@option("--val-stride", type=click.IntRange(min=1), default=1, show_default=True)
@option("--d-model", type=click.IntRange(min=1), default=128, show_default=True)
@option("--n-layers", type=click.IntRange(min=1), default=3, show_default=True)
@option("--n-heads", type=click.IntRange(min=1), default=8, show_default=True)
@option("--d-ff", type=click.IntRange(min=1), default=256, show_default=True)
@option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
        help="Dropout on embeddings and residual branches.")
@option("--attn-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0,
        show_default=True, help="Dropout on attention probabilities (off, as in PatchTST).")
@option("--code-embedding", type=click.Choice(["codebook", "learned"]), default="codebook",
        show_default=True, help="Start code embeddings from the tokenizer's codebook or not.")
@option("--lr", "--learning-rate", "lr", type=click.FloatRange(min=0, min_open=True),
        default=1e-3, show_default=True)
@option("--weight-decay", type=click.FloatRange(min=0), default=1e-4, show_default=True)
@option("--warmup-steps", type=click.IntRange(min=0), default=200, show_default=True)
@option("--save-path", type=click.Path(file_okay=False), default=None,
        help="Run folder [default: runs/lm-DATASET].")
@run_options
@json_option
@pass_settings
def pretrain(**s) -> None:
    """Next-code pretraining of a causal Transformer over a frozen tokenizer's codes.

    Several datasets may be named at once: --dataset etth1,ettm1.
    """
    import lightning as L

    from timetok.core.errors import DataError
    from timetok.core.train.runner import train_and_export
    from timetok.forecast.data import WindowDataModule
    from timetok.forecast.recipe import pretrain_module

    dataset_names(s["dataset"])
    save_path = Path(s["save_path"] or f"runs/lm-{s['dataset'].replace(',', '+')}")
    check_writable(save_path, "--save-path")
    check_new_run(save_path, s)
    options = run_options_from(s)
    L.seed_everything(options.seed, workers=True, verbose=False)
    module = pretrain_module(
        s["tokenizer_dir"], s["lr"], s["weight_decay"], s["warmup_steps"],
        context_points=s["context_points"], max_horizon=s["max_horizon"],
        d_model=s["d_model"], n_layers=s["n_layers"], n_heads=s["n_heads"], d_ff=s["d_ff"],
        dropout=s["dropout"], attn_dropout=s["attn_dropout"],
        code_embedding=s["code_embedding"],
    )
    datamodule = WindowDataModule(
        s["dataset"], s["context_points"], module.model.config.pretrain_future,
        s["batch_size"], s["stride"], channel_independent=True, data_dir=s["data_dir"],
        data_path=s["data_path"], num_workers=s["num_workers"], eval_stride=s["val_stride"],
    )
    try:
        datamodule.load()
    except DataError as error:
        raise DataError(f"{error}; in pretraining the target is --max-horizon "
                        f"({s['max_horizon']}): lower it if no forecast goes that far") from None
    with writing(save_path, "--save-path"):
        summary = train_and_export(
            module, datamodule, save_path, options, bool(s["resume"]),
            saved_settings(s),
        )
    print_summary(summary, save_path, s["as_json"], module.summary_lines(summary))


@lm.command()
@option("--model", "--pretrained-model-path", "model_dir", required=True, type=click.Path(),
        help="Pretrained language model folder (from timetok pretrain), or a finetuned "
             "model to start from (its heads' fitted parts are fitted anew).")
@data_options
@option("--horizon", "--target-points", "horizons", multiple=True, default=["96"],
        show_default=True, help="Steps to forecast; repeat or comma-separate for several.")
@option("--chain/--no-chain", default=False, show_default=True,
        help="With several horizons: finetune the longest first and start each next one "
             "from the last one's finetuned model, so shorter horizons build on the longer "
             "ones' training.")
@option("--heads", default="decoder,linear", show_default=True,
        help="Forecast heads to train: decoder, linear, or both.")
@option("--freeze", "freeze_policy", default="tokenizer", show_default=True,
        help="What stays fixed: none, tokenizer, backbone (and the tokenizer), all-but-head, "
             "or a comma list of parts: tokenizer, embeddings, backbone, code-head, query, "
             "linear-head. A choice that leaves nothing to train is refused.")
@option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0,
        show_default=True, help="Softmax temperature of the soft codebook lookup.")
@option("--linear-skip/--no-linear-skip", default=True, show_default=True,
        help="A fixed context-to-horizon linear map, fitted by least squares on the "
             "training windows: the linear head adds it, and the decoder head's forecast is "
             "blended with it (weights fitted on the validation windows).")
@option("--skip-scale", type=click.Choice(["auto", "revin", "standard"]), default="auto",
        show_default=True,
        help="The skip's scale: RevIN-normalised (RLinear), standardised (DLinear's class), "
             "or auto: the one with the lower validation MSE.")
@option("--trained-skip/--no-trained-skip", default=True, show_default=True,
        help="Also train a DLinear by its authors' recipe for the dataset and keep it as the "
             "skip where its validation MSE is lower than the least-squares fit's.")
@option("--blend", "blend_weights", type=click.Choice(["channel", "shared"]), default="channel",
        show_default=True,
        help="The blend's weights: per step and channel, or per step shared by the channels "
             "(always shared when several datasets are finetuned on together).")
@option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@option("--stride", type=click.IntRange(min=1), default=1, show_default=True)
@option("--val-stride", type=click.IntRange(min=1), default=1, show_default=True)
@option("--lr", "--learning-rate", "lr", type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Peak learning rate [default: 1e-3 for the decoder head alone, else 1e-4].")
@option("--weight-decay", type=click.FloatRange(min=0), default=1e-4, show_default=True)
@option("--warmup-steps", type=click.IntRange(min=0), default=100, show_default=True)
@option("--patience", type=click.IntRange(min=1), default=3, show_default=True,
        help="Validations without improvement before stopping early.")
@option("--save-path", type=click.Path(file_okay=False), default=None,
        help="Run folder [default: runs/ft-DATASET]; one H<horizon> folder per horizon.")
@run_options
@json_option
@pass_settings
def finetune(**s) -> None:
    """Finetune a pretrained language model to forecast H steps (one model per horizon)."""
    import lightning as L

    from timetok.core.train.freeze import format_table
    from timetok.core.train.runner import train_and_export
    from timetok.forecast.data import WindowDataModule
    from timetok.forecast.model import TokenForecaster
    from timetok.forecast.recipe import default_lr, finetune_module

    dataset_names(s["dataset"])
    base = Path(s["save_path"] or f"runs/ft-{s['dataset']}")
    check_writable(base, "--save-path")
    horizons = int_list(s["horizons"], "--horizon")
    heads = [h.strip() for h in s["heads"].split(",") if h.strip()]
    if s["lr"] is None:
        s["lr"] = default_lr(heads)
    pretrained = TokenForecaster.from_pretrained(s["model_dir"]).config
    check_horizons(horizons, pretrained.max_horizon, bool(s["resume"]))
    options = run_options_from(s)
    order = sorted(horizons, reverse=True) if s["chain"] else horizons
    runs = {h: base if s["resume"] else base / f"H{h}" for h in order}  # a run is one horizon
    for save_path in runs.values():  # every folder is free before the first run starts
        check_new_run(save_path, s)
    start = s["model_dir"]  # with --chain, the last horizon's model after the first run
    for horizon, save_path in runs.items():
        L.seed_everything(options.seed, workers=True, verbose=False)
        datamodule = WindowDataModule(
            s["dataset"], pretrained.context_points, horizon, s["batch_size"], s["stride"],
            channel_independent=True, data_dir=s["data_dir"], data_path=s["data_path"],
            num_workers=s["num_workers"], eval_stride=s["val_stride"],
        )
        datamodule.load()
        # Fitted on resume too: the same windows give the same scale, the checkpoint the rest.
        module = finetune_module(
            start, horizon, heads, s["temperature"], s["lr"], s["weight_decay"],
            s["warmup_steps"], s["freeze_policy"], s["linear_skip"], s["skip_scale"],
            # Windows of all channels: the trained skip's recipe counts batches in them.
            datamodule.windows("train", channel_independent=False),
            datamodule.windows("val", channel_independent=False),
            datamodule.channels if s["blend_weights"] == "channel" else 1,
            skip_recipe=s["dataset"] if s["trained_skip"] else None,
        )
        if not s["as_json"]:
            click.echo(f"H={horizon}, --freeze {s['freeze_policy']}:\n"
                       + format_table(module.table))
        settings = saved_settings(s)
        with writing(save_path, "--save-path"):
            summary = train_and_export(
                module, datamodule, save_path, options, bool(s["resume"]),
                settings | {"horizons": [str(horizon)], "model_dir": str(start)},
            )
        print_summary(summary, save_path, s["as_json"], module.summary_lines(summary))
        if s["chain"]:
            start = save_path


def check_horizons(horizons: list[int], max_horizon: int, resume: bool) -> None:
    """The whole --horizon list, checked before any run starts."""
    from timetok.core.errors import ConfigError

    repeated = sorted({h for h in horizons if horizons.count(h) > 1})
    if repeated:
        raise ConfigError(f"--horizon lists {repeated} more than once; name each horizon once")
    beyond = [h for h in horizons if h > max_horizon]
    if beyond:
        raise ConfigError(
            f"--horizon {beyond} exceeds the pretrained model's --max-horizon {max_horizon}; "
            "pretrain with a longer --max-horizon or forecast fewer steps"
        )
    if resume and len(horizons) > 1:
        raise ConfigError("--resume continues one run, one horizon; pass the H<horizon> folder "
                          "and its horizon")


def _model_dirs(model_dir: Path, horizons: list[int]) -> dict[int, Path]:
    from timetok.core.errors import CheckpointError
    from timetok.core.model_folder import read_json

    if (model_dir / "config.json").is_file():
        config = read_json(model_dir / "config.json", "model config")
        if config.get("model_type") != "forecaster":
            raise CheckpointError(
                f"{model_dir} holds a {config.get('model_type')!r} model, not a forecaster; "
                "evaluate wants a finetuned forecaster (timetok lm finetune), and a tokenizer "
                "is evaluated by 'timetok tokenizer eval'"
            )
        horizon = config.get("horizon", 0)
        if not horizon:
            raise CheckpointError(
                f"{model_dir} is a pretrained language model without forecast heads; "
                "finetune it first (timetok lm finetune)"
            )
        if horizons and horizons != [horizon]:
            raise CheckpointError(
                f"{model_dir} forecasts {horizon} steps, not {horizons}; pass the folder that "
                "holds H<horizon> sub-folders"
            )
        return {horizon: model_dir}
    found = {int(p.name[1:]): p for p in model_dir.glob("H*") if p.name[1:].isdigit()}
    if not found:
        raise CheckpointError(f"no finetuned model in {model_dir}; check the --model path")
    missing = [h for h in horizons if h not in found]
    if missing:
        raise CheckpointError(
            f"{model_dir} has models for horizons {sorted(found)}, not {missing}; finetune them"
        )
    return {h: found[h] for h in (horizons or sorted(found))}


@lm.command()
@option("--model", "model_dir", required=True, type=click.Path(),
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
@option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True)
@option("--top-k", type=click.IntRange(min=1), default=None)
@option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None)
@option("--out", type=click.Path(file_okay=False), default=None,
        help="Report folder [default: MODEL/eval-DATASET].")
@device_option
@json_option
def evaluate(model_dir, dataset, data_path, data_dir, horizons, stride, batch_size, samples,
             sample_stride, temperature, top_k, top_p, out, device, as_json) -> None:
    """Test MSE/MAE per horizon beside in-run baselines and published figures."""
    from rich.progress import track

    from timetok.core.data.registry import get_spec
    from timetok.core.data.series import load_splits
    from timetok.core.nn.sampling import Sampling
    from timetok.core.published import forecast_rows
    from timetok.core.report import markdown_table, write_report
    from timetok.forecast.evaluate import evaluate_forecaster
    from timetok.forecast.model import TokenForecaster

    dataset_names(dataset, one=True)
    device = resolve_device(device)
    dirs = _model_dirs(Path(model_dir), int_list(horizons, "--horizons"))
    out_dir = Path(out or Path(model_dir) / f"eval-{get_spec(dataset).name}")
    check_writable(out_dir, "--out")
    rows, reports, loaded = [], [], {}
    for horizon, folder in dirs.items():
        model = TokenForecaster.from_pretrained(folder)
        context = model.config.context_points  # models of one run share it: read once
        if context not in loaded:
            loaded[context] = load_splits(dataset, context, data_dir=data_dir,
                                          data_path=data_path)
        data = loaded[context]
        report = evaluate_forecaster(
            model, data, horizon, batch_size, stride, samples or 0, sample_stride,
            Sampling(temperature, top_k, top_p),
            track=lambda it, h=horizon: track(it, description=f"H={h}", disable=as_json,
                                              transient=True),
            device=device,
        )
        reports.append(report)
        for method, metrics in report["methods"].items():
            rows.append({"H": horizon, "method": method, **metrics, "source": "measured",
                         "windows": report["windows"]})
        if "sampled" in report:
            rows.append({"H": horizon, "method": f"timetok-sampled ({samples} paths, median)",
                         "mse": report["sampled"]["median_mse"],
                         "mae": report["sampled"]["median_mae"],
                         "crps": report["sampled"]["crps"], "source": "measured",
                         "windows": report["sampled"]["windows"]})
        rows += [{"H": horizon, **r} for r in forecast_rows(data.name, horizon)]
    markdown = (f"# Forecast, {data.name} test (context {model.config.context_points}, "
                f"stride {stride}, standardised)\n\n"
                + markdown_table(rows, ["H", "method", "mse", "mae", "crps", "windows",
                                        "source"]))
    full = {"dataset": data.name, "results": rows, "reports": reports}
    with writing(out_dir, "--out"):
        write_report(out_dir, full, markdown)
    if as_json:
        click.echo(json.dumps(full, indent=2))
    else:
        click.echo(markdown)
        click.echo(f"\nreport in {out_dir}")


@lm.command()
@option("--model", "model_dir", required=True, type=click.Path(),
        help="Finetuned model folder; its calibration.json is written anew.")
@data_options
@option("--head", type=click.Choice(["blend", "decoder", "linear"]), default=None,
        help="Point forecast to calibrate [default: blend, else linear, else decoder, as the "
             "model has them].")
@option("--max-windows", type=click.IntRange(min=1), default=2000, show_default=True,
        help="Validation windows read, evenly spread over the split.")
def calibrate(model_dir, dataset, data_path, data_dir, head, max_windows) -> None:
    """Calibrate a finetuned model's forecast quantiles on the validation split.

    The point forecast's residuals on the validation windows give, per step and channel,
    the quantiles that 'forecast --quantiles' adds to the forecast and that calibrate
    'forecast --samples'. Finetuning writes them already; this re-computes them.
    """
    from timetok.core.data.series import load_splits
    from timetok.core.model_folder import read_json
    from timetok.forecast.calibration import FILE, calibrate_folder

    dataset_names(dataset, one=True)
    folder = Path(model_dir)
    context = read_json(folder / "config.json", "model config").get("context_points", 512)
    check_writable(folder / FILE, "--model", folder=False)
    data = load_splits(dataset, context, data_dir=data_dir, data_path=data_path)
    with writing(folder / FILE, "--model"):
        calibration = calibrate_folder(folder, data, head, max_windows)
    scaled = (f"in units of the context's spread over its last {calibration.scale_window} "
              "steps" if calibration.scale_window else "the same for every context")
    click.echo(f"wrote {folder / FILE}: the {calibration.head!r} forecast's residual "
               f"quantiles over {calibration.windows} validation windows of {data.name} "
               f"({calibration.horizon} steps, pooled over {calibration.span}; {scaled}, "
               "chosen by forward CRPS on validation)")


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


@lm.command("forecast")
@option("--model", "model_dir", required=True, type=click.Path(), help="Model folder.")
@option("--input", "input_path", required=True, type=click.Path(),
        help="CSV of the series; its last context-length rows are the context.")
@option("--horizon", type=click.IntRange(min=1), default=None,
        help="Steps to forecast [default: the model's].")
@option("--samples", "num_samples", type=click.IntRange(min=1), default=None,
        help="Sample this many paths: mean, median and 10/50/90 % quantiles. The paths "
             "take the calibrated quantiles where the model has a calibration reaching the "
             "horizon (timetok lm calibrate), else they are the language model's own.")
@option("--quantiles", default=None,
        help="Write these calibrated quantiles beside the point forecast, e.g. 0.1,0.5,0.9 "
             "(levels within 0.01-0.99; the model needs a calibration: timetok lm "
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
@option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
def forecast_cmd(model_dir, input_path, horizon, num_samples, quantiles, temperature, top_k,
                 top_p, head, truth, output, seed) -> None:
    """Forecast the future of a series CSV: a point forecast, with calibrated quantiles, or
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
    check_distinct(output, "--output", {"the input": input_path, "the --truth file": truth},
                   also=(figure,))
    check_writable(output, "--output", folder=False)
    check_writable(figure, "--output", folder=False)
    torch.manual_seed(seed)
    forecaster = Forecaster.from_pretrained(model_dir)
    series = read_csv(input_path)
    try:  # the truth is checked before anything is written
        true = read_csv(truth).values if truth else None
    except DataError as err:
        raise DataError(f"--truth: {err}") from None
    if true is not None and true.shape[1] != len(series.columns):
        raise DataError(f"--truth {truth} has {true.shape[1]} column(s), --input has "
                        f"{len(series.columns)}; pass the true future of the same columns")
    stats, reach, band = {}, forecaster.point_horizon, "samples, 10-90 %"
    if not num_samples or (reach and reach >= (horizon or reach)):
        # The point forecast, with samples too where the heads reach the horizon: it is
        # what the plot draws, the samples' band around it.
        stats["forecast"] = forecaster.predict(series.values, horizon, head=head)
    if levels:
        values = forecaster.predict_quantiles(series.values, levels, horizon, head)  # (Q, H, C)
        stats |= {f"q{q:g}": v for q, v in zip(levels, values, strict=True)}
        band = "calibrated, 10-90 %"
    if num_samples:
        calibrated = forecaster.calibrated_for(horizon)
        paths = forecaster.predict(series.values, horizon, num_samples, None, temperature,
                                   top_k, top_p, calibrated)  # (S, H, C)
        stats |= {"mean": paths.mean(0), "median": np.median(paths, 0),
                  "q10": np.quantile(paths, 0.1, 0), "q50": np.quantile(paths, 0.5, 0),
                  "q90": np.quantile(paths, 0.9, 0)}
        band = f"{'calibrated' if calibrated else 'raw'} samples, 10-90 %"
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
                   "model has no calibration reaching the horizon (timetok lm calibrate)")
