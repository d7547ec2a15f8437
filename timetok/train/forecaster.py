"""Training the token language model (system 2): next-code pretraining, then finetuning."""

from __future__ import annotations

import dataclasses

import lightning as L
import torch

from timetok.errors import ConfigError
from timetok.models.forecaster import ForecasterConfig, TokenForecaster
from timetok.train.freeze import freeze, parameter_table, require_trainable
from timetok.train.optim import adamw_cosine

FREEZE_POLICIES = {
    "none": [],
    "tokenizer": ["tokenizer"],
    "backbone": ["tokenizer", "lm.transformer"],
    "all-but-head": ["tokenizer", "lm.transformer", "query"],
}
PARTS = {
    "tokenizer": ["tokenizer."],
    "embeddings": ["lm.transformer.wte.", "lm.transformer.wpe."],
    "backbone": ["lm.transformer."],
    "code head": ["lm.lm_head.", "query"],
    "linear head": ["linear_head."],
}


class _ForecasterModule(L.LightningModule):
    def __init__(self, config: dict, lr: float, weight_decay: float, warmup_steps: int):
        super().__init__()
        self.save_hyperparameters()
        self.model = TokenForecaster(ForecasterConfig(**config))

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        return adamw_cosine(params, hp.lr, hp.weight_decay, hp.warmup_steps, self.trainer)

    def _common_step(self, batch, stage: str) -> torch.Tensor:
        """One batch's loss, logged under ``stage`` (train or val)."""
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        return self._common_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._common_step(batch, "val")


class PretrainModule(_ForecasterModule):
    """Next-code cross-entropy; the tokenizer stays frozen, so its targets never drift.

    Batches are windows of the context and ``config.pretrain_future`` further steps,
    encoded on the context's scale: the model learns every position that sampling reaches.
    """

    def __init__(self, config: dict, lr: float = 1e-3, weight_decay: float = 1e-4,
                 warmup_steps: int = 200):
        super().__init__(config, lr, weight_decay, warmup_steps)
        freeze(self.model, FREEZE_POLICIES["tokenizer"])

    def _common_step(self, batch, stage: str) -> torch.Tensor:
        x, future = batch
        codes, _ = self.model.tokenize(x, future)
        loss, logits = self.model.lm_loss(codes)
        targets = codes[:, 1:]
        top5 = logits[:, :-1].topk(5, dim=-1).indices
        log = dict(on_step=stage == "train", on_epoch=True, sync_dist=stage != "train",
                   batch_size=len(codes))
        self.log(f"{stage}_loss", loss, prog_bar=True, **log)
        self.log(f"{stage}_perplexity", loss.detach().exp(), **log)
        self.log(f"{stage}_top1", (top5[..., 0] == targets).float().mean(), **log)
        self.log(f"{stage}_top5", (top5 == targets[..., None]).any(-1).float().mean(), **log)
        return loss


class FinetuneModule(_ForecasterModule):
    """MSE of each forecast head on the standardised scale; ``val_loss`` is their mean."""

    def __init__(self, config: dict, lr: float = 1e-4, weight_decay: float = 1e-4,
                 warmup_steps: int = 100, freeze_policy: str = "tokenizer"):
        super().__init__(config, lr, weight_decay, warmup_steps)
        if freeze_policy not in FREEZE_POLICIES:
            raise ConfigError(f"--freeze must be one of {', '.join(FREEZE_POLICIES)}, "
                              f"got {freeze_policy!r}")
        freeze(self.model, FREEZE_POLICIES[freeze_policy])
        self.table = parameter_table(self.model, PARTS)
        require_trainable(self.table, freeze_policy)

    def _common_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        out = self.model(x, y)
        log = dict(on_step=stage == "train", on_epoch=True, sync_dist=stage != "train",
                   batch_size=len(x))
        for head, loss in out.losses.items():
            self.log(f"{stage}_mse_{head}", loss, **log)
        self.log(f"{stage}_loss", out.loss / len(out.losses), prog_bar=True, **log)
        return out.loss

    def prepare_export(self, datamodule) -> dict:
        """With the exported weights in place: fit the blend of the decoder head and the
        skip on the validation windows; returns their validation MSEs for the summary."""
        if not self.model.has_blend:
            return {}
        shared = self.model.config.blend_channels == 1
        fit = self.model.fit_blend(datamodule.windows("val", channel_independent=shared))
        return {"blend_weight_mean": fit["weight"],
                **{f"val_mse_{name}": fit[name] for name in ("skip", "decoder", "blend")}}


def pretrain_module(tokenizer_dir, lr: float, weight_decay: float, warmup_steps: int,
                    **settings) -> PretrainModule:
    """A pretraining module around the frozen tokenizer saved in ``tokenizer_dir``."""
    from timetok.models.tokenizer import TimeSeriesTokenizer

    tokenizer = TimeSeriesTokenizer.from_pretrained(tokenizer_dir)
    config = ForecasterConfig(tokenizer=dataclasses.asdict(tokenizer.config), **settings)
    module = PretrainModule(dataclasses.asdict(config), lr, weight_decay, warmup_steps)
    module.model.tokenizer.load_state_dict(tokenizer.state_dict())
    if config.code_embedding == "codebook":
        module.model.init_code_embedding()
    return module


def default_lr(heads: list[str]) -> float:
    """Peak finetuning learning rate: 1e-3 for the decoder head alone, whose query token and
    soft lookup learn from scratch (ETTm1 H=96, 600 steps at a constant rate: validation MSE
    0.45 at 1e-3, 0.57 at 3e-4, 0.80 at 1e-4 and still falling); 1e-4 otherwise."""
    return 1e-3 if list(heads) == ["decoder"] else 1e-4


def finetune_module(pretrained_dir, horizon: int, heads: list[str], temperature: float,
                    lr: float, weight_decay: float, warmup_steps: int,
                    freeze_policy: str, linear_skip: bool = False, skip_scale: str = "auto",
                    train_windows=None, val_windows=None,
                    blend_channels: int = 1) -> FinetuneModule:
    """A finetuning module starting from a pretrained language model folder, or from a
    finetuned model's (of any horizon: ``timetok finetune --chain``).

    Every key but the linear head's, the skip's and the blend's must load: those belong to
    one horizon and start anew. With ``linear_skip`` and ``train_windows`` the skip starts
    at its least-squares fit, on the scale with the lower MSE over ``val_windows`` when
    ``skip_scale`` is auto. ``blend_channels``: 1 for blend weights shared by the channels,
    else the data's channel count for weights per channel.
    """
    pretrained = TokenForecaster.from_pretrained(pretrained_dir)
    settings = dataclasses.asdict(pretrained.config) | dict(
        horizon=horizon, heads=heads, temperature=temperature, linear_skip=linear_skip,
        skip_scale=skip_scale, blend_channels=blend_channels,
    )
    module = FinetuneModule(dataclasses.asdict(ForecasterConfig(**settings)), lr, weight_decay,
                            warmup_steps, freeze_policy)
    new = ("linear_head", "skip_", "blend_")
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith(new)}
    module.model.load_weights(state, str(pretrained_dir), new=new)
    if module.model.has_skip and train_windows is not None:
        module.model.init_linear_skip(train_windows, val_windows)
    return module
