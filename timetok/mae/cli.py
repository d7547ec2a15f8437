"""``timetok mae``: TimeMAE masked pretraining (system 4): pretrain, finetune, evaluate, embed."""

from __future__ import annotations

import json
from pathlib import Path

import click

from timetok.core.cli_options import (
    OrderedGroup,
    check_new_run,
    check_writable,
    compose,
    dataset_names,
    json_option,
    optimiser_options,
    option,
    pass_settings,
    print_summary,
    run_options,
    run_options_from,
    saved_settings,
    writing,
)

labelled_options = compose(
    option("--dataset", "dataset", default="ecg200", show_default=True,
           help="Registered labelled dataset (timetok data list), or ucr, uea or npz with "
                "--data-path."),
    option("--data-path", type=click.Path(), default=None,
           help="A UCR/UEA dataset folder, the 'UCI HAR Dataset' folder, or an .npz file."),
    option("--data-dir", type=click.Path(file_okay=False), default=None,
           help="Folder with the official files [default: $TIMETOK_DATA_DIR, "
                "~/.cache/timetok, the bundled copies]."),
    option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
           default=0.2, show_default=True,
           help="Share of the training samples (of its subjects, for HAR) held out for "
                "validation."),
    option("--split-seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
           help="Seed of the validation split; keep it between pretraining and finetuning."),
)


@click.group(cls=OrderedGroup)
def mae() -> None:
    """TimeMAE: masked pretraining of a Transformer on sliced series, then classification."""


def _datamodule(s: dict):
    from timetok.mae.data import LabelledDataModule

    dataset_names(s["dataset"], one=True)
    datamodule = LabelledDataModule(
        s["dataset"], batch_size=s.get("batch_size", 128), data_dir=s["data_dir"],
        data_path=s["data_path"], val_fraction=s["val_fraction"], seed=s["split_seed"],
        num_workers=s.get("num_workers", 0),
    )
    return datamodule, datamodule.load()


@mae.command()
@labelled_options
@option("--slice-length", type=click.IntRange(min=1), default=8, show_default=True,
        help="Steps per slice (the kernel and stride of the slicing convolution); a length "
             "that is not a multiple is padded with ignored zeros.")
@option("--d-model", type=click.IntRange(min=1), default=64, show_default=True)
@option("--n-layers", type=click.IntRange(min=1), default=8, show_default=True)
@option("--n-heads", type=click.IntRange(min=1), default=4, show_default=True)
@option("--d-ff", type=click.IntRange(min=1), default=256, show_default=True)
@option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.2,
        show_default=True)
@option("--regressor-layers", type=click.IntRange(min=1), default=4, show_default=True,
        help="Cross-attention blocks of the masked branch.")
@option("--mask-ratio", type=float, default=0.6, show_default=True,
        help="Share of each series' slices masked, in (0, 1).")
@option("--codeword", type=click.Choice(["linear", "vq"]), default="linear",
        show_default=True,
        help="MCC targets: the paper's linear layer with a Gumbel-softmax argmax, or the "
             "project's vector quantizer (EMA, k-means init, dead-code restart).")
@option("--vocab-size", type=click.IntRange(min=2), default=192, show_default=True)
@option("--momentum", type=float, default=0.99, show_default=True,
        help="EMA momentum of the MRR target encoder.")
@option("--encoder", type=click.Choice(["native", "bert"]), default="native",
        show_default=True,
        help="The visible encoder: PyTorch's Transformer, or transformers' BertModel fed "
             "inputs_embeds and the visible slices' position_ids.")
@option("--mrr-weight", type=click.FloatRange(min=0), default=5.0, show_default=True)
@option("--mcc-weight", type=click.FloatRange(min=0), default=1.0, show_default=True)
@optimiser_options(batch_size=128)
@option("--save-path", type=click.Path(file_okay=False), default=None,
        help="Run folder [default: runs/mae-DATASET].")
@run_options
@json_option
@pass_settings
def pretrain(**s) -> None:
    """Masked pretraining (MRR + MCC) on the training samples; labels are not read."""
    import lightning as L
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from timetok.core.plots import plot_history
    from timetok.core.train.runner import train_and_export
    from timetok.mae.recipe import pretrain_module

    save_path = Path(s["save_path"] or f"runs/mae-{s['dataset']}")
    check_writable(save_path, "--save-path")
    check_new_run(save_path, s)
    options = run_options_from(s)
    datamodule, data = _datamodule(s)
    L.seed_everything(options.seed, workers=True, verbose=False)
    settings = {k: s[k] for k in ("slice_length", "d_model", "n_layers", "n_heads", "d_ff",
                                  "dropout", "regressor_layers", "mask_ratio", "codeword",
                                  "vocab_size", "momentum", "encoder", "mrr_weight",
                                  "mcc_weight")}
    module = pretrain_module(data, s["lr"], s["weight_decay"], s["warmup_steps"], **settings)
    with writing(save_path, "--save-path"):
        summary = train_and_export(module, datamodule, save_path, options, bool(s["resume"]),
                                   saved_settings(s))
        if rank_zero_only.rank == 0:
            plot_history(save_path / "pretraining_losses.png", save_path / "history.csv",
                         ["train_loss_epoch", "train_mrr_epoch", "train_mcc_epoch",
                          "val_loss", "val_mrr", "val_mcc"],
                         f"TimeMAE pretraining on {data.name}")
    print_summary(summary, save_path, s["as_json"])


@mae.command()
@option("--model", "model_dir", required=True, type=click.Path(),
        help="Pretrained TimeMAE folder (timetok mae pretrain).")
@labelled_options
@option("--linear-probe", is_flag=True,
        help="Train the head alone on the frozen encoder (same as --freeze linear-probe).")
@option("--freeze", "freeze_policy", default="none", show_default=True,
        help="none, linear-probe, or a comma list of parts: slicer, encoder, head. The "
             "pretext parts never train here.")
@option("--scratch", is_flag=True,
        help="Start every weight anew (same architecture): the baseline without pretraining.")
@option("--monitor", type=click.Choice(["accuracy", "macro_f1"]), default="accuracy",
        show_default=True, help="Validation metric that picks the best checkpoint.")
@option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0,
        show_default=True)
@optimiser_options(batch_size=128)
@option("--patience", type=click.IntRange(min=1), default=None,
        help="Validations without improvement before stopping early.")
@option("--save-path", type=click.Path(file_okay=False), default=None,
        help="Run folder [default: runs/mae-ft-DATASET].")
@run_options
@json_option
@pass_settings
def finetune(**s) -> None:
    """Train a classification head (and the encoder, unless frozen) on the labels; the
    best checkpoint is chosen on validation, never on test."""
    import lightning as L

    from timetok.core.errors import ConfigError
    from timetok.core.train.freeze import format_table
    from timetok.core.train.runner import train_and_export
    from timetok.mae.recipe import finetune_module

    if s["linear_probe"]:
        if s["freeze_policy"] not in ("none", "linear-probe"):
            raise ConfigError("--linear-probe and --freeze name two policies; pass one")
        s["freeze_policy"] = "linear-probe"
    save_path = Path(s["save_path"] or f"runs/mae-ft-{s['dataset']}")
    check_writable(save_path, "--save-path")
    check_new_run(save_path, s)
    options = run_options_from(s)
    datamodule, data = _datamodule(s)
    L.seed_everything(options.seed, workers=True, verbose=False)
    module = finetune_module(s["model_dir"], data, s["lr"], s["weight_decay"],
                             s["warmup_steps"], s["freeze_policy"], s["label_smoothing"],
                             s["monitor"], s["scratch"])
    if not s["as_json"]:
        click.echo(f"--freeze {s['freeze_policy']}:\n" + format_table(module.table))
    with writing(save_path, "--save-path"):
        summary = train_and_export(module, datamodule, save_path, options, bool(s["resume"]),
                                   saved_settings(s))
    print_summary(summary, save_path, s["as_json"])


@mae.command()
@option("--model", "model_dir", required=True, type=click.Path(),
        help="Finetuned TimeMAE folder.")
@labelled_options
@option("--split", type=click.Choice(["train", "val", "test"]), default="test",
        show_default=True)
@option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@option("--out", type=click.Path(file_okay=False), default=None,
        help="Report folder [default: MODEL/eval-DATASET].")
@json_option
def evaluate(model_dir, dataset, data_path, data_dir, val_fraction, split_seed, split,
             batch_size, out, as_json) -> None:
    """Accuracy, macro-F1, a per-class table and the confusion matrix on a split."""
    from rich.progress import track

    from timetok.core.plots import plot_confusion
    from timetok.core.report import markdown_table, write_report
    from timetok.mae.evaluate import classification_report, predict_split

    model, data = _model_and_data(model_dir, dataset, data_path, data_dir, val_fraction,
                                  split_seed, need_head=True)
    out_dir = Path(out or Path(model_dir) / f"eval-{data.name}")
    check_writable(out_dir, "--out")
    probs, labels = predict_split(
        model, data.dataset(split), batch_size,
        track=lambda it: track(it, description="evaluating", disable=as_json, transient=True),
    )
    report = {"dataset": data.name, "split": split, "split_rule": data.split_rule,
              **classification_report(probs, labels, data.classes)}
    rows = [{"class": c, **m} for c, m in report["per_class"].items()]
    markdown = (f"# TimeMAE, {data.name} {split} ({report['samples']} samples)\n\n"
                f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}\n\n"
                + markdown_table(rows, ["class", "precision", "recall", "f1", "support"]))
    with writing(out_dir, "--out"):
        write_report(out_dir, report, markdown)
        plot_confusion(out_dir / "confusion.png", report["confusion"], data.classes)
    click.echo(json.dumps(report, indent=2) if as_json else markdown)
    if not as_json:
        click.echo(f"\nreport and confusion matrix in {out_dir}")


@mae.command()
@option("--model", "model_dir", required=True, type=click.Path(),
        help="Pretrained or finetuned TimeMAE folder.")
@labelled_options
@option("--split", type=click.Choice(["train", "val", "test"]), default="test",
        show_default=True)
@option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@option("--output", required=True, type=click.Path(dir_okay=False),
        help="Representations to write (.npz: embeddings [N, d_model], labels, classes).")
def embed(model_dir, dataset, data_path, data_dir, val_fraction, split_seed, split,
          batch_size, output) -> None:
    """The encoder's pooled representation of every sample of a split, as .npz."""
    import io

    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from timetok.core.errors import ConfigError
    from timetok.core.utils import atomic_write_bytes

    if not str(output).endswith(".npz"):
        raise ConfigError(f"--output must name an .npz file, got {output}")
    check_writable(output, "--output", folder=False)
    model, data = _model_and_data(model_dir, dataset, data_path, data_dir, val_fraction,
                                  split_seed, need_head=False)
    chunks, labels = [], []
    with torch.no_grad():
        for x, y, observed in DataLoader(data.dataset(split), batch_size=batch_size):
            chunks.append(model.embed(x, observed))
            labels.append(y)
    buffer = io.BytesIO()
    np.savez(buffer, embeddings=torch.cat(chunks).numpy(), labels=torch.cat(labels).numpy(),
             classes=np.array(data.classes))
    with writing(output, "--output"):
        atomic_write_bytes(output, buffer.getvalue())
    click.echo(f"wrote {sum(len(c) for c in chunks)} representations of "
               f"{model.config.d_model} to {output}")


def _model_and_data(model_dir, dataset, data_path, data_dir, val_fraction, split_seed,
                    need_head: bool):
    """A TimeMAE folder and the labelled data it reads, checked against each other."""
    from timetok.core.data.labelled import load_labelled
    from timetok.core.errors import CheckpointError, ConfigError
    from timetok.mae.model import TimeMAE

    dataset_names(dataset, one=True)
    model = TimeMAE.from_pretrained(model_dir)
    if need_head and model.head is None:
        raise ConfigError(f"{model_dir} is a pretrained encoder without a classification "
                          "head; finetune it first (timetok mae finetune)")
    data = load_labelled(dataset, data_dir=data_dir, data_path=data_path,
                         val_fraction=val_fraction, seed=split_seed)
    c = model.config
    if (c.length, c.n_channels) != (data.length, data.n_channels):
        raise CheckpointError(
            f"{model_dir} reads series of {c.length} steps x {c.n_channels} channel(s), "
            f"{data.name} has {data.length} x {data.n_channels}; pass the data it was trained on"
        )
    if need_head and c.n_classes != data.n_classes:
        raise CheckpointError(f"{model_dir} tells {c.n_classes} classes apart, {data.name} has "
                              f"{data.n_classes}; pass the data it was finetuned on")
    return model, data
