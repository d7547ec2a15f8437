"""``timetok setvae``: SeqSetVAE on irregular ICU stays (system 5): pretrain, finetune,
evaluate, predict."""

from __future__ import annotations

import json
from pathlib import Path

import click

from timetok.core.cli_options import (
    OrderedGroup,
    check_new_run,
    check_writable,
    compose,
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

SIZES = ("d_model", "latent_dim", "set_layers", "inducing", "n_heads", "seq_layers", "d_ff",
         "dropout")
VAE = ("beta", "beta_warmup_steps", "free_bits", "value_weight", "observed_weight")


def data_options(from_model: bool):
    """Where the stays come from; for a trained model's commands every default is the
    model's own (``records.json``)."""
    own = " [default: the model's]" if from_model else ""
    sets = "the model's" if from_model else "a,b,c"
    return compose(
        option("--dataset", default=None if from_model else "physionet2012",
               show_default=not from_model,
               help="physionet2012, or records-csv (records.csv + labels.csv) with "
                    f"--data-path.{own}"),
        option("--data-dir", type=click.Path(file_okay=False), default=None,
               help="Folder holding physionet2012_raw_abc.tar.gz [default: "
                    "$TIMETOK_DATA_DIR, ~/.cache/timetok]."),
        option("--data-path", type=click.Path(), default=None,
               help="A folder or .tar.gz of the official PhysioNet 2012 files, or the folder "
                    f"of a records.csv long table.{own}"),
        option("--sets", default=None,
               help=f"PhysioNet sets, comma-separated [default: {sets}]."),
        option("--limit", type=click.IntRange(min=1), default=None,
               help="Keep the first N stays in the order read (set-a's first) before "
                    f"splitting: a small, quick run.{own}"),
    )


def size_options(defaults: bool):
    """Model sizes; without ``defaults`` (finetuning) they apply to --scratch alone."""
    values = dict(d_model=128, latent_dim=32, set_layers=2, inducing=0, n_heads=4,
                  seq_layers=4, d_ff=256, dropout=0.1)
    kinds = {name: click.IntRange(min=1) for name in SIZES}
    kinds |= {"inducing": click.IntRange(min=0), "dropout": click.FloatRange(0, 1, max_open=True)}
    return compose(*(
        option(f"--{name.replace('_', '-')}", type=kinds[name], show_default=defaults,
               default=values[name] if defaults else None,
               help=None if defaults else f"[default: {values[name]}; --scratch without "
                                          "--model only]")
        for name in SIZES))


training_options = optimiser_options(batch_size=32)


@click.group(cls=OrderedGroup)
def setvae() -> None:
    """SeqSetVAE: set-VAE pretraining on irregular ICU stays, then mortality prediction."""


def _sets(value: str | list | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else value
    return tuple(name.strip() for name in names if str(name).strip())


def _datamodule(s: dict, as_json: bool):
    """The data module of a training command, loaded, with its load report shown."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from timetok.setvae.data import RecordsDataModule

    datamodule = RecordsDataModule(
        s["dataset"], s["split"], s["bucket"], _sets(s["sets"]), s["limit"], s["batch_size"],
        s["data_dir"], s["data_path"], s["num_workers"])
    data = datamodule.load()
    if not as_json and rank_zero_only.rank == 0:
        sizes = "/".join(str(len(i)) for i in data.index.values())
        click.echo(f"{data.records.name}: {len(data.records):,} stays, split {s['split']} "
                   f"(train/val/test {sizes}), bucket {s['bucket']}; load report:")
        for line in data.records.report.lines():
            click.echo(f"  {line}")
    return datamodule, data


split_options = compose(
    option("--split", type=click.IntRange(0, 4), default=0, show_default=True,
           help="Which of the five fixed, stratified 80/10/10 splits."),
    option("--bucket", default="exact", show_default=True,
           help="One set per distinct time ('exact') or per so many hours (e.g. 1)."),
)


@setvae.command()
@data_options(from_model=False)
@split_options
@size_options(defaults=True)
@option("--beta", type=click.FloatRange(min=0), default=0.1, show_default=True,
        help="KL weight after the warm-up.")
@option("--beta-warmup-steps", type=click.IntRange(min=0), default=1000, show_default=True,
        help="Steps over which beta grows from 0.")
@option("--free-bits", type=click.FloatRange(min=0), default=0.05, show_default=True,
        help="Nats per latent dimension below which the KL is not pushed down.")
@option("--value-weight", type=click.FloatRange(min=0), default=1.0, show_default=True)
@option("--observed-weight", type=click.FloatRange(min=0), default=1.0, show_default=True)
@training_options
@option("--save-path", type=click.Path(file_okay=False), default=None,
        help="Run folder [default: runs/setvae-DATASET].")
@run_options
@json_option
@pass_settings
def pretrain(**s) -> None:
    """Reconstruct each set from its latent and context, KL to the prior with free bits
    and a beta warm-up; on the training stays of the split, labels unread."""
    import lightning as L
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from timetok.core.plots import plot_history, plot_kl_per_dim
    from timetok.core.train.runner import train_and_export
    from timetok.setvae.recipe import pretrain_module

    save_path = Path(s["save_path"] or f"runs/setvae-{s['dataset']}")
    check_writable(save_path, "--save-path")
    check_new_run(save_path, s)
    options = run_options_from(s)
    datamodule, data = _datamodule(s, s["as_json"])
    L.seed_everything(options.seed, workers=True, verbose=False)
    module = pretrain_module(data, s["lr"], s["weight_decay"], s["warmup_steps"],
                             **{k: s[k] for k in (*SIZES, *VAE)})
    with writing(save_path, "--save-path"):
        summary = train_and_export(module, datamodule, save_path, options, bool(s["resume"]),
                                   saved_settings(s))
        if rank_zero_only.rank == 0:
            plot_history(save_path / "pretraining_losses.png", save_path / "history.csv",
                         ["train_loss", "val_loss", "val_recon_value", "val_recon_observed",
                          "val_kl"], f"SeqSetVAE pretraining on {data.records.name}")
            if "kl_per_dim" in summary:
                plot_kl_per_dim(save_path / "kl_per_dim.png", summary["kl_per_dim"],
                                summary["free_bits"], summary["active_units"])
    print_summary(summary, save_path, s["as_json"], module.summary_lines(summary))


@setvae.command()
@option("--model", "pretrained_dir", type=click.Path(), default=None,
        help="Pretrained SeqSetVAE folder (timetok setvae pretrain).")
@data_options(from_model=False)
@split_options
@option("--feature", type=click.Choice(["mu", "mu_logvar_gated", "uncertainty"]),
        default="mu", show_default=True,
        help="What the classifier reads of each set: its posterior mean, the mean gated "
             "with its log-variance, or the means pooled by their precision.")
@option("--summaries/--no-summaries", default=True, show_default=True,
        help="The head also reads each variable's summary over the stay (last, mean, min, "
             "max, count, hours since last seen).")
@option("--freeze", "freeze_policy", default=None,
        help="head-only (the head and the gate train), partial (the sequence model too), "
             "full, or a comma list of parts: set_encoder, sequence, decoder, feature, "
             "head [default: head-only; full with --scratch]. The decoder never trains here.")
@option("--pos-weight", default="1", show_default=True,
        help="Weight of the positive class in the loss: a number, or auto (negatives / "
             "positives of the training stays). Weights other than 1 shift the "
             "probabilities away from calibrated.")
@option("--loss", type=click.Choice(["ce", "focal"]), default="ce", show_default=True)
@option("--focal-gamma", type=click.FloatRange(min=0), default=2.0, show_default=True,
        help="Focusing exponent of --loss focal.")
@option("--allow-partial", is_flag=True,
        help="Train even when under 95 % of the backbone's tensors load from --model.")
@option("--scratch", is_flag=True,
        help="Start every weight anew (the architecture of --model, or the sizes given): "
             "the baseline without pretraining.")
@size_options(defaults=False)
@training_options
@option("--patience", type=click.IntRange(min=1), default=None,
        help="Validations without improvement before stopping early.")
@option("--save-path", type=click.Path(file_okay=False), default=None,
        help="Run folder [default: runs/setvae-ft-DATASET].")
@run_options
@json_option
@pass_settings
def finetune(**s) -> None:
    """Train a mortality head (and, by --freeze, more) on the labels; the best checkpoint
    by validation AUROC, never by test."""
    import lightning as L
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from timetok.core.train.freeze import format_table
    from timetok.core.train.runner import train_and_export
    from timetok.setvae.recipe import finetune_module

    save_path = Path(s["save_path"] or f"runs/setvae-ft-{s['dataset']}")
    check_writable(save_path, "--save-path")
    check_new_run(save_path, s)
    options = run_options_from(s)
    datamodule, data = _datamodule(s, s["as_json"])
    L.seed_everything(options.seed, workers=True, verbose=False)
    module = finetune_module(
        s["pretrained_dir"], data, s["lr"], s["weight_decay"], s["warmup_steps"],
        freeze_policy=s["freeze_policy"], pos_weight=s["pos_weight"], loss=s["loss"],
        focal_gamma=s["focal_gamma"], feature=s["feature"], summaries=s["summaries"],
        scratch=s["scratch"], allow_partial=s["allow_partial"],
        **{k: s[k] for k in SIZES if s[k] is not None})
    if not s["as_json"] and rank_zero_only.rank == 0:
        if module.load_report is not None:
            click.echo(f"weights from {s['pretrained_dir']}:")
            click.echo("\n".join(f"  {line}" for line in module.load_report.lines()))
        policy = s["freeze_policy"] or ("full" if s["scratch"] else "head-only")
        click.echo(f"--freeze {policy}:\n{format_table(module.table)}")
        click.echo(f"trainable share: {100 * module.trainable_share:.1f} % of the parameters")
    with writing(save_path, "--save-path"):
        summary = train_and_export(module, datamodule, save_path, options, bool(s["resume"]),
                                   saved_settings(s))
    print_summary(summary, save_path, s["as_json"], module.summary_lines(summary))


def _model_and_records(model_dir: str, s: dict):
    """A finetuned folder's classifier and the stays to score: the model's own data
    (``records.json``) unless --dataset, --data-dir or --data-path name other data; its
    sets and limit unless given or --dataset names another dataset."""
    from timetok.core.data.records import load_records
    from timetok.core.errors import ConfigError
    from timetok.setvae.artifacts import first_stays
    from timetok.setvae.pipeline import MortalityClassifier

    clf = MortalityClassifier.from_pretrained(model_dir)
    own = clf.settings
    dataset = s["dataset"] or own.dataset
    same = dataset == own.dataset
    data_path = s["data_path"]
    if same and s["data_path"] is None and s["data_dir"] is None:
        if not Path(own.source).exists():
            raise ConfigError(f"{model_dir} was trained on {own.source}, which is not there; "
                              "pass --data-dir or --data-path")
        data_path = own.source
    sets = _sets(s["sets"]) if s["sets"] is not None else (
        tuple(own.sets) if same and own.sets else None)
    limit = s["limit"] if s["limit"] is not None else (own.limit if same else None)
    records = load_records(dataset, data_dir=s["data_dir"], data_path=data_path, sets=sets)
    return clf, first_stays(records, limit) if limit else records


@setvae.command()
@option("--model", "model_dir", required=True, type=click.Path(),
        help="Finetuned SeqSetVAE folder (timetok setvae finetune).")
@data_options(from_model=True)
@option("--split", type=click.IntRange(0, 4), default=None,
        help="Split whose stays to evaluate [default: the model's].")
@option("--stays", "part", type=click.Choice(["test", "val"]), default="test",
        show_default=True)
@option("--bins", type=click.IntRange(2, 100), default=10, show_default=True,
        help="Equal-width bins of the calibration curve.")
@option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@option("--out", type=click.Path(file_okay=False), default=None,
        help="Report folder [default: MODEL/eval-DATASET-splitK].")
@json_option
def evaluate(model_dir, part, bins, batch_size, out, as_json, **s) -> None:
    """AUROC, AUPRC, Brier score and the ROC, precision-recall and calibration curves on
    the test (or validation) stays of a split; refuses stays the model trained on."""
    from rich.progress import track

    from timetok.core.errors import ConfigError
    from timetok.core.plots import plot_calibration, plot_precision_recall, plot_roc
    from timetok.core.report import markdown_table, write_report
    from timetok.core.utils import atomic_write_text
    from timetok.setvae.artifacts import load_split
    from timetok.setvae.evaluate import mortality_report

    clf, records = _model_and_records(model_dir, s)
    split = clf.settings.split if s["split"] is None else s["split"]
    index = records.split(split)[["train", "val", "test"].index(part)]
    if records.name == clf.settings.dataset:
        seen = set().union(*(load_split(model_dir)[p] for p in ("train", "val")))
        overlap = sorted(seen.intersection(records.ids[index].tolist()))
        if overlap:
            raise ConfigError(
                f"{len(overlap)} of the {len(index)} {part} stays (e.g. {overlap[0]}) were "
                f"among {model_dir}'s training or validation stays; evaluate on the split and "
                f"stays it was trained on (--split {clf.settings.split})")
    suffix = "" if part == "test" else f"-{part}"
    out_dir = Path(out or Path(model_dir) / f"eval-{records.name}-split{split}{suffix}")
    check_writable(out_dir, "--out")
    probs = clf.predict_proba(records, index, batch_size, track=lambda it: track(
        it, description="evaluating", disable=as_json, transient=True))
    labels = records.labels[index]
    report = {"dataset": records.name, "split": split, "part": part, "model": str(model_dir),
              **mortality_report(probs, labels, bins)}
    headline = {k: report[k] for k in ("stays", "positives", "auroc", "auprc", "brier", "ece")}
    markdown = (f"# SeqSetVAE mortality, {records.name} split {split}, {part} stays\n\n"
                + markdown_table([headline], list(headline)) + "\n\n## calibration\n\n"
                + markdown_table(report["calibration"],
                                 ["low", "high", "stays", "predicted", "observed"]))
    rows = "".join(f"{i},{y},{p:.6f}\n" for i, y, p in zip(records.ids[index], labels, probs,
                                                            strict=True))
    with writing(out_dir, "--out"):
        write_report(out_dir, report, markdown)
        atomic_write_text(out_dir / "predictions.csv", "stay_id,label,probability\n" + rows)
        curves = {Path(model_dir).name: report}
        plot_roc(out_dir / "roc.png", curves)
        plot_precision_recall(out_dir / "precision_recall.png", curves)
        plot_calibration(out_dir / "calibration.png", curves)
    click.echo(json.dumps(headline | {"out": str(out_dir)}, indent=2) if as_json else markdown)
    if not as_json:
        click.echo(f"\nreport, predictions and curves in {out_dir}")


@setvae.command()
@option("--model", "model_dir", required=True, type=click.Path(),
        help="Finetuned SeqSetVAE folder (timetok setvae finetune).")
@data_options(from_model=True)
@option("--split", type=click.IntRange(0, 4), default=None,
        help="Score the test stays of this split only [default: every stay].")
@option("--output", required=True, type=click.Path(dir_okay=False),
        help="CSV to write: stay_id,probability.")
@option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
def predict(model_dir, split, output, batch_size, **s) -> None:
    """The risk of in-hospital death of every stay (or a split's test stays) as CSV."""
    from rich.progress import track

    from timetok.core.cli_options import check_distinct
    from timetok.core.errors import ConfigError
    from timetok.core.utils import atomic_write_text

    if not str(output).endswith(".csv"):
        raise ConfigError(f"--output must name a .csv file, got {output}")
    check_writable(output, "--output", folder=False)
    check_distinct(output, "--output", {"--data-path": s["data_path"]})
    clf, records = _model_and_records(model_dir, s)
    index = None if split is None else records.split(split)[2]
    probs = clf.predict_proba(records, index, batch_size, track=lambda it: track(
        it, description="predicting", transient=True))
    ids = records.ids if index is None else records.ids[index]
    rows = "".join(f"{i},{p:.6f}\n" for i, p in zip(ids, probs, strict=True))
    with writing(output, "--output"):
        atomic_write_text(output, "stay_id,probability\n" + rows)
    click.echo(f"wrote the risk of {len(ids):,} stays to {output}")
