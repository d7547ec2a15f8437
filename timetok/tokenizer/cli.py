"""``timetok tokenizer``: train, evaluate and use the time-series VQ-VAE (system 1)."""

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
    int_list,
    json_option,
    option,
    pass_settings,
    print_summary,
    run_options,
    run_options_from,
    saved_settings,
    threads_option,
    writing,
)


@click.group(cls=OrderedGroup)
def tokenizer() -> None:
    """Time-series tokenizer: a 1-D VQ-VAE from every channel to codes and back."""


@tokenizer.command()
@data_options
@option(
    "--context-points",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Window length.",
)
@option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@option(
    "--stride",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Step between train windows.",
)
@option(
    "--val-stride",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Step between validation windows (1: every window).",
)
@option("--embedding-dim", type=int, default=64, show_default=True)
@option("--num-embeddings", type=int, default=256, show_default=True, help="Codebook size.")
@option(
    "--compression-factor",
    type=int,
    default=None,
    help="Time steps per code: 4, 8, 12 or 16 [default: 4].",
)
@option(
    "--patch-size",
    type=int,
    default=None,
    help="Instead: one code per non-overlapping patch of this many steps.",
)
@option("--block-hidden-size", type=int, default=128, show_default=True)
@option("--num-residual-layers", type=click.IntRange(min=0), default=2, show_default=True)
@option("--res-hidden-size", type=int, default=64, show_default=True)
@option("--quantizer", type=click.Choice(["vq", "rvq", "fsq"]), default="vq", show_default=True)
@option("--commitment-cost", type=click.FloatRange(min=0), default=0.25, show_default=True)
@option("--decay", type=float, default=0.9, show_default=True, help="Codebook EMA decay.")
@option("--kmeans-init/--no-kmeans-init", default=True, show_default=True)
@option(
    "--rotation-trick/--no-rotation-trick",
    default=False,
    show_default=True,
    help="Pass gradients through the codes by rotation (Fifty et al., 2024), not straight through.",
)
@option(
    "--dead-code-threshold",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Restart codes whose EMA usage falls below this (0: never).",
)
@option("--rvq-levels", type=int, default=2, show_default=True)
@option("--fsq-levels", default=None, help="FSQ levels, e.g. 8,5,5,5.")
@option("--revin", type=click.BOOL, default=True, show_default=True, help="RevIN per window; 1/0.")
@option("--revin-affine", type=click.BOOL, default=False, show_default=True)
@option(
    "--lr",
    "--learning-rate",
    "lr",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-3,
    show_default=True,
)
@option("--weight-decay", type=click.FloatRange(min=0), default=1e-4, show_default=True)
@option(
    "--save-path",
    type=click.Path(file_okay=False),
    default=None,
    help="Run folder [default: runs/tokenizer-DATASET].",
)
@run_options
@json_option
@pass_settings
def train(**s) -> None:
    """Train a tokenizer; the run folder is also the exported model."""
    from timetok.core.errors import ConfigError

    if s["compression_factor"] is not None and s["patch_size"] is not None:
        raise ConfigError("--compression-factor and --patch-size exclude each other; pass one")
    dataset_names(s["dataset"])
    save_path = Path(s["save_path"] or f"runs/tokenizer-{s['dataset']}")
    check_writable(save_path, "--save-path")
    check_new_run(save_path, s)
    fsq_levels = int_list(s["fsq_levels"], "--fsq-levels") if s["fsq_levels"] else None

    from timetok.forecast.data import WindowDataModule
    from timetok.tokenizer.model import TokenizerConfig
    from timetok.tokenizer.recipe import train_tokenizer

    options = run_options_from(s)
    datamodule = WindowDataModule(
        s["dataset"],
        s["context_points"],
        0,
        s["batch_size"],
        s["stride"],
        data_dir=s["data_dir"],
        data_path=s["data_path"],
        num_workers=s["num_workers"],
        eval_stride=s["val_stride"],
    )
    data = datamodule.load()
    config = TokenizerConfig(
        n_channels=data.n_channels,
        context_points=s["context_points"],
        compression_factor=s["compression_factor"] or 4,
        patch_size=s["patch_size"],
        embedding_dim=s["embedding_dim"],
        num_embeddings=s["num_embeddings"],
        block_hidden_size=s["block_hidden_size"],
        num_residual_layers=s["num_residual_layers"],
        res_hidden_size=s["res_hidden_size"],
        quantizer=s["quantizer"],
        commitment_cost=s["commitment_cost"],
        decay=s["decay"],
        kmeans_init=s["kmeans_init"],
        rotation_trick=s["rotation_trick"],
        dead_code_threshold=s["dead_code_threshold"],
        rvq_levels=s["rvq_levels"],
        fsq_levels=fsq_levels,
        revin=s["revin"],
        revin_affine=s["revin_affine"],
    )
    with writing(save_path, "--save-path"):
        summary = train_tokenizer(
            config,
            datamodule,
            save_path,
            options,
            lr=s["lr"],
            weight_decay=s["weight_decay"],
            resume=bool(s["resume"]),
            settings=saved_settings(s),
        )
    print_summary(summary, save_path, s["as_json"])


def _load_model(model_dir: str):
    from timetok.tokenizer.model import TokenizerModel

    return TokenizerModel.from_pretrained(model_dir)


@tokenizer.command("eval")
@option("--model", "model_dir", required=True, type=click.Path(), help="Model (run) folder.")
@data_options
@option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@option(
    "--stride",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="1: every window (protocol).",
)
@option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Report folder [default: MODEL/eval-DATASET].",
)
@json_option
@threads_option
def eval_(model_dir, dataset, data_path, data_dir, split, stride, batch_size, out, as_json,
          threads):
    """Reconstruction MSE/MAE, perplexity, usage and code entropy on a dataset split."""
    from rich.progress import track

    from timetok.core.data.series import load_splits
    from timetok.core.plots import plot_code_usage, plot_reconstructions
    from timetok.core.report import markdown_table, write_report
    from timetok.tokenizer.evaluate import evaluate_tokenizer

    dataset_names(dataset, one=True)
    model = _load_model(model_dir)
    data = load_splits(dataset, model.config.context_points, data_dir=data_dir, data_path=data_path)
    if data.n_channels != model.config.n_channels:
        from timetok.core.errors import ConfigError

        raise ConfigError(
            f"the model was trained on {model.config.n_channels} channel(s), {data.path.name} "
            f"has {data.n_channels}; evaluate on data with the same columns"
        )
    out_dir = Path(out or Path(model_dir) / f"eval-{data.name}")
    check_writable(out_dir, "--out")
    report, extras = evaluate_tokenizer(
        model,
        data,
        split,
        stride,
        batch_size,
        track=lambda it: track(it, description="evaluating", disable=as_json, transient=True),
    )
    rows = [{"channel": c, **m} for c, m in report["per_channel"].items()]
    rows.append({"channel": "all", "mse": report["mse"], "mae": report["mae"]})
    markdown = "\n\n".join(
        [
            f"# Tokenizer reconstruction: {data.name} {split} ({report['windows']} windows of "
            f"{report['context_points']})",
            "Standardised scale (dataset scaler, RevIN inverted):",
            markdown_table(rows, ["channel", "mse", "mae"]),
            markdown_table(
                [report],
                [
                    "mse_revin",
                    "mae_revin",
                    "usage",
                    "perplexity",
                    "entropy_bits",
                    "dead_codes",
                    "codebook_size",
                ],
            ),
        ]
    )
    with writing(out_dir, "--out"):
        write_report(out_dir, report, markdown)
        plot_reconstructions(
            out_dir / "reconstructions.png", extras["samples_x"], extras["samples_y"],
            data.columns,
        )
        plot_code_usage(out_dir / "code_usage.png", extras["code_counts"])
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(markdown)
        click.echo(f"\nreport and plots in {out_dir}")


@tokenizer.command()
@option("--model", "model_dir", required=True, type=click.Path(), help="Model (run) folder.")
@option("--input", "input_path", required=True, type=click.Path(), help="CSV of the series.")
@option("--output", required=True, type=click.Path(dir_okay=False), help="Codes file (.npy).")
def encode(model_dir: str, input_path: str, output: str) -> None:
    """Series CSV -> codes [windows, T/f, C] (.npy) + RevIN statistics (.stats.npz)."""
    from timetok.core.data.series import read_csv
    from timetok.tokenizer.codes import encode_series, stats_path

    check_distinct(output, "--output", {"the input": input_path},
                   also=(stats_path(Path(output)),))
    for path in (output, stats_path(Path(output))):
        check_writable(path, "--output", folder=False)
    model = _load_model(model_dir)
    series = read_csv(input_path)
    with writing(output, "--output"):
        n_windows, dropped = encode_series(model, Path(model_dir), series, Path(output))
    click.echo(
        f"encoded {n_windows} window(s) of {model.config.context_points} steps to {output}"
        + (f"; the last {dropped} row(s) fill no whole window and were left out" if dropped else "")
    )


@tokenizer.command()
@option("--model", "model_dir", required=True, type=click.Path(), help="Model (run) folder.")
@option("--input", "input_path", required=True, type=click.Path(), help="Codes file (.npy).")
@option("--output", required=True, type=click.Path(dir_okay=False), help="CSV to write.")
def decode(model_dir: str, input_path: str, output: str) -> None:
    """Codes (.npy + .stats.npz from encode) -> series CSV on the original scale."""
    from timetok.tokenizer.codes import decode_series, stats_path

    check_distinct(output, "--output", {"the codes file": input_path,
                                        "its statistics file": stats_path(Path(input_path))})
    check_writable(output, "--output", folder=False)
    model = _load_model(model_dir)
    with writing(output, "--output"):
        rows = decode_series(model, Path(model_dir), Path(input_path), Path(output))
    click.echo(f"decoded {rows} row(s) to {output}")
