"""``timetok tokenizer``: train, evaluate and use the time-series VQ-VAE (system 1)."""

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
    hidden_alias,
    json_option,
    option,
    pass_settings,
    print_summary,
    run_options,
    threads_option,
    writing,
)
from timetok.core.paths import check_apart
from timetok.tokenizer.config import TokenizerTrainConfig


@click.group(cls=OrderedGroup)
def tokenizer() -> None:
    """Time-series tokenizer: a 1-D VQ-VAE from every channel to codes and back."""


D = TokenizerTrainConfig  # every default of `train` lives in the config class


class LevelsType(click.ParamType):
    """FSQ levels as ``8,5,5,5`` on the command line, or a list in a YAML file."""

    name = "levels"

    def convert(self, value, param, ctx):
        from timetok.core.errors import ConfigError
        from timetok.tokenizer.config import int_levels

        try:
            return int_levels(value)
        except ConfigError as err:
            self.fail(str(err).replace("fsq_levels ", ""), param, ctx)


def _default(name: str) -> dict:
    return {"default": getattr(D, name), "show_default": True}


@tokenizer.command()
@data_options
@option("--context-points", type=click.IntRange(min=1), **_default("context_points"),
        help="Window length.")
@option("--batch-size", type=click.IntRange(min=1), **_default("batch_size"))
@option("--stride", type=click.IntRange(min=1), **_default("stride"),
        help="Step between train windows.")
@option("--val-stride", type=click.IntRange(min=1), **_default("val_stride"),
        help="Step between validation windows (1: every window).")
@option("--embedding-dim", type=int, **_default("embedding_dim"))
@option("--num-embeddings", type=int, default=D.num_embeddings,
        help="Codebook size [default: 256; with --fsq-levels, their product].")
@option("--compression-factor", type=int, default=D.compression_factor,
        help="Time steps per code: 4, 8, 12 or 16 [default: 4].")
@option("--patch-size", type=int, default=D.patch_size,
        help="Instead: one code per non-overlapping patch of this many steps.")
@option("--block-hidden-size", type=int, **_default("block_hidden_size"))
@option("--num-residual-layers", type=click.IntRange(min=0), **_default("num_residual_layers"))
@option("--res-hidden-size", type=int, **_default("res_hidden_size"))
@option("--quantizer", type=click.Choice(["vq", "rvq", "fsq", "plain-vq"]),
        **_default("quantizer"),
        help="plain-vq: a codebook learned by gradient, no k-means or restarts (the "
             "benchmark's reference).")
@option("--commitment-cost", type=FiniteFloat(min=0), **_default("commitment_cost"))
@option("--decay", type=FiniteFloat(), **_default("decay"), help="Codebook EMA decay.")
@option("--kmeans-init/--no-kmeans-init", **_default("kmeans_init"))
@option("--rotation-trick/--no-rotation-trick", **_default("rotation_trick"),
        help="Pass gradients through the codes by rotation (Fifty et al., 2024), not straight "
             "through.")
@option("--dead-code-threshold", type=FiniteFloat(min=0), **_default("dead_code_threshold"),
        help="Restart codes whose EMA usage falls below this (0: never).")
@option("--rvq-levels", type=int, **_default("rvq_levels"))
@option("--fsq-levels", type=LevelsType(), default=D.fsq_levels, help="FSQ levels, e.g. 8,5,5,5.")
@option("--revin", type=click.BOOL, **_default("revin"), help="RevIN per window; 1/0.")
@option("--revin-affine", type=click.BOOL, **_default("revin_affine"))
@option("--lr", "--learning-rate", "lr", type=FiniteFloat(min=0, min_open=True),
        **_default("lr"))
@option("--weight-decay", type=FiniteFloat(min=0), **_default("weight_decay"))
@option("--patience", type=click.IntRange(min=1), default=D.patience,
        help="Stop after this many validations without improvement [default: never].")
@option("--save-path", type=click.Path(file_okay=False), default=D.save_path,
        help="Run folder [default: runs/tokenizer-DATASET].")
@run_options
@json_option
@pass_settings
def train(**s) -> None:
    """Train a tokenizer; the run folder is also the exported model."""
    dataset_names(s["dataset"])
    config = TokenizerTrainConfig.from_settings(s)
    check_save_path(config.run_dir, s)

    from timetok.tokenizer.recipe import train as train_recipe

    with writing(config.run_dir, "--save-path"):
        summary = train_recipe(config)
    print_summary(summary, config.run_dir, s["as_json"])


@tokenizer.command()
@option("--model", "model_dir", required=True, type=click.Path(), help="Model (run) folder.")
@data_options
@option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@option("--stride", type=click.IntRange(min=1), default=1, show_default=True,
        help="1: every window (protocol).")
@option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@option("--out", type=click.Path(file_okay=False), default=None,
        help="Report folder [default: MODEL/eval-DATASET].")
@json_option
@threads_option
def evaluate(model_dir, dataset, data_path, data_dir, split, stride, batch_size, out, as_json,
             threads):
    """Reconstruction MSE/MAE, perplexity, usage and code entropy on a dataset split."""
    from rich.progress import track

    from timetok.core.data.registry import get_spec
    from timetok.tokenizer import evaluate as protocol

    dataset_names(dataset, one=True)
    out_dir = Path(out or Path(model_dir) / f"eval-{get_spec(dataset).name}")
    check_apart(out_dir, "out", {"model_dir": model_dir, "data_path": data_path,
                                 "data_dir": data_dir}, may_lie_inside=("model_dir",))
    check_writable(out_dir, "--out")
    model, data = protocol.load(model_dir, dataset, data_path=data_path, data_dir=data_dir)
    evaluation = protocol.evaluate(
        model, data, split, stride, batch_size,
        track=lambda it: track(it, description="evaluating", disable=as_json, transient=True),
    )
    with writing(out_dir, "--out"):
        evaluation.save(out_dir)
    if as_json:
        click.echo(json.dumps(evaluation.report, indent=2))
    else:
        click.echo(evaluation.markdown())
        click.echo(f"\nreport and plots in {out_dir}")


# The verb before every group said `evaluate`: kept so no user's script breaks.
hidden_alias(tokenizer, evaluate, "eval")


def _load_tokenizer(model_dir: str):
    from timetok.tokenizer.pipeline import TimeSeriesTokenizer

    return TimeSeriesTokenizer.from_pretrained(model_dir, device="cpu")


@tokenizer.command()
@option("--model", "model_dir", required=True, type=click.Path(), help="Model (run) folder.")
@option("--input", "input_path", required=True, type=click.Path(), help="CSV of the series.")
@option("--output", required=True, type=click.Path(dir_okay=False), help="Codes file (.npy).")
@threads_option
def encode(model_dir: str, input_path: str, output: str, threads: int | None) -> None:
    """Series CSV -> codes [windows, T/f, C] (.npy) + RevIN statistics (.stats.npz)."""
    from timetok.core.data.series import read_csv
    from timetok.tokenizer.codes import encode_series, stats_path

    for path in (output, stats_path(Path(output))):
        check_apart(path, "output", {"model_dir": model_dir, "input_path": input_path})
        check_writable(path, "--output", folder=False)
    _check_suffix(output, ".npy", "a codes file (numpy's .npy)")
    tokenizer = _load_tokenizer(model_dir)
    series = read_csv(input_path)
    with writing(output, "--output"):
        n_windows, dropped = encode_series(tokenizer, series, Path(output))
    click.echo(
        f"encoded {n_windows} window(s) of {tokenizer.config.context_points} steps to {output}"
        + (f"; the last {dropped} row(s) fill no whole window and were left out" if dropped else "")
    )


def _check_suffix(output: str, suffix: str, what: str) -> None:
    """A file named for another format is refused: a reader would misread it."""
    from timetok.core.errors import ConfigError

    if Path(output).suffix.lower() != suffix:
        raise ConfigError(f"--output {output} must end in {suffix}: the command writes {what}; "
                          f"name it {Path(output).with_suffix(suffix).name}")


@tokenizer.command()
@option("--model", "model_dir", required=True, type=click.Path(), help="Model (run) folder.")
@option("--input", "input_path", required=True, type=click.Path(), help="Codes file (.npy).")
@option("--output", required=True, type=click.Path(dir_okay=False), help="CSV to write.")
@threads_option
def decode(model_dir: str, input_path: str, output: str, threads: int | None) -> None:
    """Codes (.npy + .stats.npz from encode) -> series CSV on the original scale."""
    from timetok.tokenizer.codes import decode_series, stats_path

    for source in (input_path, stats_path(Path(input_path))):  # the codes and their scale
        check_apart(output, "output", {"model_dir": model_dir, "input_path": source})
    check_writable(output, "--output", folder=False)
    _check_suffix(output, ".csv", "a CSV of the series")
    tokenizer = _load_tokenizer(model_dir)
    with writing(output, "--output"):
        rows = decode_series(tokenizer, Path(input_path), Path(output))
    click.echo(f"decoded {rows} row(s) to {output}")
