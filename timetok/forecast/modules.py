"""The forecaster's Lightning modules: next-code pretraining, then finetuning, and the
builders that start them from a tokenizer or a pretrained language model folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from timetok.core.model_folder import warm_start
from timetok.core.train.checkpoints import checkpoint_state
from timetok.core.train.freeze import freeze, parameter_table, require_trainable, resolve_freeze
from timetok.core.train.modules import TaskModule
from timetok.core.utils import atomic_write_text
from timetok.forecast.config import FinetuneConfig, PretrainConfig
from timetok.forecast.model import ForecasterConfig, TokenForecaster

# The forecaster's parts, for --freeze and the parameter table (embeddings before the
# backbone that holds them, so the table shows them apart).
PARTS = {
    "tokenizer": ["tokenizer"],
    "embeddings": ["lm.transformer.wte", "lm.transformer.wpe"],
    "backbone": ["lm.transformer"],
    "code-head": ["lm.lm_head"],
    "query": ["query"],
    "linear-head": ["linear_head"],
}
# none: everything trains; head-only: only the forecast heads (old name: all-but-head,
# mapped by FinetuneConfig); tokenizer and backbone: those parts stay fixed.
FREEZE_POLICIES = {
    "none": [],
    "head-only": ["tokenizer", "backbone", "query"],
    "tokenizer": ["tokenizer"],
    "backbone": ["tokenizer", "backbone"],
}
# Parts only the decoder head reads: frozen (and counted so) when it is not trained.
DECODER_PARTS = ["code-head", "query"]
# Parts of one horizon: a finetuning run starts them anew, whatever it starts from.
NEW_PARTS = ("linear_head", "skip_", "blend_")


class _ForecasterModule(TaskModule):
    throughput_unit: ClassVar[str] = "time steps"

    def __init__(self, config: dict, lr: float, weight_decay: float, warmup_steps: int):
        super().__init__()
        self.save_hyperparameters()
        self.model = TokenForecaster(ForecasterConfig(**config))

    def count_items(self, batch: Any) -> int:
        return batch[0].numel()  # context steps of every channel


class PretrainModule(_ForecasterModule):
    """Next-code cross-entropy; the tokenizer stays frozen, so its targets never drift.

    Batches are windows of the context and ``config.pretrain_future`` further steps,
    encoded on the context's scale: the model learns every position that sampling reaches.
    """

    def __init__(self, config: dict, lr: float = 1e-3, weight_decay: float = 1e-4,
                 warmup_steps: int = 200):
        super().__init__(config, lr, weight_decay, warmup_steps)
        freeze(self.model, PARTS, FREEZE_POLICIES["tokenizer"])

    def step(self, batch, stage: str, batch_idx: int) -> torch.Tensor:
        x, future = batch
        codes, _ = self.model.tokenize(x, future)
        out = self.model.lm.loss(codes)
        top5 = out.logits.topk(5, dim=-1).indices
        self.log_values(stage, {
            "loss": out.loss, "perplexity": out.loss.detach().exp(),
            "top1": (top5[..., 0] == out.targets).float().mean(),
            "top5": (top5 == out.targets[..., None]).any(-1).float().mean(),
        }, len(codes))
        return out.loss


class FinetuneModule(_ForecasterModule):
    """MSE of each forecast head on the standardised scale; ``val_loss`` is their mean.

    A run validates before its first step and exports its starting weights when no later
    validation beats them: a linear head starts at its fitted skip, which training may
    only make worse.
    """

    def __init__(self, config: dict, lr: float = 1e-4, weight_decay: float = 1e-4,
                 warmup_steps: int = 100, freeze_policy: str = "tokenizer"):
        super().__init__(config, lr, weight_decay, warmup_steps)
        frozen = resolve_freeze(freeze_policy, PARTS, FREEZE_POLICIES)
        if "decoder" not in self.model.config.heads:
            frozen = [*frozen, *DECODER_PARTS]
        freeze(self.model, PARTS, frozen)
        self.table = parameter_table(self.model, PARTS)
        require_trainable(self.table, freeze_policy)
        self.calibration = None  # fitted by prepare_export

    def step(self, batch, stage: str, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self.model(x, y)
        values = {f"mse_{head}": loss for head, loss in out.losses.items()}
        self.log_values(stage, {**values, "loss": out.loss / len(out.losses)}, len(x))
        return out.loss

    def on_run_start(self, trainer, datamodule, run_dir: Path, resume: bool) -> dict:
        """Validate the starting weights and keep them (``checkpoints/start.ckpt``); a
        resumed run reads the start's validation loss back."""
        start_file = run_dir / "checkpoints" / "start.json"
        if resume and start_file.is_file():
            return {"start_val_loss": json.loads(start_file.read_text())["val_loss"]}
        result = trainer.validate(self, datamodule=datamodule, verbose=False)
        start_loss = float(result[0]["val_loss"])
        trainer.save_checkpoint(run_dir / "checkpoints" / "start.ckpt", weights_only=True)
        if trainer.is_global_zero:
            atomic_write_text(start_file, json.dumps({"val_loss": start_loss}))
        return {"start_val_loss": start_loss}

    def select_weights(self, run_dir: Path, summary: dict) -> str:
        """The best checkpoint's weights, or the starting ones when no validation during
        training beat them."""
        start, best = summary.get("start_val_loss"), summary.get("best_val_loss")
        if start is None or (best is not None and best < start):
            return super().select_weights(run_dir, summary)
        path = run_dir / "checkpoints" / "start.ckpt"
        self.load_state_dict(checkpoint_state(path)["state_dict"])
        return "start"

    def prepare_export(self, datamodule) -> dict:
        """With the exported weights in place: fit the blend of the decoder head and the
        skip on the validation windows, then calibrate the default point forecast's
        quantiles on them (:mod:`timetok.forecast.calibration`); returns the blend's validation
        MSEs for the summary."""
        from timetok.forecast.calibration import calibrate_model

        summary = {}
        if self.model.has_blend:
            shared = self.model.config.blend_channels == 1
            fit = self.model.fit_blend(datamodule.windows("val", channel_independent=shared))
            summary = {"blend_weight_mean": fit["weight"],
                       **{f"val_mse_{n}": fit[n] for n in ("skip", "decoder", "blend")}}
        # Channels read jointly where the data allows: residual quantiles per channel.
        self.calibration = calibrate_model(
            self.model, datamodule.windows("val", channel_independent=False),
            dataset=datamodule.hparams.dataset,
        )
        return summary | {"calibration_windows": self.calibration.windows}

    def save_artifacts(self, directory: Path) -> dict:
        """The calibration from :meth:`prepare_export` (``data.json``'s section)."""
        if self.calibration is not None:
            self.calibration.save(directory)
        return {}

    def summary_lines(self, summary: dict) -> list[str]:
        if "val_mse_blend" not in summary:
            return []
        return [f"validation MSE: skip {summary['val_mse_skip']:.4f}, decoder "
                f"{summary['val_mse_decoder']:.4f}, blend {summary['val_mse_blend']:.4f} "
                f"(decoder's mean share {summary['blend_weight_mean']:.2f})"]


def pretrain_module(config: PretrainConfig) -> PretrainModule:
    """A pretraining module around the frozen tokenizer saved in ``config.tokenizer``."""
    from timetok.tokenizer.model import TokenizerModel

    tokenizer = TokenizerModel.from_pretrained(config.tokenizer)
    model_config = ForecasterConfig(
        tokenizer=tokenizer.config, context_points=config.context_points,
        max_horizon=config.max_horizon, d_model=config.d_model, n_layers=config.n_layers,
        n_heads=config.n_heads, d_ff=config.d_ff, dropout=config.dropout,
        attn_dropout=config.attn_dropout, code_embedding=config.code_embedding,
    )
    module = PretrainModule(dataclasses.asdict(model_config), config.lr, config.weight_decay,
                            config.warmup_steps)
    module.model.tokenizer.load_state_dict(tokenizer.state_dict())
    if model_config.code_embedding == "codebook":
        module.model.init_code_embedding()
    return module


def finetune_module(config: FinetuneConfig, start: str | Path, horizon: int,
                    datamodule=None) -> FinetuneModule:
    """A module finetuning ``config``'s heads for ``horizon`` steps, starting from the
    language model folder ``start`` (pretrained, or finetuned for any horizon: a chain).

    Every tensor but the linear head's, the skip's and the blend's starts from ``start``
    (:func:`timetok.core.model_folder.warm_start`): those belong to one horizon and start
    anew. With ``config.linear_skip`` and a loaded ``datamodule`` (a
    :class:`timetok.forecast.data.WindowDataModule`) the skip starts at its least-squares
    fit on the training windows, the scale and the ridge penalty chosen on the validation
    windows; with ``config.trained_skip`` a DLinear trained by the dataset's recipe
    (:func:`timetok.forecast.baselines.trained_linear_fit`) competes there. The blend's
    weights are per channel (``config.blend == "channel"``) or shared.
    """
    pretrained = TokenForecaster.from_pretrained(start).config
    blend_channels = 1
    if config.blend == "channel" and datamodule is not None:
        blend_channels = datamodule.channels
    settings = dataclasses.asdict(pretrained) | dict(
        horizon=horizon, heads=config.head_list(), temperature=config.temperature,
        linear_skip=config.linear_skip, skip_scale=config.skip_scale,
        blend_channels=blend_channels, skip_fit="ridge",
    )
    module = FinetuneModule(dataclasses.asdict(ForecasterConfig(**settings)),
                            config.learning_rate(), config.weight_decay, config.warmup_steps,
                            config.freeze_policy)
    warm_start(module.model, start, new=NEW_PARTS)
    if module.model.has_skip and datamodule is not None:
        # Windows of all channels: the trained skip's recipe counts batches in them.
        train, val = (datamodule.windows(split, channel_independent=False)
                      for split in ("train", "val"))
        rivals = []
        if config.trained_skip:
            from timetok.forecast.baselines import trained_linear_fit

            rivals.append(trained_linear_fit(train, val, config.dataset, horizon,
                                             seed=config.seed))
        module.model.init_linear_skip(train, val, rivals)
    return module
