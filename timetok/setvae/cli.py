"""``timetok setvae``: SeqSetVAE on irregular ICU stays (system 5): pretrain, finetune,
evaluate, predict.

Each training command parses its flags (and ``--config FILE``) into the stage's config
(:mod:`timetok.setvae.config`, whose defaults the flags show) and calls its recipe
(:mod:`timetok.setvae.recipe`); the commands keep only the checks that speak of flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from timetok.core.cli_options import (
    FiniteFloat,
    OrderedGroup,
    check_save_path,
    check_writable,
    compose,
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
from timetok.setvae.config import (
    SIZES,
    EvaluateConfig,
    FinetuneConfig,
    PretrainConfig,
    StageConfig,
)


def data_options(from_model: bool):
    """Where the stays come from; for a trained model's commands every default is the
    model's own (the ``records`` section of its ``data.json``)."""
    own = " [default: the model's]" if from_model else ""
    sets = "the model's" if from_model else "a,b,c"
    return compose(
        option("--dataset", default=None if from_model else StageConfig.dataset,
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
    kinds = {name: click.IntRange(min=1) for name in SIZES}
    kinds |= {"inducing": click.IntRange(min=0), "dropout": FiniteFloat(0, 1, max_open=True)}
    return compose(*(
        option(f"--{name.replace('_', '-')}", type=kinds[name], show_default=defaults,
               default=getattr(PretrainConfig, name) if defaults else None,
               help=None if defaults else f"[default: {getattr(PretrainConfig, name)}; "
                                          "--scratch without --model only]")
        for name in SIZES))


training_options = compose(
    option("--split", type=click.IntRange(0, 4), default=StageConfig.split, show_default=True,
           help="Which of the five fixed, stratified 80/10/10 splits."),
    option("--bucket", default=StageConfig.bucket, show_default=True,
           help="One set per distinct time ('exact') or per so many hours (e.g. 1)."),
    optimiser_options(batch_size=StageConfig.batch_size, weight_decay=StageConfig.weight_decay,
                      warmup_steps=StageConfig.warmup_steps, lr=StageConfig.lr),
    option("--patience", type=click.IntRange(min=1), default=None,
           help="Validations without improvement before stopping early."),
)


@click.group(cls=OrderedGroup)
def setvae() -> None:
    """SeqSetVAE: set-VAE pretraining on irregular ICU stays, then mortality prediction."""


def _config(cls, s: dict, save_path: Path):
    """The stage's config from the command's settings."""
    return cls.from_settings(s, save_path=str(save_path))


def _start(s: dict, default: str) -> Path:
    """The run folder, checked before any work (see :func:`check_save_path`)."""
    save_path = Path(s["save_path"] or default)
    check_save_path(save_path, s)
    return save_path


@setvae.command()
@data_options(from_model=False)
@training_options
@size_options(defaults=True)
@option("--beta", type=FiniteFloat(min=0), default=PretrainConfig.beta, show_default=True,
        help="KL weight after the warm-up.")
@option("--beta-warmup-steps", type=click.IntRange(min=0),
        default=PretrainConfig.beta_warmup_steps, show_default=True,
        help="Steps over which beta grows from 0.")
@option("--free-bits", type=FiniteFloat(min=0), default=PretrainConfig.free_bits,
        show_default=True,
        help="Nats per latent dimension below which the KL is not pushed down.")
@option("--value-weight", type=FiniteFloat(min=0), default=PretrainConfig.value_weight,
        show_default=True)
@option("--observed-weight", type=FiniteFloat(min=0),
        default=PretrainConfig.observed_weight, show_default=True)
@option("--save-path", type=click.Path(file_okay=False), default=None,
        help="Run folder [default: runs/setvae-DATASET].")
@run_options
@json_option
@pass_settings
def pretrain(**s) -> None:
    """Reconstruct each set from its latent and context, KL to the prior with free bits
    and a beta warm-up; on the training stays of the split, labels unread."""
    from timetok.setvae.modules import pretrain_summary_lines
    from timetok.setvae.recipe import pretrain as recipe

    save_path = _start(s, f"runs/setvae-{s['dataset']}")
    config = _config(PretrainConfig, s, save_path)
    with writing(save_path, "--save-path"):
        summary = recipe(config, echo=None if s["as_json"] else click.echo)
    print_summary(summary, save_path, s["as_json"], pretrain_summary_lines(summary))


@setvae.command()
@option("--model", type=click.Path(), default=None,
        help="Pretrained SeqSetVAE folder (timetok setvae pretrain).")
@data_options(from_model=False)
@option("--feature", type=click.Choice(["mu", "mu_logvar_gated", "uncertainty"]),
        default=FinetuneConfig.feature, show_default=True,
        help="What the classifier reads of each set: its posterior mean, the mean gated "
             "with its log-variance, or the means pooled by their precision.")
@option("--summaries/--no-summaries", default=FinetuneConfig.summaries, show_default=True,
        help="The head also reads each variable's summary over the stay (last, mean, min, "
             "max, count, hours since last seen).")
@option("--freeze", default=FinetuneConfig.freeze,
        help="none (everything trains), head-only (the head and the gate), partial (the "
             "sequence model too), or a comma list of parts: set_encoder, sequence, decoder, "
             "feature, head [default: head-only; none with --scratch]. The decoder never "
             "trains here.")
@option("--pos-weight", default=str(FinetuneConfig.pos_weight), show_default=True,
        help="Weight of the positive class in the loss: a number, or auto (negatives / "
             "positives of the training stays). Weights other than 1 shift the "
             "probabilities away from calibrated.")
@option("--loss", type=click.Choice(["ce", "focal"]), default=FinetuneConfig.loss,
        show_default=True)
@option("--focal-gamma", type=FiniteFloat(min=0), default=FinetuneConfig.focal_gamma,
        show_default=True, help="Focusing exponent of --loss focal.")
@option("--allow-partial", is_flag=True,
        help="Train even when under 95 % of the backbone's tensors load from --model.")
@option("--scratch", is_flag=True,
        help="Start every weight anew (the architecture of --model, or the sizes given): "
             "the baseline without pretraining.")
@size_options(defaults=False)
@training_options
@option("--save-path", type=click.Path(file_okay=False), default=None,
        help="Run folder [default: runs/setvae-ft-DATASET].")
@run_options
@json_option
@pass_settings
def finetune(**s) -> None:
    """Train a mortality head (and, by --freeze, more) on the labels; the best checkpoint
    by validation AUROC, never by test. Prints how many weights load from --model (every
    key in warm_start.txt of the run folder, and with -v)."""
    from timetok.setvae.recipe import finetune as recipe

    save_path = _start(s, f"runs/setvae-ft-{s['dataset']}")
    config = _config(FinetuneConfig, s, save_path)
    with writing(save_path, "--save-path"):
        summary = recipe(config, echo=None if s["as_json"] else click.echo)
    print_summary(summary, save_path, s["as_json"])


@setvae.command()
@option("--model", required=True, type=click.Path(),
        help="Finetuned SeqSetVAE folder (timetok setvae finetune).")
@data_options(from_model=True)
@option("--split", type=click.IntRange(0, 4), default=None,
        help="Split whose stays to evaluate [default: the model's].")
@option("--stays", type=click.Choice(["test", "val"]), default=EvaluateConfig.stays,
        show_default=True)
@option("--bins", type=click.IntRange(2, 100), default=EvaluateConfig.bins, show_default=True,
        help="Equal-width bins of the calibration curve.")
@option("--batch-size", type=click.IntRange(min=1), default=EvaluateConfig.batch_size,
        show_default=True)
@option("--out", type=click.Path(file_okay=False), default=None,
        help="Report folder [default: MODEL/eval-DATASET-splitK].")
@option("--baseline/--no-baseline", default=EvaluateConfig.baseline, show_default=True,
        help="Fit a logistic regression on per-variable stay summaries of the split's "
             "training stays and score it beside the model (scikit-learn).")
@device_option
@threads_option
@json_option
def evaluate(as_json: bool, threads: int | None, **s) -> None:
    """AUROC, AUPRC, Brier score and the ROC, precision-recall and calibration curves on
    the test (or validation) stays of a split, beside a logistic regression on stay
    summaries trained in the same run; refuses stays the model trained on."""
    from rich.progress import track

    from timetok.core.cli_options import resolve_device
    from timetok.setvae.evaluate import headline
    from timetok.setvae.recipe import evaluate as recipe

    if s["out"] is not None:
        check_apart(s["out"], "out", read_paths(s), may_lie_inside=("model",))
        check_writable(s["out"], "--out")
    config = EvaluateConfig(**s | {"device": resolve_device(s["device"])})
    with writing(s["out"] or s["model"], "--out"):
        report = recipe(config, track=lambda it: track(
            it, description="evaluating", disable=as_json, transient=True))
    if as_json:
        click.echo(json.dumps(headline(report), indent=2))
        return
    click.echo((Path(report["out"]) / "report.md").read_text().rstrip())
    click.echo(f"\nreport, predictions and curves in {report['out']}")


@setvae.command()
@option("--model", required=True, type=click.Path(),
        help="Finetuned SeqSetVAE folder (timetok setvae finetune).")
@data_options(from_model=True)
@option("--split", type=click.IntRange(0, 4), default=None,
        help="Score the test stays of this split only [default: every stay].")
@option("--output", required=True, type=click.Path(dir_okay=False),
        help="CSV to write: stay_id,probability.")
@option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@device_option
@threads_option
def predict(model, split, output, batch_size, device, threads, **s) -> None:
    """The risk of in-hospital death of every stay (or a split's test stays) as CSV."""
    from rich.progress import track

    from timetok.core.cli_options import resolve_device
    from timetok.core.errors import ConfigError
    from timetok.core.utils import atomic_write_text
    from timetok.setvae.config import set_names
    from timetok.setvae.evaluate import model_stays
    from timetok.setvae.pipeline import MortalityClassifier

    if not str(output).endswith(".csv"):
        raise ConfigError(f"--output must name a .csv file, got {output}")
    check_apart(output, "output", read_paths(s) | {"model": model})
    check_writable(output, "--output", folder=False)
    clf = MortalityClassifier.from_pretrained(model, device=resolve_device(device))
    records = model_stays(clf, model, s["dataset"], s["data_dir"], s["data_path"],
                          set_names(s["sets"]), s["limit"])
    index = None if split is None else records.split(split)[2]
    probs = clf.predict_proba(records, index, batch_size, track=lambda it: track(
        it, description="predicting", transient=True))
    ids = records.ids if index is None else records.ids[index]
    rows = "".join(f"{i},{p:.6f}\n" for i, p in zip(ids, probs, strict=True))
    with writing(output, "--output"):
        atomic_write_text(output, "stay_id,probability\n" + rows)
    click.echo(f"wrote the risk of {len(ids):,} stays to {output}")
