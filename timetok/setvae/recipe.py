"""Training SeqSetVAE (system 5): set-VAE pretraining on ICU stays, then mortality.

Pretraining reconstructs each set from its latent and its context (labels unused); beta
warms up over the training steps, while validation always weighs the KL by the final
beta, so the validation loss that picks the best checkpoint compares across epochs.
Finetuning trains a binary head (cross-entropy with an optional positive-class weight,
or focal loss) and picks the checkpoint of the best validation AUROC.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.core.model_folder import (
    CONFIG_NAME,
    LoadReport,
    read_json,
    warm_start,
)
from timetok.core.train.freeze import freeze, parameter_table, require_trainable, resolve_freeze
from timetok.core.train.modules import TaskModule
from timetok.setvae.artifacts import SETTINGS, RecordsSettings, Vocabulary
from timetok.setvae.data import StaySplits
from timetok.setvae.model import PARTS, SeqSetVAE, SeqSetVAEConfig

logger = logging.getLogger(__name__)

# The decoder only serves pretraining: it never trains while finetuning (no gradient
# reaches it), so every policy freezes it and the parameter table shows that.
FREEZE_POLICIES = {"head-only": ["set_encoder", "sequence"], "partial": ["set_encoder"],
                   "full": []}
NEW_PARTS = ("head.", "wide.", "feature.")  # start anew when finetuning from a pretrained model
LOSSES = ("ce", "focal")


class _SetVAEModule(TaskModule):
    throughput_unit: ClassVar[str] = "stays"
    progress_metrics: ClassVar[tuple[str, ...]] = ("loss", "auroc")

    def __init__(self, config: dict, lr: float, weight_decay: float, warmup_steps: int):
        super().__init__()
        self.save_hyperparameters()
        self.model = SeqSetVAE(SeqSetVAEConfig(**config))

    def count_items(self, batch) -> int:
        return len(batch.labels)



class SetVAEPretrainModule(_SetVAEModule):
    """Reconstruction + beta x free-bits KL on the training stays (labels unused).

    Each validation epoch also logs the active units (latent dimensions whose posterior
    mean varies across the validation sets) and the KL of each latent dimension
    (``val_kl_d00``, ...): a collapsed posterior shows as dimensions near 0 nats.
    """

    def __init__(self, config: dict, lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 100):
        super().__init__(config, lr, weight_decay, warmup_steps)
        self._sums: torch.Tensor | None = None  # the validation epoch's posterior_sums

    def step(self, batch, stage: str, batch_idx: int) -> torch.Tensor:
        train = stage == "train"
        beta = self.model.beta_at(self.global_step) if train else self.model.config.beta
        out = self.model.pretrain(batch, beta=beta)
        values = {"loss": out.loss, "recon_value": out.recon_value,
                  "recon_observed": out.recon_observed, "kl": out.kl, "kl_loss": out.kl_loss}
        self.log_values(stage, values, len(batch.labels))
        if train:
            self.log("beta", beta, on_step=True, on_epoch=False)
        else:
            sums = posterior_sums(self.model, batch, out.kl_per_dim)
            self._sums = sums if self._sums is None else self._sums + sums
        return out.loss

    def on_validation_epoch_start(self) -> None:
        self._sums = None

    def on_validation_epoch_end(self) -> None:
        if self._sums is None or self.trainer.sanity_checking:
            return
        active, kl = summarise(self.trainer.strategy.reduce(self._sums, reduce_op="sum"))
        self.log("val_active_units", float(active))
        for d, value in enumerate(kl):
            self.log(f"val_kl_d{d:02d}", value)

    @torch.no_grad()
    def prepare_export(self, datamodule) -> dict:
        """Active units and KL per dimension of the exported weights on the validation
        stays, for the summary (and the CLI's ``kl_per_dim.png``)."""
        from lightning.fabric.utilities.apply_func import move_data_to_device

        self.model.eval()
        sums = None
        for batch in datamodule.val_dataloader():
            batch = move_data_to_device(batch, self.device)
            part = posterior_sums(self.model, batch, self.model.pretrain(batch).kl_per_dim)
            sums = part if sums is None else sums + part
        if sums is None:
            return {}
        active, kl = summarise(sums)
        return {"active_units": active, "latent_dim": self.model.config.latent_dim,
                "free_bits": self.model.config.free_bits, "kl_per_dim": kl}

    def summary_lines(self, summary: dict) -> list[str]:
        if "active_units" not in summary:
            return []
        kl = summary["kl_per_dim"]
        collapsed = sum(value < summary["free_bits"] + 1e-3 for value in kl)
        return [f"validation: {summary['active_units']} of {summary['latent_dim']} latent "
                f"dimensions active, {collapsed} at or below the free-bits floor "
                f"({summary['free_bits']:g} nats); KL per dimension in kl_per_dim.png"]


@torch.no_grad()
def posterior_sums(model: SeqSetVAE, batch, kl_per_dim: torch.Tensor) -> torch.Tensor:
    """``[4, L]`` float64 sums over the batch's real sets: their count, the posterior means,
    their squares, and the KL per dimension (``kl_per_dim [L]`` is the batch's mean)."""
    post = model.encode(batch)
    mu = post.mu[post.valid].double()  # (n, L)
    count = mu.new_full((mu.shape[-1],), len(mu))
    return torch.stack([count, mu.sum(0), (mu**2).sum(0), kl_per_dim.double() * len(mu)])


def summarise(sums: torch.Tensor, threshold: float = 0.01) -> tuple[int, list[float]]:
    """Active units and the mean KL per dimension from :func:`posterior_sums` added up:
    the dimensions whose posterior mean has an (unbiased) variance above ``threshold``
    across the sets, as :func:`timetok.setvae.model.active_units` counts them."""
    n, total, square, kl = sums
    kl_mean = (kl / n.clamp_min(1)).tolist()
    if n[0] < 2:
        return 0, kl_mean
    variance = (square - total**2 / n) / (n - 1)
    return int((variance > threshold).sum()), kl_mean


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float,
               weight: torch.Tensor) -> torch.Tensor:
    """``-w_y (1 - p_y)^gamma log p_y`` averaged with the class weights ``w [K]``:
    ``logits [B, K]``, ``labels [B]`` -> a scalar (cross-entropy at ``gamma = 0``)."""
    log_p = logits.log_softmax(-1).gather(1, labels[:, None])[:, 0]
    w = weight[labels]
    return (w * -(1 - log_p.exp()) ** gamma * log_p).sum() / w.sum()


class SetVAEFinetuneModule(_SetVAEModule):
    """Binary classification of the stays (probability of class 1: in-hospital death);
    the best checkpoint by validation AUROC, AUPRC logged beside it.

    ``freeze_policy``: ``head-only`` (the head and the logvar gate train; the set encoder
    and the sequence model stay as pretraining made them, in eval mode), ``partial`` (the
    sequence model trains too), ``full``, or a comma list of parts of
    :data:`timetok.setvae.model.PARTS`. ``pos_weight`` weighs the positive class in the
    loss; ``loss`` is ``ce`` or ``focal`` (with ``focal_gamma``).
    """

    monitor: ClassVar[str] = "val_auroc"
    monitor_mode: ClassVar[str] = "max"

    def __init__(self, config: dict, lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 100, freeze_policy: str = "head-only",
                 pos_weight: float = 1.0, loss: str = "ce", focal_gamma: float = 2.0):
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if not (math.isfinite(pos_weight) and pos_weight > 0):
            raise ConfigError(f"pos_weight must be a number > 0 or 'auto', got {pos_weight}")
        if not (math.isfinite(focal_gamma) and focal_gamma >= 0):
            raise ConfigError(f"focal_gamma must be a number >= 0, got {focal_gamma}")
        super().__init__(config, lr, weight_decay, warmup_steps)
        if self.model.config.n_classes != 2:
            raise ConfigError("finetuning classifies stays into 2 classes; set n_classes=2")
        self.frozen = [*resolve_freeze(freeze_policy, PARTS, FREEZE_POLICIES), "decoder"]
        freeze(self.model, PARTS, self.frozen)
        self.table = parameter_table(self.model, PARTS)
        require_trainable(self.table, freeze_policy)
        self.load_report: LoadReport | None = None
        from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

        self.metrics = torch.nn.ModuleDict({"auroc": BinaryAUROC(),
                                            "auprc": BinaryAveragePrecision()})

    @property
    def trainable_share(self) -> float:
        """Trainable parameters over all the model's parameters."""
        return self.table[-1]["trainable"] / max(self.table[-1]["total"], 1)

    def train(self, mode: bool = True):
        super().train(mode)
        for part in self.frozen:  # a frozen part keeps its features: no dropout
            module = getattr(self.model, part, None)
            if module is not None:
                module.eval()
        return self

    def step(self, batch, stage: str, batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        logits = self.model(batch).logits
        weight = logits.new_tensor([1.0, hp.pos_weight])
        if hp.loss == "focal":
            loss = focal_loss(logits, batch.labels, hp.focal_gamma, weight)
        else:
            loss = F.cross_entropy(logits, batch.labels, weight=weight)
        values: dict = {"loss": loss}
        if stage == "val":
            probability = logits.detach().softmax(-1)[:, 1]
            for name, metric in self.metrics.items():
                metric.update(probability, batch.labels)
                values[name] = metric  # computed over the epoch, then reset
        self.log_values(stage, values, len(batch.labels))
        return loss


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
    if (directory / SETTINGS).is_file():
        before, now = RecordsSettings.load(directory), data.settings
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
                    freeze_policy: str | None = None, pos_weight: float | str = 1.0,
                    loss: str = "ce", focal_gamma: float = 2.0, feature: str = "mu",
                    summaries: bool = True, scratch: bool = False, allow_partial: bool = False,
                    **settings) -> SetVAEFinetuneModule:
    """A finetuning module for the stays of ``data`` (labels 0 and 1).

    From a pretrained folder: its architecture, a new head, every weight that fits loaded
    and reported (:func:`load_pretrained`); the folder must read the data's variables.
    ``scratch`` keeps the architecture (or, without a folder, builds one from
    ``settings``) and starts every weight anew: the baseline that measures pretraining.
    ``freeze_policy`` defaults to ``head-only``, ``full`` with ``scratch``. ``summaries``:
    the head also reads per-variable summaries of each stay (see
    :func:`timetok.setvae.model.stay_summaries`).
    """
    if pretrained_dir is None and not scratch:
        raise ConfigError("finetuning needs pretrained_dir, or scratch=True to train from new "
                          "weights")
    if scratch and allow_partial:
        raise ConfigError("allow_partial=True concerns loading pretrained weights and "
                          "scratch=True loads none; drop one of them")
    if freeze_policy is None:
        freeze_policy = "full" if scratch else "head-only"
    if scratch and set(resolve_freeze(freeze_policy, PARTS, FREEZE_POLICIES)) - {"decoder"}:
        raise ConfigError(f"freeze_policy {freeze_policy!r} with scratch=True would keep "
                          "parts at their random initialisation; use freeze_policy='full'")
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
    config = dataclasses.replace(base, n_classes=2, feature=feature, summaries=summaries)
    weight = resolve_pos_weight(pos_weight, labels[data.index["train"]])
    module = SetVAEFinetuneModule(dataclasses.asdict(config), lr, weight_decay, warmup_steps,
                                  freeze_policy, weight, loss, focal_gamma)
    if pretrained_dir is not None and not scratch:
        module.load_report = load_pretrained(module.model, pretrained_dir, allow_partial)
    return module
