"""TimeMAE's recipes: masked pretraining, finetuning (or the head alone), evaluation.

Each stage is one function taking one config; ``timetok mae <stage>`` parses its flags
into that config, ``benchmarks/classify.py`` reads it from ``configs/mae/``, and
``Classifier.fit`` builds it from Python; all three run the same function.

>>> pretrain(PretrainConfig(dataset="ecg200", max_steps=5))   # doctest: +SKIP
>>> finetune(FinetuneConfig(model="runs/mae-ecg200", max_steps=5))   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from timetok.core.config import RunConfig
from timetok.core.errors import CheckpointError, ConfigError

CODEWORDS = ("linear", "vq")
ENCODERS = ("auto", "conv", "native", "bert")
MONITOR_CHOICES = ("accuracy", "macro_f1")
SPLIT_CHOICES = ("train", "val", "test")
BASELINES = ("auto", "minirocket", "nearest-neighbour", "none")
# Old freeze policy names, still accepted.
FREEZE_ALIASES = {"linear-probe": "head-only"}
# The TimeMAEConfig fields a pretraining config sets.
ARCHITECTURE = ("slice_length", "d_model", "n_layers", "n_heads", "d_ff", "dropout",
                "regressor_layers", "mask_ratio", "codeword", "vocab_size", "momentum",
                "encoder", "mrr_weight", "mcc_weight")


# Settings left unset (None, or "auto" for the encoder) follow the training split's size:
SMALL_SET = 2000  # fewer training samples than this: the convolutional encoder
MIN_STEPS, MAX_STEPS, EPOCHS = 1000, 5000, 30  # the budget: 30 epochs, within these steps


def batch_size_for(n_train: int) -> int:
    """A power of two near an eighth of the training samples, from 8 to 128: a small set
    still takes several optimiser steps per epoch.

    >>> [batch_size_for(n) for n in (24, 80, 240, 1000, 5881)]
    [8, 8, 16, 64, 128]
    """
    return int(min(128, max(8, 2 ** math.floor(math.log2(max(n_train / 8, 1))))))


def steps_for(n_train: int, batch_size: int) -> int:
    """The optimiser steps of a run without a budget: 30 epochs, at least 1000 steps (a
    small set's epoch is a few steps) and at most 5000.

    >>> steps_for(24, 8), steps_for(5881, 128)
    (1000, 1380)
    """
    return min(max(MIN_STEPS, EPOCHS * math.ceil(n_train / batch_size)), MAX_STEPS)


@dataclass
class LabelledConfig(RunConfig):
    """The labelled data a stage reads, its split, and the optimiser.

    ``batch_size`` and ``lr`` left as None, and a run without a budget (no ``n_epochs``,
    ``max_steps`` or ``max_time``), take values from the training split's size when the
    data is read (:meth:`sized`); the run's ``run.yaml`` records what they became.
    """

    dataset: str = "ecg200"
    data_path: str | None = None
    data_dir: str | None = None
    val_fraction: float = 0.2
    split_seed: int = 0  # keep it between pretraining and finetuning
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.01
    warmup_steps: int = 100

    def __post_init__(self):
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        for name in ("batch_size", "lr"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "warmup_steps", "split_seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")

    def load(self, data=None):
        """The labelled data these settings name (``data`` itself, when given)."""
        from timetok.core.data.labelled import load_labelled

        if data is not None:
            return data
        return load_labelled(self.dataset, data_dir=self.data_dir, data_path=self.data_path,
                             val_fraction=self.val_fraction, seed=self.split_seed)

    def sized(self, data):
        """These settings with the ones left unset chosen from ``data``'s training size."""
        n_train = len(data.splits["train"])
        batch_size = self.batch_size or batch_size_for(n_train)
        changes = {"batch_size": batch_size, "lr": self.lr or self.default_lr()}
        if self.n_epochs is None and self.max_steps < 0 and self.max_time is None:
            changes["max_steps"] = steps_for(n_train, batch_size)
        return self.replace(**changes)

    def default_lr(self) -> float:
        return 1e-3

    def datamodule(self, data):
        """The data module of these (sized) settings over ``data``, already loaded."""
        from timetok.mae.data import LabelledDataModule

        return LabelledDataModule(self.dataset, batch_size=self.batch_size,
                                  data_dir=self.data_dir, data_path=self.data_path,
                                  val_fraction=self.val_fraction, seed=self.split_seed,
                                  num_workers=self.num_workers, data=data)


@dataclass
class PretrainConfig(LabelledConfig):
    """``timetok mae pretrain``: masked pretraining (MRR + MCC); labels are not read."""

    slice_length: int = 8
    d_model: int = 64
    n_layers: int = 8
    n_heads: int = 4
    d_ff: int = 256
    dropout: float = 0.2
    regressor_layers: int = 4
    mask_ratio: float = 0.6
    codeword: str = "linear"
    vocab_size: int = 192
    momentum: float = 0.99  # of the MRR target encoder's EMA
    encoder: str = "auto"  # conv below SMALL_SET training samples, else native
    mrr_weight: float = 5.0
    mcc_weight: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        for name, choices in (("codeword", CODEWORDS), ("encoder", ENCODERS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}, got "
                                  f"{getattr(self, name)!r}")

    def output_dir(self) -> Path:
        return Path(self.save_path or f"runs/mae-{self.dataset}")

    def sized(self, data):
        sized = super().sized(data)
        if self.encoder != "auto":
            return sized
        small = len(data.splits["train"]) < SMALL_SET
        return sized.replace(encoder="conv" if small else "native")

    def architecture(self) -> dict:
        return {name: getattr(self, name) for name in ARCHITECTURE}


@dataclass
class FinetuneConfig(LabelledConfig):
    """``timetok mae finetune``: a classification head on a pretrained encoder.

    ``freeze_policy``: ``none`` (everything trains), ``head-only`` (the slicer and the
    encoder stay as pretraining made them), or a comma list of parts (slicer, encoder,
    head); the pretext parts never train here. ``scratch`` keeps the pretrained
    architecture and starts every weight anew (the baseline without pretraining).
    """

    model: str | None = None  # the pretrained folder (timetok mae pretrain)
    freeze_policy: str = "none"
    scratch: bool = False
    monitor: str = "accuracy"
    label_smoothing: float = 0.0
    label_fraction: float = 1.0  # labels kept per split (stratified, seeded by ``seed``)
    augment: float = 0.1  # scaling and jitter of the training series (0: none)

    def __post_init__(self):
        super().__post_init__()
        self.freeze_policy = FREEZE_ALIASES.get(self.freeze_policy, self.freeze_policy)
        if self.monitor not in MONITOR_CHOICES:
            raise ConfigError(f"monitor must be one of {', '.join(MONITOR_CHOICES)}, got "
                              f"{self.monitor!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.augment < 1:
            raise ConfigError(f"augment must lie in [0, 1), got {self.augment}")
        if not 0 < self.label_fraction <= 1:
            raise ConfigError(f"label_fraction must lie in (0, 1], got {self.label_fraction}")

    def default_lr(self) -> float:
        """1e-2 for a head on a frozen encoder (it barely moves at 1e-3), else 1e-3."""
        return 1e-2 if self.freeze_policy == "head-only" else 1e-3

    def load(self, data=None):
        """The labelled data, with labels for ``label_fraction`` of it."""
        return super().load(data).with_labels(self.label_fraction, self.seed)

    def output_dir(self) -> Path:
        return Path(self.save_path or f"runs/mae-ft-{self.dataset}")


@dataclass
class EvaluateConfig:
    """``timetok mae evaluate``: the model and a simple baseline on one split.

    ``baseline``: ``auto`` is MiniRocket where aeon is installed, else the 1-nearest
    neighbour (Euclidean) of the raw series; fitted on the training samples (and the
    validation ones when the test split is scored).
    """

    model: str
    dataset: str = "ecg200"
    data_path: str | None = None
    data_dir: str | None = None
    val_fraction: float = 0.2
    split_seed: int = 0
    split: str = "test"
    batch_size: int = 256
    out: str | None = None
    baseline: str = "auto"
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self):
        if self.split not in SPLIT_CHOICES:
            raise ConfigError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got "
                              f"{self.split!r}")
        if self.baseline not in BASELINES:
            raise ConfigError(f"baseline must be one of {', '.join(BASELINES)}, got "
                              f"{self.baseline!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")

    def output_dir(self) -> Path:
        from timetok.core.data.registry import get_spec

        return Path(self.out or Path(self.model) / f"eval-{get_spec(self.dataset).name}")


def pretrain(config: PretrainConfig, data=None) -> dict:
    """Masked pretraining on the training samples; returns the run's summary. ``data`` (a
    ``LabelledData``) stands in for the dataset the config names."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from timetok.core.plots import plot_history
    from timetok.core.train.runner import begin, train_and_export
    from timetok.mae.model import TimeMAEConfig
    from timetok.mae.modules import MAEPretrainModule

    save_path = config.output_dir()
    config.check_new_run(save_path)
    data = config.load(data)
    config = config.sized(data)
    options = config.run_options()
    begin(options)
    datamodule = config.datamodule(data)
    model = TimeMAEConfig(n_channels=data.n_channels, length=data.length,
                          **config.architecture())
    module = MAEPretrainModule(dataclasses.asdict(model), config.lr, config.weight_decay,
                               config.warmup_steps)
    summary = train_and_export(module, datamodule, save_path, options, config.resume,
                               config.settings())
    accuracy = None
    if rank_zero_only.rank == 0:
        # history.csv names each epoch's mean without Lightning's "_epoch" suffix.
        plot_history(save_path / "pretraining_losses.png", save_path / "history.csv",
                     ["train_loss", "train_mrr", "train_mcc", "val_loss", "val_mrr", "val_mcc"],
                     f"TimeMAE pretraining on {data.name}")
        accuracy = _last_epoch(save_path / "history.csv").get("val_mcc_accuracy")
    # How far the codeword task is above guessing (see the codeword option).
    summary["mcc"] = {"val_accuracy": None if accuracy in (None, "") else float(accuracy),
                      "chance": 1 / config.vocab_size}
    return summary


def _last_epoch(history: Path) -> dict:
    import csv

    with history.open() as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else {}


def finetune_module(config: FinetuneConfig, data):
    """The finetuning module over ``config.model`` with a new head for the classes of
    ``data`` (a ``LabelledData``), and the report of the weights it started from (None
    with ``scratch``)."""
    from timetok.core.model_folder import warm_start
    from timetok.mae.model import TimeMAE
    from timetok.mae.modules import MAEFinetuneModule

    if config.model is None:
        raise ConfigError("model must name a pretrained TimeMAE folder (timetok mae pretrain)")
    pretrained = TimeMAE.from_pretrained(config.model).config
    if (pretrained.n_channels, pretrained.length) != (data.n_channels, data.length):
        raise CheckpointError(
            f"{config.model} was pretrained on series of {pretrained.length} steps x "
            f"{pretrained.n_channels} channel(s), the data has {data.length} x "
            f"{data.n_channels}; pretrain on data of the same shape"
        )
    architecture = dataclasses.replace(pretrained, n_classes=data.n_classes)
    module = MAEFinetuneModule(dataclasses.asdict(architecture), config.lr,
                               config.weight_decay, config.warmup_steps, config.freeze_policy,
                               config.label_smoothing, config.monitor, config.augment)
    if config.scratch:
        return module, None
    report = warm_start(module.model, config.model, new=("head",))
    if any(key.startswith("head.") for key in report.matched):
        module.model.head.reset_parameters()  # a finetuned folder's head knew other labels
    return module, report


def finetune(config: FinetuneConfig, data=None) -> dict:
    """Train a classification head (and the encoder, unless frozen) on the labels; the
    best checkpoint is chosen on validation, never on test. Returns the run's summary,
    with the parameter table under ``parameters_by_part``."""
    from timetok.core.train.runner import begin, train_and_export

    save_path = config.output_dir()
    config.check_new_run(save_path)
    data = config.load(data)
    config = config.sized(data)
    options = config.run_options()
    begin(options)
    datamodule = config.datamodule(data)
    module, report = finetune_module(config, data)
    summary = train_and_export(module, datamodule, save_path, options, config.resume,
                               config.settings())
    summary["parameters_by_part"] = module.table
    if report is not None:
        summary["warm_start"] = report.summary()
    return summary


def evaluate(config: EvaluateConfig, track=iter) -> dict:
    """Accuracy, macro-F1, a per-class table and the confusion matrix of a finetuned
    folder on one split, beside a simple baseline's accuracy and macro-F1 on the same
    samples; writes ``report.json``, ``report.md`` and ``confusion.png`` to the output
    folder and returns the report (``out`` under ``report["out"]``)."""
    from timetok.core.devices import resolve_device
    from timetok.core.plots import plot_confusion
    from timetok.core.report import write_report
    from timetok.core.threads import use_threads
    from timetok.mae.evaluate import (
        baseline_report,
        classification_report,
        load_for_evaluation,
        markdown_report,
        predict_split,
    )

    use_threads(config.threads)
    model, data = load_for_evaluation(config, need_head=True)
    out_dir = config.output_dir()
    probs, labels = predict_split(model, data.dataset(config.split), config.batch_size,
                                  track=track, device=resolve_device(config.device))
    report = {"dataset": data.name, "split": config.split, "split_rule": data.split_rule,
              **classification_report(probs, labels, data.classes),
              "baseline": baseline_report(data, config.split, config.baseline)}
    write_report(out_dir, report, markdown_report(report))
    plot_confusion(out_dir / "confusion.png", report["confusion"], data.classes)
    return report | {"out": str(out_dir)}
