"""TimeMAE's training modules: masked pretraining, and finetuning or training the head alone.

The recipes (:mod:`timetok.mae.recipe`) build them from a config and hand them to the
shared runner.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from timetok.core.train.freeze import freeze, parameter_table, require_trainable, resolve_freeze
from timetok.core.train.modules import TaskModule
from timetok.mae.model import TimeMAE, TimeMAEConfig

# The model's parts, for freeze_policy and the parameter table. `pretext` holds what only
# pretraining reads: the momentum target, the regressor and the codeword classifier.
PARTS = {
    "slicer": ["slicer"],
    "encoder": ["encoder"],
    "head": ["head"],
    "pretext": ["target", "mask_token", "query_position", "regressor", "regressor_norm",
                "codeword", "quantizer", "mcc_head"],
}
FREEZE_POLICIES = {"none": [], "head-only": ["slicer", "encoder"]}


class _MAEModule(TaskModule):
    progress_metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy")

    def __init__(self, config: dict, lr: float, weight_decay: float, warmup_steps: int):
        super().__init__()
        self.save_hyperparameters()
        self.model = TimeMAE(TimeMAEConfig(**config))


class MAEPretrainModule(_MAEModule):
    """MRR + MCC on the training samples (labels unused); the momentum target follows the
    encoder after every step. Validation masks with a fixed draw per batch, so its loss
    compares across epochs."""

    def __init__(self, config: dict, lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 100):
        super().__init__(config, lr, weight_decay, warmup_steps)
        freeze(self.model, {"target": ["target"]}, ["target"])
        self.usage = None
        if self.model.config.codeword == "vq":
            from timetok.core.nn.quantizer import CodeUsage

            self.usage = CodeUsage(self.model.config.vocab_size)

    def step(self, batch, stage: str, batch_idx: int) -> torch.Tensor:
        x, _, observed = batch
        generator = None
        if stage == "val":
            generator = torch.Generator(device=x.device).manual_seed(batch_idx)
        out = self.model.pretrain(x, observed, generator=generator)
        self.log_values(stage, {"loss": out.loss, "mrr": out.mrr, "mcc": out.mcc,
                                "mcc_accuracy": out.mcc_accuracy}, len(x))
        if self.usage is not None and stage == "train":
            self.usage.update(out.codes)
        return out.loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.model.update_target()

    def on_train_epoch_end(self):
        if self.usage is None:
            return
        counts = self.trainer.strategy.reduce(self.usage.counts.to(self.device), reduce_op="sum")
        for name, value in self.usage.compute(counts).items():
            self.log(f"train_codeword_{name}", value)
        self.usage.reset()


def augment(x: torch.Tensor, observed: torch.Tensor, strength: float) -> torch.Tensor:
    """Each training series scaled per channel by ``1 + strength * N(0, 1)`` and jittered by
    ``strength / 3 * N(0, 1)`` per step (on the standardised scale); padding stays 0."""
    scale = 1 + strength * torch.randn(len(x), 1, x.shape[2], device=x.device)
    noisy = x * scale + strength / 3 * torch.randn_like(x)
    return noisy * observed[..., None]


class MAEFinetuneModule(_MAEModule):
    """Cross-entropy of the classification head; the best checkpoint by validation
    accuracy (or macro-F1), ties broken by the lower validation loss (``val_selection``:
    a small validation set reaches its best accuracy many times). With ``head-only`` the
    slicer and the encoder stay frozen and in eval mode, so the features are those
    pretraining made."""

    monitor: ClassVar[str] = "val_selection"
    monitor_mode: ClassVar[str] = "max"

    def __init__(self, config: dict, lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 100, freeze_policy: str = "none",
                 label_smoothing: float = 0.0, monitor: str = "accuracy",
                 augment: float = 0.0):
        super().__init__(config, lr, weight_decay, warmup_steps)
        self.selected_by = monitor
        frozen = resolve_freeze(freeze_policy, PARTS, FREEZE_POLICIES)
        self.probe = {"slicer", "encoder"} <= set(frozen)
        freeze(self.model, PARTS, [*frozen, "pretext"])
        self.table = parameter_table(self.model, PARTS)
        require_trainable(self.table, freeze_policy)
        from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

        classes = self.model.config.n_classes
        self.metrics = torch.nn.ModuleDict({
            f"{stage}_{name}": metric(num_classes=classes, average=average)
            for stage in ("train", "val")
            for name, metric, average in [("accuracy", MulticlassAccuracy, "micro"),
                                          ("macro_f1", MulticlassF1Score, "macro")]
        })

    def train(self, mode: bool = True):
        super().train(mode)
        if self.probe:
            self.model.slicer.eval()
            self.model.encoder.eval()
        return self

    def on_validation_epoch_start(self):
        classes = self.model.config.n_classes
        self.tally = {"confusion": torch.zeros(classes, classes, device=self.device),
                      "loss": torch.zeros((), device=self.device)}

    def on_validation_epoch_end(self):
        """``val_selection``: the monitored score minus the mean validation loss (capped
        at 5) over 10x the samples, which moves the score by less than one sample ever
        does: the loss only breaks ties."""
        tally = {k: self.trainer.strategy.reduce(v, reduce_op="sum")
                 for k, v in self.tally.items()}
        confusion = tally["confusion"]
        n = confusion.sum().clamp_min(1)
        if self.selected_by == "accuracy":
            score = confusion.diagonal().sum() / n
        else:
            true, predicted = confusion.sum(1), confusion.sum(0)
            f1 = 2 * confusion.diagonal() / (true + predicted).clamp_min(1)
            score = f1[true > 0].mean()
        loss = (tally["loss"] / n).clamp(max=5.0)
        self.log("val_selection", score - loss / (10 * n))

    def step(self, batch, stage: str, batch_idx: int) -> torch.Tensor:
        x, y, observed = batch
        if stage == "train" and self.hparams.augment:
            x = augment(x, observed, self.hparams.augment)
        out = self.model(x, y, observed, label_smoothing=self.hparams.label_smoothing)
        if stage == "val":
            self.tally["loss"] += out.loss.detach() * len(y)
            self.tally["confusion"].index_put_(
                (y, out.logits.argmax(-1)), torch.ones_like(y, dtype=torch.float),
                accumulate=True)
        values = {"loss": out.loss}
        for name in ("accuracy", "macro_f1"):
            metric = self.metrics[f"{stage}_{name}"]
            metric(out.logits.detach(), y)  # updates the epoch's state, keeps the batch's value
            values[name] = metric
        self.log_values(stage, values, len(x))
        return out.loss
