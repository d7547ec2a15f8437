"""Training the time-series tokenizer (system 1) with Lightning."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from timetok.core.nn.quantizer import CodeUsage
from timetok.core.train.modules import TaskModule
from timetok.tokenizer.config import TokenizerTrainConfig
from timetok.tokenizer.model import TokenizerConfig, TokenizerModel

__all__ = ["TokenizerModule", "TokenizerTrainConfig", "train"]


class TokenizerModule(TaskModule):
    """What to compute: reconstruction + VQ loss, and codebook usage per epoch."""

    throughput_unit: ClassVar[str] = "time steps"

    def __init__(
        self,
        config: dict,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 100,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = TokenizerModel(TokenizerConfig(**config))
        self.usage = {
            stage: CodeUsage(self.model.codebook_size, self.model.quantizer.levels)
            for stage in ("train", "val")
        }

    def count_items(self, batch: Any) -> int:
        return batch[0].numel()  # steps of every channel

    @classmethod
    def from_config(cls, config: TokenizerConfig, **kwargs) -> TokenizerModule:
        return cls(dataclasses.asdict(config), **kwargs)

    def step(self, batch, stage: str, batch_idx: int) -> torch.Tensor:
        x, _ = batch
        out = self.model(x)
        self.log_values(stage, {"loss": out.loss, "recon": out.recon_loss,
                                "vq_loss": out.vq_loss}, len(x))
        self.usage[stage].update(out.codes)
        return out.loss

    def _log_usage(self, stage: str) -> None:
        usage = self.usage[stage]
        counts = usage.counts.to(self.device)
        counts = self.trainer.strategy.reduce(counts, reduce_op="sum").cpu()
        for name, value in usage.compute(counts).items():
            self.log(f"{stage}_{name}", value, prog_bar=name == "usage" and stage == "val")
        usage.reset()

    def on_train_epoch_end(self) -> None:
        self._log_usage("train")

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._log_usage("val")
        self.usage["val"].reset()


def train(config: TokenizerTrainConfig) -> dict:
    """Train a tokenizer on ``config.dataset``, then export the best weights and the data's
    scaler into ``config.run_dir``; returns the run's summary (steps, best validation loss,
    throughput, what was exported)."""
    from timetok.core.train.runner import begin, train_and_export
    from timetok.forecast.data import WindowDataModule

    config.check_apart(config.run_dir)
    options = config.run_options()
    begin(options)
    datamodule = WindowDataModule(
        config.dataset, config.context_points, 0, config.batch_size, config.stride,
        data_dir=config.data_dir, data_path=config.data_path,
        num_workers=config.num_workers, eval_stride=config.val_stride,
    )
    data = datamodule.load()
    module = TokenizerModule.from_config(config.model_config(data.n_channels), lr=config.lr,
                                         weight_decay=config.weight_decay)
    return train_and_export(module, datamodule, config.run_dir, options, config.resume,
                            config.settings())
