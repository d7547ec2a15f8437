"""``timetok mae``: TimeMAE masked pretraining (system 4): pretrain, finetune, evaluate, embed.

Each training command parses its flags (and ``--config FILE``) into the stage's config
and runs the recipe of :mod:`timetok.mae.recipe`; defaults live in those configs.
"""

from __future__ import annotations

import json

import click

from timetok.core.cli_options import (
    FiniteFloat,
    OrderedGroup,
    check_save_path,
    check_writable,
    compose,
    dataset_names,
    device_option,
    json_option,
    optimiser_options,
    option,
    pass_settings,
    print_summary,
    run_options,
    threads_option,
    writing,
)
from timetok.core.paths import check_apart, read_paths
from timetok.mae.recipe import (
    BASELINES,
    CODEWORDS,
    ENCODERS,
    MONITOR_CHOICES,
    SPLIT_CHOICES,
    EvaluateConfig,
    FinetuneConfig,
    PretrainConfig,
)

P, F, E = PretrainConfig, FinetuneConfig, EvaluateConfig


def labelled_options(config: type):
    return compose(
        option("--dataset", "dataset", default=config.dataset, show_default=True,
               help="Registered labelled dataset (timetok data list), or ucr, uea or npz with "
                    "--data-path."),
        option("--data-path", type=click.Path(), default=None,
               help="A UCR/UEA dataset folder, the 'UCI HAR Dataset' folder, or an .npz file."),
        option("--data-dir", type=click.Path(file_okay=False), default=None,
               help="Folder with the official files [default: $TIMETOK_DATA_DIR, "
                    "~/.cache/timetok, the bundled copies]."),
        option("--val-fraction", type=FiniteFloat(0, 1, min_open=True, max_open=True),
               default=config.val_fraction, show_default=True,
               help="Share of the training samples (of its subjects, for HAR) held out for "
                    "validation."),
        option("--split-seed", type=click.IntRange(0, 2**32 - 1), default=config.split_seed,
               show_default=True,
               help="Seed of the validation split; keep it between pretraining and finetuning."),
    )


def training_options(config: type, default_folder: str):
    return compose(
        optimiser_options(batch_size=config.batch_size, weight_decay=config.weight_decay,
                          warmup_steps=config.warmup_steps, lr=config.lr),
        option("--patience", type=click.IntRange(min=1), default=None,
               help="Validations without improvement before stopping early."),
        option("--save-path", type=click.Path(file_okay=False), default=None,
               help=f"Run folder [default: {default_folder}]."),
        run_options,
        json_option,
        pass_settings,
    )


def _config(cls: type, s: dict):
    """The stage's config from the command's settings (``--resume`` names the run folder,
    which the settings already hold as save_path)."""
    dataset_names(s["dataset"], one=True)
    return cls.from_settings(s, ignore=("linear_probe",))


@click.group(cls=OrderedGroup)
def mae() -> None:
    """TimeMAE: masked pretraining of a Transformer on sliced series, then classification."""


@mae.command()
@labelled_options(P)
@option("--slice-length", type=click.IntRange(min=1), default=P.slice_length, show_default=True,
        help="Steps per slice (the kernel and stride of the slicing convolution); a length "
             "that is not a multiple is padded with ignored zeros.")
@option("--d-model", type=click.IntRange(min=1), default=P.d_model, show_default=True)
@option("--n-layers", type=click.IntRange(min=1), default=P.n_layers, show_default=True)
@option("--n-heads", type=click.IntRange(min=1), default=P.n_heads, show_default=True)
@option("--d-ff", type=click.IntRange(min=1), default=P.d_ff, show_default=True)
@option("--dropout", type=FiniteFloat(0, 1, max_open=True), default=P.dropout,
        show_default=True)
@option("--regressor-layers", type=click.IntRange(min=1), default=P.regressor_layers,
        show_default=True, help="Cross-attention blocks of the masked branch.")
@option("--mask-ratio", type=FiniteFloat(), default=P.mask_ratio, show_default=True,
        help="Share of each series' slices masked, in (0, 1).")
@option("--codeword", type=click.Choice(CODEWORDS), default=P.codeword, show_default=True,
        help="MCC targets: the paper's linear layer with a Gumbel-softmax argmax (a random "
             "draw, near chance until the layer grows confident), or the project's vector "
             "quantizer (the nearest of an EMA codebook: a target the model can learn).")
@option("--vocab-size", type=click.IntRange(min=2), default=P.vocab_size, show_default=True)
@option("--momentum", type=FiniteFloat(), default=P.momentum, show_default=True,
        help="EMA momentum of the MRR target encoder.")
@option("--encoder", type=click.Choice(ENCODERS), default=P.encoder, show_default=True,
        help="The visible encoder: auto (conv below 2000 training samples, else native), "
             "dilated residual convolutions over the steps (conv), PyTorch's Transformer "
             "(native), or transformers' BertModel fed "
             "inputs_embeds and the visible slices' position_ids.")
@option("--mrr-weight", type=FiniteFloat(min=0), default=P.mrr_weight, show_default=True)
@option("--mcc-weight", type=FiniteFloat(min=0), default=P.mcc_weight, show_default=True)
@training_options(P, "runs/mae-DATASET")
def pretrain(**s) -> None:
    """Masked pretraining (MRR + MCC) on the training samples; labels are not read."""
    from timetok.mae.recipe import pretrain as run

    config = _config(PretrainConfig, s)
    save_path = config.output_dir()
    check_save_path(save_path, s)
    with writing(save_path, "--save-path"):
        summary = run(config)
    mcc = summary["mcc"]
    lines = [] if mcc["val_accuracy"] is None else [
        f"codeword task (MCC): validation accuracy {mcc['val_accuracy']:.4f} in the last "
        f"epoch, chance {mcc['chance']:.4f} (1 of {config.vocab_size} codewords)"]
    print_summary(summary, save_path, s["as_json"], lines)


@mae.command()
@option("--model", "model", type=click.Path(),
        help="Pretrained TimeMAE folder (timetok mae pretrain).")
@labelled_options(F)
@option("--linear-probe", is_flag=True, hidden=True, help="Same as --freeze head-only.")
@option("--freeze", "--freeze-policy", "freeze_policy", default=F.freeze_policy,
        show_default=True,
        help="none (everything trains), head-only (the head alone, on the encoder as "
             "pretraining left it), or a comma list of parts to freeze: slicer, encoder, head. "
             "The pretext parts never train here.")
@option("--scratch", is_flag=True,
        help="Start every weight anew (same architecture): the baseline without pretraining.")
@option("--monitor", type=click.Choice(MONITOR_CHOICES), default=F.monitor, show_default=True,
        help="Validation metric that picks the best checkpoint.")
@option("--label-smoothing", type=FiniteFloat(0, 1, max_open=True),
        default=F.label_smoothing, show_default=True)
@option("--augment", type=FiniteFloat(0, 1, max_open=True), default=F.augment,
        show_default=True,
        help="Strength of the training series' augmentation: each channel scaled by "
             "1 + s N(0, 1), each step jittered by s/3 N(0, 1) (standardised scale); 0: none.")
@option("--label-fraction", type=FiniteFloat(0, 1, min_open=True),
        default=F.label_fraction, show_default=True,
        help="Share of the training and validation labels used (stratified per class, "
             "seeded by --seed): the few-label setting.")
@training_options(F, "runs/mae-ft-DATASET")
def finetune(**s) -> None:
    """Train a classification head (and the encoder, unless frozen) on the labels; the
    best checkpoint is chosen on validation, never on test."""
    from timetok.core.errors import ConfigError
    from timetok.core.train.freeze import format_table
    from timetok.mae.recipe import finetune as run

    if s["linear_probe"]:
        if s["freeze_policy"] not in ("none", "head-only", "linear-probe"):
            raise ConfigError("--linear-probe and --freeze name two policies; pass one")
        s["freeze_policy"] = "head-only"
    config = _config(FinetuneConfig, s)
    save_path = config.output_dir()
    check_save_path(save_path, s)
    with writing(save_path, "--save-path"):
        summary = run(config)
    if not s["as_json"]:
        click.echo(f"--freeze {config.freeze_policy}:\n"
                   + format_table(summary["parameters_by_part"]))
    print_summary(summary, save_path, s["as_json"])


def _evaluate_config(s: dict) -> EvaluateConfig:
    dataset_names(s["dataset"], one=True)
    return EvaluateConfig(**s)


@mae.command()
@option("--model", "model", required=True, type=click.Path(),
        help="Finetuned TimeMAE folder.")
@labelled_options(E)
@option("--split", type=click.Choice(SPLIT_CHOICES), default=E.split, show_default=True)
@option("--batch-size", type=click.IntRange(min=1), default=E.batch_size, show_default=True)
@option("--out", type=click.Path(file_okay=False), default=None,
        help="Report folder [default: MODEL/eval-DATASET].")
@option("--baseline", type=click.Choice(BASELINES), default=E.baseline, show_default=True,
        help="The in-run baseline beside the model: auto is MiniRocket where aeon is "
             "installed, else the nearest neighbour of the raw series.")
@device_option
@threads_option
@json_option
def evaluate(as_json, **s) -> None:
    """Accuracy, macro-F1, a per-class table and the confusion matrix on a split, beside a
    simple baseline fitted in the same run."""
    from rich.progress import track

    from timetok.mae.recipe import evaluate as run

    config = _evaluate_config(s)
    out_dir = config.output_dir()
    check_apart(out_dir, "out", read_paths(s), may_lie_inside=("model",))
    check_writable(out_dir, "--out")
    with writing(out_dir, "--out"):
        report = run(config, track=lambda it: track(it, description="evaluating",
                                                     disable=as_json, transient=True))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from timetok.mae.evaluate import markdown_report

    click.echo(markdown_report(report))
    click.echo(f"\nreport and confusion matrix in {report['out']}")


@mae.command()
@option("--model", "model", required=True, type=click.Path(),
        help="Pretrained or finetuned TimeMAE folder.")
@labelled_options(E)
@option("--split", type=click.Choice(SPLIT_CHOICES), default=E.split, show_default=True)
@option("--batch-size", type=click.IntRange(min=1), default=E.batch_size, show_default=True)
@option("--output", required=True, type=click.Path(dir_okay=False),
        help="Representations to write (.npz: embeddings [N, d_model], labels, classes).")
@device_option
@threads_option
def embed(output, **s) -> None:
    """The encoder's pooled representation of every sample of a split, as .npz."""
    import io

    import numpy as np

    from timetok.core.devices import resolve_device
    from timetok.core.errors import ConfigError
    from timetok.core.utils import atomic_write_bytes
    from timetok.mae.evaluate import embed_split, load_for_evaluation

    if not str(output).endswith(".npz"):
        raise ConfigError(f"--output must name an .npz file, got {output}")
    check_apart(output, "output", read_paths(s))
    check_writable(output, "--output", folder=False)
    config = _evaluate_config(s)
    model, data = load_for_evaluation(config, need_head=False)
    embeddings, labels = embed_split(model, data.dataset(config.split), config.batch_size,
                                     resolve_device(config.device))
    buffer = io.BytesIO()
    np.savez(buffer, embeddings=embeddings, labels=labels, classes=np.array(data.classes))
    with writing(output, "--output"):
        atomic_write_bytes(output, buffer.getvalue())
    click.echo(f"wrote {len(embeddings)} representations of {model.config.d_model} to "
               f"{output}")
