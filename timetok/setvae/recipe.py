"""The recipes of SeqSetVAE (system 5): ``pretrain``, ``finetune`` and ``evaluate``, each
a library function of one config (:mod:`timetok.setvae.config`).

``timetok setvae <stage>`` parses its flags into that config and calls the same function
that ``benchmarks/physionet.py`` calls with a file of ``configs/setvae/``. Each training
recipe sets the threads and seeds once (:func:`timetok.core.train.runner.begin`), reads
the stays, builds the module (:mod:`timetok.setvae.modules`), trains and exports it, and
returns the run's summary.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.core.model_folder import CONFIG_NAME, LoadReport, read_json, warm_start
from timetok.setvae.artifacts import REPORT, RecordsSettings, Vocabulary
from timetok.setvae.config import (
    EvaluateConfig,
    FinetuneConfig,
    PretrainConfig,
    StageConfig,
    set_names,
)
from timetok.setvae.data import RecordsDataModule, StaySplits
from timetok.setvae.model import SeqSetVAE, SeqSetVAEConfig
from timetok.setvae.modules import (
    WEIGHTS_REPORT,
    SetVAEFinetuneModule,
    SetVAEPretrainModule,
    frozen_parts,
)

logger = logging.getLogger(__name__)

NEW_PARTS = ("head.", "wide.", "feature.")  # start anew when finetuning from a pretrained model
Echo = Callable[[str], None]  # where a recipe says what it is about to train


# --- building the modules ------------------------------------------------------------------


def pretrain_module(data: StaySplits, lr: float = 1e-3, weight_decay: float = 0.01,
                    warmup_steps: int = 100, **settings) -> SetVAEPretrainModule:
    """A pretraining module for the variables and statics of ``data``; ``settings`` are
    :class:`SeqSetVAEConfig` fields (sizes, beta, free bits ...)."""
    vocabulary = data.vocabulary
    config = SeqSetVAEConfig(n_variables=len(vocabulary.variables),
                             n_statics=len(vocabulary.statics), **settings)
    return SetVAEPretrainModule(dataclasses.asdict(config), lr, weight_decay, warmup_steps)


def resolve_pos_weight(pos_weight: float | str, labels) -> float:
    """A number, or ``"auto"``: negatives / positives among ``labels`` (the training
    stays')."""
    if pos_weight != "auto":
        try:
            return float(pos_weight)
        except (TypeError, ValueError):
            raise ConfigError(f"pos_weight must be a number > 0 or 'auto', got {pos_weight!r}"
                              ) from None
    positives = int((labels > 0).sum())
    if positives == 0:
        raise DataError("pos_weight 'auto' needs positive training stays, found none; pass "
                        "a number or more stays")
    return (len(labels) - positives) / positives


def _check_both_outcomes(data: StaySplits) -> None:
    """Refuse a split whose training or validation stays hold one outcome: the head would
    learn nothing, and the validation AUROC that picks the checkpoint is undefined (it
    would be logged as 0)."""
    for part, what in (("train", "training"), ("val", "validation")):
        outcomes = sorted(set(data.records.labels[data.index[part]].tolist()))
        if len(outcomes) < 2:
            raise DataError(
                f"the {what} stays of split {data.settings.split} in {data.records.name} all "
                f"have label {outcomes[0]} ({len(data.index[part])} stays): finetuning needs "
                "both outcomes in the training and the validation stays; read more stays "
                "(a larger limit=N, or none) or stays of both outcomes")


def load_pretrained(model: SeqSetVAE, directory: str | Path,
                    allow_partial: bool = False) -> LoadReport:
    """Warm-start ``model`` from a SeqSetVAE folder: its backbone is all but the head and
    the logvar gate (see :func:`timetok.core.model_folder.warm_start`)."""
    return warm_start(model, directory, new=NEW_PARTS, allow_partial=allow_partial)


def _pretrained_config(directory: Path, data: StaySplits) -> SeqSetVAEConfig:
    """The config of the pretrained folder, after checking it reads the data's variables
    (and warning when it was pretrained on stays read another way)."""
    raw = read_json(directory / CONFIG_NAME, "model config")
    if raw.pop("model_type", None) != SeqSetVAE.model_type:
        raise CheckpointError(f"{directory} does not hold a SeqSetVAE model; pass a folder "
                              "of timetok setvae pretrain")
    config = SeqSetVAE.config_from_dict(raw, str(directory / CONFIG_NAME))
    Vocabulary.load(directory).check_same(data.vocabulary, str(directory), data.records.name)
    before, now = RecordsSettings.load(directory, required=False), data.settings
    if before is not None:
        changed = [f"{name} {getattr(before, name)!r} -> {getattr(now, name)!r}"
                   for name in ("dataset", "sets", "limit", "split", "bucket")
                   if getattr(before, name) != getattr(now, name)]
        if changed:
            logger.warning("%s was pretrained on stays read otherwise (%s): its test stays may "
                           "have been among the pretraining stays", directory,
                           ", ".join(changed))
    return config


def finetune_module(pretrained_dir: str | Path | None, data: StaySplits, lr: float = 1e-3,
                    weight_decay: float = 0.01, warmup_steps: int = 100, *,
                    freeze: str | None = None, pos_weight: float | str = 1.0,
                    loss: str = "ce", focal_gamma: float = 2.0, feature: str = "mu",
                    summaries: bool = True, scratch: bool = False, allow_partial: bool = False,
                    **settings) -> SetVAEFinetuneModule:
    """A finetuning module for the stays of ``data`` (labels 0 and 1).

    From a pretrained folder: its architecture, a new head, every weight that fits loaded
    and reported (:func:`load_pretrained`); the folder must read the data's variables.
    ``scratch`` keeps the architecture (or, without a folder, builds one from
    ``settings``) and starts every weight anew: the baseline that measures pretraining.
    ``freeze`` defaults to ``head-only``, ``none`` with ``scratch``. ``summaries``:
    the head also reads per-variable summaries of each stay (see
    :func:`timetok.setvae.model.stay_summaries`).
    """
    if pretrained_dir is None and not scratch:
        raise ConfigError("finetuning needs a pretrained folder, model=PATH, or scratch=True "
                          "to train from new weights")
    if scratch and allow_partial:
        raise ConfigError("allow_partial=True concerns loading pretrained weights and "
                          "scratch=True loads none; drop one of them")
    if freeze is None:
        freeze = "none" if scratch else "head-only"
    if scratch and set(frozen_parts(freeze)) - {"decoder"}:
        raise ConfigError(f"freeze={freeze!r} with scratch=True would keep parts at their "
                          "random initialisation; use freeze='none'")
    if settings and pretrained_dir is not None:
        raise ConfigError(f"the sizes come from {pretrained_dir}'s config; leave "
                          f"{', '.join(sorted(settings))} out")
    labels = data.records.labels
    if not set(labels.tolist()) <= {0, 1}:
        raise DataError(f"mortality finetuning reads labels 0 and 1, {data.records.name} has "
                        f"{sorted(set(labels.tolist()))}; pass binary labels")
    vocabulary = data.vocabulary
    if pretrained_dir is None:
        base = SeqSetVAEConfig(n_variables=len(vocabulary.variables),
                               n_statics=len(vocabulary.statics), **settings)
    else:
        base = _pretrained_config(Path(pretrained_dir), data)
    _check_both_outcomes(data)
    config = dataclasses.replace(base, n_classes=2, feature=feature, summaries=summaries)
    weight = resolve_pos_weight(pos_weight, labels[data.index["train"]])
    module = SetVAEFinetuneModule(dataclasses.asdict(config), lr, weight_decay, warmup_steps,
                                  freeze, weight, loss, focal_gamma)
    if pretrained_dir is not None and not scratch:
        module.load_report = load_pretrained(module.model, pretrained_dir, allow_partial)
    return module


# --- the recipes ---------------------------------------------------------------------------


def _stays(config: StageConfig, echo: Echo, report: bool) -> tuple[RecordsDataModule,
                                                                   StaySplits]:
    """The data module of a training recipe, loaded; one line on the stays (and, with
    ``report``, the load report) said."""
    datamodule = RecordsDataModule(
        config.dataset, config.split, config.bucket, set_names(config.sets), config.limit,
        config.batch_size, config.data_dir, config.data_path, config.num_workers)
    data = datamodule.load()
    sizes = "/".join(str(len(i)) for i in data.index.values())
    bucket = data.settings.bucket
    echo(f"{data.records.name}: {len(data.records):,} stays, split {config.split} "
         f"(train/val/test {sizes}), bucket {bucket if bucket == 'exact' else f'{bucket:g} h'}")
    lines = data.records.report.lines()
    for line in lines if report else ():
        echo(f"  {line}")
    if not report:
        logger.info("load report (also in %s of the run folder):\n  %s", REPORT,
                    "\n  ".join(lines))
    return datamodule, data


def _main_process() -> bool:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return rank_zero_only.rank == 0


def pretrain(config: PretrainConfig, echo: Echo | None = None) -> dict:
    """Pretrain a SeqSetVAE on the training stays of ``config.split`` (labels unread) into
    ``config.save_path`` (default ``runs/setvae-DATASET``) with its loss curves and KL per
    dimension drawn; returns the run's summary. ``echo`` receives what is about to be
    trained (the stays, the load report); None logs it."""
    from timetok.core.plots import plot_history, plot_kl_per_dim
    from timetok.core.train.runner import begin, train_and_export

    save_path = Path(config.run_folder(""))
    config.check_apart(save_path)
    say = echo if echo is not None and _main_process() else logger.info
    options = config.run_options()
    begin(options)
    datamodule, data = _stays(config, say, report=True)
    module = pretrain_module(data, config.lr, config.weight_decay, config.warmup_steps,
                             **config.model_settings())
    summary = train_and_export(module, datamodule, save_path, options, config.resume,
                               config.settings())
    if _main_process():
        plot_history(save_path / "pretraining_losses.png", save_path / "history.csv",
                     ["train_loss", "val_loss", "val_recon_value", "val_recon_observed",
                      "val_kl"], f"SeqSetVAE pretraining on {data.records.name}")
        if "kl_per_dim" in summary:
            plot_kl_per_dim(save_path / "kl_per_dim.png", summary["kl_per_dim"],
                            summary["free_bits"], summary["active_units"])
    return summary


def finetune(config: FinetuneConfig, echo: Echo | None = None) -> dict:
    """Finetune a mortality head on ``config.model`` (or, with ``config.scratch``, new
    weights) into ``config.save_path`` (default ``runs/setvae-ft-DATASET``); returns the
    run's summary. ``echo`` receives the stays, the warm start's counts (every key in
    ``warm_start.txt`` of the run folder, and logged) and the parameter table."""
    from timetok.core.train.freeze import format_table
    from timetok.core.train.runner import begin, train_and_export

    save_path = Path(config.run_folder("-ft"))
    config.check_apart(save_path)
    say = echo if echo is not None and _main_process() else logger.info
    options = config.run_options()
    begin(options)
    datamodule, data = _stays(config, say, report=False)
    module = finetune_module(
        config.model, data, config.lr, config.weight_decay, config.warmup_steps,
        freeze=config.freeze, pos_weight=config.pos_weight, loss=config.loss,
        focal_gamma=config.focal_gamma, feature=config.feature, summaries=config.summaries,
        scratch=config.scratch, allow_partial=config.allow_partial, **config.model_settings())
    if module.load_report is not None:
        say(f"weights from {config.model}: {module.load_report.summary()}; every key in "
            f"{WEIGHTS_REPORT} of the run folder")
        logger.info("weights from %s, key by key:\n  %s", config.model,
                    "\n  ".join(module.load_report.lines()))
    policy = config.freeze or ("none" if config.scratch else "head-only")
    say(f"freeze {policy}:\n{format_table(module.table)}")
    say(f"trainable share: {100 * module.trainable_share:.1f} % of the parameters")
    return train_and_export(module, datamodule, save_path, options, config.resume,
                            config.settings())


def evaluate(config: EvaluateConfig, track: Callable[[Iterable], Iterable] = iter) -> dict:
    """AUROC, AUPRC, Brier score, calibration and curves of a finetuned folder on the test
    (or validation) stays of a split, beside a logistic regression on stay summaries fitted
    in the same run; refuses stays the model trained or selected on. Writes the report,
    the predictions and the curves to ``config.out`` (default
    ``MODEL/eval-DATASET-splitK``); returns the report with ``out``."""
    from timetok.setvae.evaluate import (
        PARTS,
        check_unseen,
        logistic_baseline,
        model_stays,
        mortality_report,
        write_evaluation,
    )
    from timetok.setvae.pipeline import MortalityClassifier

    if config.stays not in ("test", "val"):
        raise ConfigError(f"stays must be 'test' or 'val', got {config.stays!r}")
    clf = MortalityClassifier.from_pretrained(config.model, device=config.device)
    records = model_stays(clf, config.model, config.dataset, config.data_dir,
                          config.data_path, set_names(config.sets), config.limit)
    split = clf.settings.split if config.split is None else config.split
    parts = records.split(split)
    index = parts[PARTS.index(config.stays)]
    check_unseen(clf, config.model, records, index, config.stays)
    suffix = "" if config.stays == "test" else f"-{config.stays}"
    out = Path(config.out or Path(config.model) / f"eval-{records.name}-split{split}{suffix}")
    probs = clf.predict_proba(records, index, config.batch_size, track=track)
    labels = records.labels[index]
    report = {"dataset": records.name, "split": split, "part": config.stays,
              "model": str(config.model), **mortality_report(probs, labels, config.bins)}
    if config.baseline:
        report["baseline"] = logistic_baseline(records, parts, config.stays, config.bins)
    write_evaluation(out, report, records.ids[index], labels, probs)
    return report | {"out": str(out)}
