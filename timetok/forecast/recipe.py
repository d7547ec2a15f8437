"""Training the token language model (system 2): next-code pretraining, then finetuning."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from timetok.core.errors import ConfigError
from timetok.core.train.checkpoints import checkpoint_state
from timetok.core.train.freeze import freeze, parameter_table, require_trainable, resolve_freeze
from timetok.core.train.modules import TaskModule
from timetok.core.utils import atomic_write_text
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
FREEZE_POLICIES = {
    "none": [],
    "tokenizer": ["tokenizer"],
    "backbone": ["tokenizer", "backbone"],
    "all-but-head": ["tokenizer", "backbone", "query"],
}
# Parts only the decoder head reads: frozen (and counted so) when it is not trained.
DECODER_PARTS = ["code-head", "query"]


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
        """``calibration.json``, from :meth:`prepare_export`."""
        if self.calibration is not None:
            self.calibration.save(directory)
        return {}

    def summary_lines(self, summary: dict) -> list[str]:
        if "val_mse_blend" not in summary:
            return []
        return [f"validation MSE: skip {summary['val_mse_skip']:.4f}, decoder "
                f"{summary['val_mse_decoder']:.4f}, blend {summary['val_mse_blend']:.4f} "
                f"(decoder's mean share {summary['blend_weight_mean']:.2f})"]


def pretrain_module(tokenizer_dir, lr: float, weight_decay: float, warmup_steps: int,
                    **settings) -> PretrainModule:
    """A pretraining module around the frozen tokenizer saved in ``tokenizer_dir``."""
    from timetok.tokenizer.model import TokenizerModel

    tokenizer = TokenizerModel.from_pretrained(tokenizer_dir)
    config = ForecasterConfig(tokenizer=tokenizer.config, **settings)
    module = PretrainModule(dataclasses.asdict(config), lr, weight_decay, warmup_steps)
    module.model.tokenizer.load_state_dict(tokenizer.state_dict())
    if config.code_embedding == "codebook":
        module.model.init_code_embedding()
    return module


def default_lr(heads: list[str]) -> float:
    """Peak finetuning learning rate: 1e-3 for the decoder head alone, whose query token and
    soft lookup learn from scratch (at 1e-4 it was still far from converged after the
    runs a benchmark affords); 1e-4 otherwise."""
    return 1e-3 if list(heads) == ["decoder"] else 1e-4


def finetune_module(pretrained_dir, horizon: int, heads: list[str], temperature: float,
                    lr: float, weight_decay: float, warmup_steps: int,
                    freeze_policy: str, linear_skip: bool = False, skip_scale: str = "auto",
                    train_windows=None, val_windows=None,
                    blend_channels: int = 1, skip_recipe: str | None = None) -> FinetuneModule:
    """A finetuning module starting from a pretrained language model folder, or from a
    finetuned model's (of any horizon: ``timetok lm finetune --chain``).

    Every key but the linear head's, the skip's and the blend's must load: those belong to
    one horizon and start anew. With ``linear_skip`` and ``train_windows`` the skip starts
    at its least-squares fit, on the scale with the lower MSE over ``val_windows`` when
    ``skip_scale`` is auto. With ``skip_recipe`` (a dataset name, see
    :func:`timetok.forecast.baselines.recipe`) a DLinear trained by that recipe competes with the
    least-squares fit on ``val_windows`` (:func:`timetok.forecast.baselines.trained_linear_fit`;
    its batches count windows, so pass windows holding every channel). ``blend_channels``: 1
    for blend weights shared by the channels, else the data's channel count for weights per
    channel.
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
        rivals = []
        if skip_recipe is not None:
            if val_windows is None:
                raise ConfigError("a trained skip is chosen on validation windows; pass them")
            from timetok.forecast.baselines import trained_linear_fit

            rivals.append(trained_linear_fit(train_windows, val_windows, skip_recipe, horizon))
        module.model.init_linear_skip(train_windows, val_windows, rivals)
    return module

