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
MONITORS = {"accuracy": "val_accuracy", "macro_f1": "val_macro_f1"}


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


class MAEFinetuneModule(_MAEModule):
    """Cross-entropy of the classification head; the best checkpoint by validation
    accuracy (or macro-F1). With ``head-only`` the slicer and the encoder stay frozen and
    in eval mode, so the features are those pretraining made."""

    def __init__(self, config: dict, lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 100, freeze_policy: str = "none",
                 label_smoothing: float = 0.0, monitor: str = "accuracy"):
        super().__init__(config, lr, weight_decay, warmup_steps)
        self.monitor = MONITORS[monitor]
        self.monitor_mode = "max"
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

    def step(self, batch, stage: str, batch_idx: int) -> torch.Tensor:
        x, y, observed = batch
        out = self.model(x, y, observed, label_smoothing=self.hparams.label_smoothing)
        values = {"loss": out.loss}
        for name in ("accuracy", "macro_f1"):
            metric = self.metrics[f"{stage}_{name}"]
            metric(out.logits.detach(), y)  # updates the epoch's state, keeps the batch's value
            values[name] = metric
        self.log_values(stage, values, len(x))
        return out.loss
