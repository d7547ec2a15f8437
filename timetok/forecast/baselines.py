"""Forecasting baselines trained as their papers train them: DLinear, RLinear, PatchTST.

- ``dlinear-trained``: DLinear (Zeng et al., AAAI 2023), the context split by a moving
  average (kernel 25, ends padded by repeating the first and last rows) into trend and
  remainder, one linear layer L -> H for each, shared by the channels, summed;
- ``rlinear-trained``: RLinear (Li et al., 2023), one linear layer L -> H shared by the
  channels inside RevIN with affine weights, the deviation floored at
  ``timetok.core.nn.lstsq.MIN_STD`` so a flat context is not blown up, dropout 0.1 on its input;
- ``patchtst``: PatchTST (Nie et al., ICLR 2023) from ``transformers``: patches of 16 at
  stride 8, channel-independent, the library's ``std`` scaling (RevIN without affine
  weights), a flatten head; 3 layers of d_model 128, 16 heads, d_ff 256, dropout 0.2, or
  on ETTh1/ETTh2 the paper's reduced size (d_model 16, 4 heads, d_ff 128, dropout 0.3).
  The library does not pad the end, so L=512 gives 63 patches, not the paper's 64.

One loop trains them all (:func:`fit`): Adam on the MSE of the standardised windows, the
learning rate set each epoch by the recipe's schedule, validation MSE after each epoch,
early stopping, the best validation weights kept, optionally within a time budget.
:func:`recipe` holds the authors' settings per ETT set (their scripts, seq_len 336):

- DLinear, LTSF-Linear ``scripts/EXP-LongForecasting/Linear/*.sh`` with the repository's
  defaults (10 epochs, patience 3, type1: lr halved each epoch): ETTh1 lr 0.005 batch 32,
  ETTh2 0.05 / 32, ETTm1 1e-4 / 8, ETTm2 1e-3 / 32 (0.01 at H >= 336);
- RLinear, RTSF ``script.md`` and ``run.py`` defaults: lr 0.005, batch 128 (ETTh2 256),
  15 epochs, patience 10, type1;
- PatchTST, ``PatchTST_supervised/scripts/PatchTST/*.sh``: lr 1e-4, batch 128, 100
  epochs; patience 20 and the type3 schedule (lr held two epochs, then x0.9 per epoch).
  Its ETTm scripts' one-cycle schedule spans 100 epochs, which no time budget here reaches.

Other datasets get ETTh1's recipe. Each model is scored on the test windows that
``evaluate_forecaster`` scores (``SplitData.windows``), on the standardised scale.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from timetok.core.data.series import SplitData
from timetok.core.errors import ConfigError, TrainingError
from timetok.core.nn.lstsq import MIN_STD, LinearFit
from timetok.core.nn.revin import RevIN
from timetok.forecast.evaluate import ErrorSums

BASELINES = ("dlinear-trained", "rlinear-trained", "patchtst")
KERNEL = 25


def decompose(x: Tensor, kernel: int = KERNEL) -> tuple[Tensor, Tensor]:
    """Trend (moving average over ``kernel`` steps, odd, the ends padded by repeating the
    first and last rows) and remainder of ``x: [B, L, C]``; they sum to ``x``."""
    pad = (kernel - 1) // 2
    padded = torch.cat([x[:, :1].expand(-1, pad, -1), x, x[:, -1:].expand(-1, pad, -1)], dim=1)
    trend = F.avg_pool1d(padded.transpose(1, 2), kernel, stride=1).transpose(1, 2)
    return trend, x - trend


class DLinear(nn.Module):
    """DLinear, channels sharing the layers: ``[B, L, C]`` -> ``[B, H, C]``."""

    def __init__(self, context: int, horizon: int, kernel: int = KERNEL):
        super().__init__()
        self.kernel = kernel
        self.trend = nn.Linear(context, horizon)
        self.remainder = nn.Linear(context, horizon)

    def forward(self, x: Tensor) -> Tensor:
        trend, remainder = (part.transpose(1, 2) for part in decompose(x, self.kernel))
        return (self.trend(trend) + self.remainder(remainder)).transpose(1, 2)

    @torch.no_grad()
    def linear_map(self) -> Tensor:
        """The model as one map ``[L + 1, H]`` (bias last) for
        :func:`timetok.core.nn.lstsq.apply_linear`: the moving average is linear, ``A``, so the
        two layers fold into ``W_trend A + W_remainder (I - A)``."""
        context = self.trend.in_features
        # Channel j of the identity is the unit step at j: its trend is column j of A.
        average = decompose(torch.eye(context)[None], self.kernel)[0][0]
        weight = (self.trend.weight @ average
                  + self.remainder.weight @ (torch.eye(context) - average))
        return torch.cat([weight.T, (self.trend.bias + self.remainder.bias)[None]])


class RLinear(nn.Module):
    """RLinear, channels sharing the layer: ``[B, L, C]`` -> ``[B, H, C]``."""

    def __init__(self, context: int, horizon: int, n_channels: int, dropout: float = 0.1,
                 min_std: float = MIN_STD):
        super().__init__()
        self.revin = RevIN(n_channels, affine=True, min_std=min_std)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(context, horizon)

    def forward(self, x: Tensor) -> Tensor:
        normed, stats = self.revin.normalize(x)
        out = self.linear(self.dropout(normed).transpose(1, 2)).transpose(1, 2)
        return self.revin.denormalize(out, stats)


# PatchTST's sizes: the paper's default, and its reduced one for the small ETTh sets.
PATCHTST_SIZE = dict(d_model=128, n_heads=16, d_ff=256, dropout=0.2)
PATCHTST_SMALL = dict(d_model=16, n_heads=4, d_ff=128, dropout=0.3)


class PatchTST(nn.Module):
    """``transformers``' PatchTST for prediction: ``[B, L, C]`` -> ``[B, H, C]``."""

    def __init__(self, context: int, horizon: int, n_channels: int, d_model: int = 128,
                 n_layers: int = 3, n_heads: int = 16, d_ff: int = 256, dropout: float = 0.2,
                 patch: int = 16, stride: int = 8):
        super().__init__()
        from transformers import PatchTSTConfig, PatchTSTForPrediction

        config = PatchTSTConfig(
            num_input_channels=n_channels, context_length=context, prediction_length=horizon,
            patch_length=patch, patch_stride=stride, d_model=d_model,
            num_hidden_layers=n_layers, num_attention_heads=n_heads, ffn_dim=d_ff,
            norm_type="batchnorm", pre_norm=False, positional_encoding_type="random",
            positional_dropout=dropout, path_dropout=dropout, ff_dropout=dropout,
            attention_dropout=0.0, head_dropout=0.0, pooling_type=None, scaling="std",
            loss="mse", do_mask_input=False, channel_attention=False,
        )
        self.model = PatchTSTForPrediction(config)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(past_values=x).prediction_outputs


@dataclass(frozen=True)
class Recipe:
    """How a baseline is trained: Adam at ``lr``, ``batch_size`` windows a step, at most
    ``max_epochs``, stopping after ``patience`` epochs without a better validation MSE;
    ``schedule`` ``type1`` halves the rate each epoch, ``type3`` holds it for two epochs
    and then multiplies it by 0.9 each epoch."""

    lr: float
    batch_size: int
    max_epochs: int
    patience: int
    schedule: str = "type1"

    def learning_rate(self, epoch: int) -> float:
        """The rate of epoch ``epoch`` (counted from 1)."""
        if self.schedule == "type1":
            return self.lr * 0.5 ** (epoch - 1)
        return self.lr if epoch < 3 else self.lr * 0.9 ** (epoch - 3)


def recipe(name: str, dataset: str, horizon: int) -> Recipe:
    """The authors' recipe for baseline ``name`` on ``dataset`` (see the module notes)."""
    if name == "dlinear-trained":
        lr, batch = {"etth2": (0.05, 32), "ettm1": (1e-4, 8),
                     "ettm2": (1e-3 if horizon < 336 else 0.01, 32)}.get(dataset, (0.005, 32))
        return Recipe(lr, batch, max_epochs=10, patience=3)
    if name == "rlinear-trained":
        return Recipe(0.005, 256 if dataset == "etth2" else 128, max_epochs=15, patience=10)
    if name == "patchtst":
        return Recipe(1e-4, 128, max_epochs=100, patience=20, schedule="type3")
    raise ConfigError(f"unknown baseline {name!r}; pick one of {', '.join(BASELINES)}")


def build_model(name: str, dataset: str, context: int, horizon: int,
                n_channels: int) -> nn.Module:
    """Baseline ``name`` sized as its paper sizes it for ``dataset``."""
    if name == "dlinear-trained":
        return DLinear(context, horizon)
    if name == "rlinear-trained":
        return RLinear(context, horizon, n_channels)
    if name == "patchtst":
        size = PATCHTST_SMALL if dataset in ("etth1", "etth2") else PATCHTST_SIZE
        return PatchTST(context, horizon, n_channels, **size)
    raise ConfigError(f"unknown baseline {name!r}; pick one of {', '.join(BASELINES)}")


@torch.no_grad()
def evaluate(model: nn.Module, windows: Dataset, device: str | torch.device = "cpu",
             batch_size: int = 64) -> dict[str, float]:
    """MSE and MAE of ``model`` over ``windows`` (pairs ``[L, C]``, ``[H, C]``)."""
    model.eval()
    sums = ErrorSums()
    for x, y in DataLoader(windows, batch_size=batch_size):
        sums.update(model(x.to(device)).float().cpu(), y)
    return sums.result()


def fit(model: nn.Module, train: Dataset, val: Dataset, plan: Recipe, *,
        time_budget_s: float | None = None, device: str | torch.device = "cpu",
        seed: int = 1) -> dict:
    """Train ``model`` in place by ``plan`` and load its best validation weights.

    The time budget counts training and validation; the epoch it cuts short is still
    validated. Returns
    ``val_mse`` (the best), ``epochs`` (run), ``stopped`` (``patience``, ``time`` or
    ``epochs``) and ``history`` (each epoch's ``lr`` and ``val_mse``).
    """
    torch.manual_seed(seed)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=plan.lr)
    loader = DataLoader(train, batch_size=plan.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    if not len(loader):
        raise ConfigError(f"{len(train)} training windows fill no batch of {plan.batch_size}; "
                          "pass a longer series or a shorter context or horizon")
    start = time.perf_counter()
    best, best_state, waited, history, stopped = float("inf"), None, 0, [], "epochs"
    for epoch in range(1, plan.max_epochs + 1):
        lr = plan.learning_rate(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        for x, y in loader:
            loss = F.mse_loss(model(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
                stopped = "time"
                break
        val_mse = evaluate(model, val, device)["mse"]
        history.append({"epoch": epoch, "lr": lr, "val_mse": val_mse})
        if val_mse < best:
            best, best_state, waited = val_mse, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= plan.patience:
                stopped = "patience"
        if stopped != "epochs":
            break
    if best_state is None:
        raise TrainingError(f"training diverged: validation MSE {history[-1]['val_mse']} after "
                            f"{len(history)} epoch(s); lower the learning rate ({plan.lr:g})")
    model.load_state_dict(best_state)
    return {"val_mse": best, "epochs": len(history), "stopped": stopped, "history": history}


def train_baseline(
    name: str,
    data: SplitData,
    context: int,
    horizon: int,
    *,
    time_budget_s: float | None = None,
    max_epochs: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 1,
    eval_stride: int = 1,
    val_stride: int = 1,
) -> dict:
    """Train baseline ``name`` (one of ``BASELINES``) on ``data`` by its :func:`recipe`,
    and score it on every ``eval_stride``-th test window.

    ``max_epochs`` caps the recipe's epochs; validation reads every ``val_stride``-th
    window. Returns ``model`` (best validation weights, on
    ``device``), ``val_mse``, ``test_mse``, ``test_mae``, ``epochs``, ``seconds`` (training
    and testing), ``stopped``, ``history`` and ``recipe``.
    """
    checks = [("eval_stride", eval_stride), ("val_stride", val_stride)]
    if max_epochs is not None:
        checks.append(("max_epochs", max_epochs))
    for label, value in checks:
        if value < 1:
            raise ConfigError(f"{label} must be >= 1, got {value}")
    plan = recipe(name, data.name, horizon)
    if max_epochs is not None:
        plan = replace(plan, max_epochs=min(plan.max_epochs, max_epochs))
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model(name, data.name, context, horizon, data.n_channels)
    run = fit(model, data.windows("train", context, horizon),
              data.windows("val", context, horizon, val_stride), plan,
              time_budget_s=time_budget_s, device=device, seed=seed)
    test = evaluate(model, data.windows("test", context, horizon, eval_stride), device)
    return {"model": model, **run, "test_mse": test["mse"], "test_mae": test["mae"],
            "seconds": time.perf_counter() - start, "recipe": plan}


def trained_linear_fit(train: Dataset, val: Dataset, dataset: str, horizon: int,
                       seed: int = 1) -> LinearFit:
    """DLinear trained by ``dataset``'s :func:`recipe` on ``train`` windows (pairs
    ``([L, C], [H, C])``; the recipe's batches count windows of all their channels), folded
    into one linear map (:meth:`DLinear.linear_map`) with its best validation MSE over
    ``val``: a rival to the ridge fit that early stopping regularises differently."""
    if not len(train):
        raise ConfigError("no training windows to train DLinear on; pass a longer series or "
                          "a shorter context or horizon")
    plan = recipe("dlinear-trained", dataset, horizon)
    with torch.random.fork_rng():  # seeded apart: the caller's random state stays as it was
        torch.manual_seed(seed)
        model = DLinear(train[0][0].shape[0], horizon)
        run = fit(model, train, val, plan, seed=seed)
    return LinearFit(model.linear_map(), None, run["val_mse"])
