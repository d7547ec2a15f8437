"""The Lightning modules of SeqSetVAE (system 5): set-VAE pretraining, then mortality.

Pretraining reconstructs each set from its latent and its context (labels unused); beta
warms up over the training steps, while validation always weighs the KL by the final
beta, so the validation loss that picks the best checkpoint compares across epochs.
Finetuning trains a binary head (cross-entropy with an optional positive-class weight,
or focal loss) and picks the checkpoint of the best validation AUROC. The recipes that
build and train them are in :mod:`timetok.setvae.recipe`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from timetok.core.errors import ConfigError
from timetok.core.model_folder import LoadReport
from timetok.core.train.freeze import freeze as freeze_parts
from timetok.core.train.freeze import parameter_table, require_trainable, resolve_freeze
from timetok.core.train.modules import TaskModule
from timetok.core.utils import atomic_write_text
from timetok.setvae.model import PARTS, SeqSetVAE, SeqSetVAEConfig

# The decoder only serves pretraining: it never trains while finetuning (no gradient
# reaches it), so every policy freezes it and the parameter table shows that.
FREEZE_POLICIES = {"none": [], "head-only": ["set_encoder", "sequence"],
                   "partial": ["set_encoder"]}
FREEZE_ALIASES = {"full": "none"}  # the name of "none" before the shared vocabulary
LOSSES = ("ce", "focal")
WEIGHTS_REPORT = "warm_start.txt"  # every key of the warm start, beside the exported model


def frozen_parts(policy: str) -> list[str]:
    """A freeze policy (``none``, ``head-only``, ``partial``) or a comma list of parts of
    :data:`timetok.setvae.model.PARTS` -> the parts that stay frozen, decoder aside."""
    choice = FREEZE_ALIASES.get(str(policy).strip(), str(policy))
    try:
        return resolve_freeze(choice, PARTS, FREEZE_POLICIES)
    except ConfigError:
        raise ConfigError(f"freeze takes a policy ({', '.join(FREEZE_POLICIES)}) or a comma "
                          f"list of parts ({', '.join(PARTS)}), got {policy!r}") from None


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
        return pretrain_summary_lines(summary)


def pretrain_summary_lines(summary: dict) -> list[str]:
    """What a finished pretraining says beyond the standard line: the active units."""
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

    ``freeze``: ``head-only`` (the head and the logvar gate train; the set encoder and the
    sequence model stay as pretraining made them, in eval mode), ``partial`` (the sequence
    model trains too), ``none`` (everything but the decoder trains), or a comma list of
    parts of :data:`timetok.setvae.model.PARTS`. ``pos_weight`` weighs the positive class
    in the loss; ``loss`` is ``ce`` or ``focal`` (with ``focal_gamma``).
    """

    monitor: ClassVar[str] = "val_auroc"
    monitor_mode: ClassVar[str] = "max"

    def __init__(self, config: dict, lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 100, freeze: str = "head-only",
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
        self.frozen = [*frozen_parts(freeze), "decoder"]
        freeze_parts(self.model, PARTS, self.frozen)
        self.table = parameter_table(self.model, PARTS)
        require_trainable(self.table, freeze)
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
        logits = self.model(batch).logits  # the loss below is weighted or focal
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

    def save_artifacts(self, directory: Path) -> dict:
        """Every key of the warm start (matched, missing ...) in ``warm_start.txt``."""
        if self.load_report is None:
            return {}
        atomic_write_text(Path(directory) / WEIGHTS_REPORT,
                          "\n".join(self.load_report.lines()) + "\n")
        return {"warm_start": self.load_report.summary()}
