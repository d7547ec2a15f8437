"""Forecast protocol: every test window, standardised scale, in-run baselines.

Baselines are computed on the same windows as the model:
- ``repeat-last``: the last context value, held;
- ``seasonal-naive``: the last full season repeated (24 steps hourly, 96 at 15 minutes);
- ``dlinear``: one linear map from the context to the horizon, shared by all channels,
  fitted on the training windows. DLinear's trend/remainder split is itself linear, so
  least squares gives the optimum that model class can reach; we solve it in closed form,
  with the ridge penalty that does best on the validation windows;
- ``rlinear``: the same on the RevIN scale (each window normalised by its context's mean
  and deviation, the deviation floored at ``timetok.core.nn.lstsq.MIN_STD``: RLinear), fitted
  for the error on the data's scale as a trained RLinear is; ``timetok-linear``'s skip
  starts here;
- ``tokenizer-ceiling``: the true future encoded and decoded by the tokenizer, the best
  any decoder-path forecast could do with perfect codes.

DLinear, RLinear and PatchTST trained as their papers train them are in
:mod:`timetok.forecast.baselines`, scored on the same test windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from einops import rearrange
from torch import Tensor
from torch.utils.data import DataLoader

from timetok.core.data.series import SplitData
from timetok.core.errors import ConfigError
from timetok.core.nn.lstsq import apply_linear, apply_rlinear, fit_linear, linear_revin
from timetok.core.nn.sampling import Sampling

SEASONS = {"etth1": 24, "etth2": 24, "ettm1": 96, "ettm2": 96}


class ErrorSums:
    """Running MSE/MAE over every value seen."""

    def __init__(self):
        self.sq = 0.0
        self.ab = 0.0
        self.n = 0

    def update(self, pred: Tensor, true: Tensor) -> None:
        err = (pred - true).double()
        self.sq += float(err.pow(2).sum())
        self.ab += float(err.abs().sum())
        self.n += err.numel()

    def result(self) -> dict[str, float]:
        return {"mse": self.sq / max(self.n, 1), "mae": self.ab / max(self.n, 1)}


def crps_from_samples(samples: Tensor, true: Tensor) -> Tensor:
    """Sample-based CRPS per value: ``E|X - y| - E|X - X'| / 2``; samples ``[S, ...]``."""
    term1 = (samples - true).abs().mean(dim=0)
    s = samples.shape[0]
    sorted_samples, _ = samples.sort(dim=0)
    # E|X - X'| from sorted samples in O(S log S): sum_i (2i - S - 1) x_(i) * 2 / S^2
    weights = (2 * torch.arange(1, s + 1, dtype=samples.dtype) - s - 1).view(-1, *[1] *
                                                                           (samples.ndim - 1))
    term2 = (weights * sorted_samples).sum(dim=0) * 2 / (s * s)
    return term1 - term2 / 2


def repeat_last(x: Tensor, horizon: int) -> Tensor:
    return x[:, -1:].expand(-1, horizon, -1)


def seasonal_naive(x: Tensor, horizon: int, season: int) -> Tensor:
    last = x[:, -season:]
    reps = -(-horizon // season)
    return last.repeat(1, reps, 1)[:, :horizon]


@torch.no_grad()
def tokenizer_ceiling(tokenizer, y: Tensor) -> Tensor:
    """decode(encode(true future)), the future padded to whole codes by repeating its end."""
    horizon = y.shape[1]
    flat = rearrange(y, "b h c -> (b c) h")
    pad = -horizon % tokenizer.compression
    if pad:
        flat = torch.cat([flat, flat[:, -1:].expand(-1, pad)], dim=1)
    codes, stats = tokenizer.encode_series(flat)
    recon = tokenizer.decode(codes[..., None], stats)[:, :horizon, 0]
    return rearrange(recon, "(b c) h -> b h c", b=y.shape[0])


def _check_models(models: list, horizon: int | None) -> int:
    """Every model a finetuned forecaster of one context that reaches ``horizon`` (default:
    the first model's); returns the horizon."""
    from timetok.forecast.model import TokenForecaster

    for m in models:
        if not isinstance(m, TokenForecaster):
            kind = getattr(m, "model_type", type(m).__name__)
            raise ConfigError(f"a {kind!r} model cannot forecast; evaluate a finetuned "
                              "forecaster")
        if not m.config.horizon:
            raise ConfigError("a pretrained language model has no forecast heads; finetune it "
                              "first")
    first = models[0].config
    horizon = horizon or first.horizon
    for m in models:
        if m.config.context_points != first.context_points:
            raise ConfigError(f"the models read contexts of {m.config.context_points} and "
                              f"{first.context_points} steps; evaluate models of one run together")
        if not 1 <= horizon <= m.config.horizon:
            raise ConfigError(f"horizon must lie in [1, {m.config.horizon}] (the model's), got "
                              f"{horizon}; evaluate a model finetuned for that horizon")
    return horizon


def _check_counts(batch_size: int, stride: int, samples: int, sample_stride: int) -> None:
    for name, value, least in (("batch_size", batch_size, 1), ("stride", stride, 1),
                               ("samples", samples, 0), ("sample_stride", sample_stride, 1)):
        if value < least:
            raise ConfigError(f"{name} must be >= {least}, got {value}")


@torch.no_grad()
def evaluate_forecaster(
    model,
    data: SplitData,
    horizon: int | None = None,
    batch_size: int = 64,
    stride: int = 1,
    samples: int = 0,
    sample_stride: int = 50,
    sampling: Sampling = Sampling(),
    track: Callable[[Iterable], Iterable] = iter,
    device: str | torch.device = "cpu",
) -> dict:
    """MSE/MAE per method on the test split; with ``samples`` also CRPS of sampled paths.

    ``model`` may be a list of models finetuned on the same tokenizer, context and horizon
    with different heads: each output (a head, or the blend) is reported from its own
    model, the baselines once, and samples are drawn from the first. ``stride`` 1 is the
    protocol (every test window); sampling, being costly, runs on every
    ``sample_stride``-th batch and says so in the report. The models and the tokenizer
    ceiling run on ``device`` (the models are moved there and stay), the baselines on the
    CPU. ``horizon`` defaults to the first model's; a shorter one cuts the models'
    forecasts, a longer one is refused.
    """
    models = list(model) if isinstance(model, list | tuple) else [model]
    if not models:
        raise ConfigError("no model to evaluate; pass a finetuned forecaster")
    horizon = _check_models(models, horizon)
    _check_counts(batch_size, stride, samples, sample_stride)
    model = models[0]
    outputs = [output for m in models for output in m.outputs]
    if len(set(outputs)) < len(outputs):
        raise ConfigError(f"each output must come from one model, got {outputs}")
    for m in models:
        m.eval().to(device)
    context = model.config.context_points
    windows = data.windows("test", context, horizon, stride)
    loader = DataLoader(windows, batch_size=batch_size, shuffle=False)
    season = SEASONS.get(data.name)
    train, val = (data.windows(split, context, horizon) for split in ("train", "val"))
    linear = fit_linear(train, val_windows=val).weights
    rlinear = fit_linear(train, linear_revin(), val_windows=val).weights
    methods: dict[str, Callable[[Tensor], Tensor]] = {
        "repeat-last": lambda x: repeat_last(x, horizon),
        "dlinear": lambda x: apply_linear(linear, x),
        "rlinear": lambda x: apply_rlinear(rlinear, x),
    }
    if season:
        methods["seasonal-naive"] = lambda x: seasonal_naive(x, horizon, season)
    sums = {f"timetok-{name}": ErrorSums() for name in outputs}
    sums |= {name: ErrorSums() for name in [*methods, "tokenizer-ceiling"]}
    crps_sum, crps_n, sampled = 0.0, 0, ErrorSums()
    for i, (x, y) in enumerate(track(loader)):
        xd = x.to(device)
        for m in models:
            for head, pred in m.predict(xd).items():  # cut to a shorter horizon asked for
                sums[f"timetok-{head}"].update(pred[:, :horizon].cpu(), y)
        for name, method in methods.items():
            sums[name].update(method(x), y)
        ceiling = tokenizer_ceiling(model.tokenizer, y.to(device)).cpu()
        sums["tokenizer-ceiling"].update(ceiling, y)
        if samples and i % sample_stride == 0:
            paths = model.sample(xd, horizon, samples, sampling).cpu()  # (B, S, H, C)
            values = crps_from_samples(paths.transpose(0, 1), y)
            crps_sum += float(values.sum())
            crps_n += values.numel()
            sampled.update(paths.median(dim=1).values, y)
    report = {
        "dataset": data.name, "horizon": horizon, "context_points": context,
        "windows": len(windows), "stride": stride,
        "methods": {name: s.result() for name, s in sums.items()},
    }
    if samples:
        report["sampled"] = {
            "samples": samples, "windows": crps_n // (horizon * data.n_channels),
            "crps": crps_sum / max(crps_n, 1), **{f"median_{k}": v for k, v in
                                                 sampled.result().items()},
        }
    return report


@torch.no_grad()
def evaluate_probabilistic(
    forecaster,
    data,
    split: str = "test",
    batch_size: int = 64,
    stride: int = 1,
    samples: int = 100,
    sample_stride: int = 50,
    sampling: Sampling = Sampling(),
    track: Callable[[Iterable], Iterable] = iter,
    device: str | torch.device = "cpu",
    calibration=None,
) -> dict:
    """CRPS, WQL (0.1-0.9), coverage80 and coverage50 of a finetuned ``Forecaster``'s
    forecasts on a split of ``data`` (a ``SplitData`` of the data it was finetuned on),
    standardised scale (WQL: original scale):

    - ``timetok-calibrated``: its point forecast plus the calibrated residual quantiles
      (``calibration`` where given, else the folder's own, else fitted on the validation
      split), scaled by the context's spread where the calibration is;
    - ``residual-quantiles``: the in-run linear baseline with the lower validation MSE
      (``dlinear`` or ``rlinear``, fitted as ``evaluate_forecaster`` fits them) plus its
      own validation residuals' quantiles, the same for every window;
    - with ``samples``, on every ``sample_stride``-th batch: ``timetok-sampled``, the
      language model's raw paths' quantiles, and ``timetok-sampled-calibrated``, the
      same paths mapped onto the calibration (what ``forecast --samples`` writes).

    Each method reports the windows it was scored on.
    """
    from timetok.forecast.calibration import calibrate_model
    from timetok.forecast.probabilistic import CRPS_LEVELS, INTERVALS, WQL_LEVELS, QuantileSums

    _check_counts(batch_size, stride, samples, sample_stride)
    model = forecaster.model.to(device)
    context, horizon = model.config.context_points, model.config.horizon
    if not horizon:
        raise ConfigError("a pretrained language model has no point forecast to evaluate; "
                          "finetune it first")
    val = data.windows("val", context, horizon)
    source = "given"
    if calibration is None:
        calibration, source = forecaster.calibration, "the model folder's"
    if calibration is None:
        calibration = calibrate_model(model, val, dataset=data.name)
        source = "fitted on the validation split"
    baseline, baseline_forecast, baseline_calibration = _residual_baseline(
        data.windows("train", context, horizon), val)

    levels = sorted({*CRPS_LEVELS, *WQL_LEVELS, *(q for pair in INTERVALS.values()
                                                  for q in pair)})
    scale, shift = data.scaler.std.astype(np.float64), data.scaler.mean.astype(np.float64)
    names = ["timetok-calibrated", "residual-quantiles"]
    if samples:
        names += ["timetok-sampled", "timetok-sampled-calibrated"]
    sums = {name: QuantileSums(levels, scale, shift) for name in names}
    windows = dict.fromkeys(names, 0)
    baseline_spread = baseline_calibration.quantiles(levels)[:, None]
    test = data.windows(split, context, horizon, stride)
    for i, (x, y) in enumerate(track(DataLoader(test, batch_size=batch_size))):
        preds = _quantile_forecasts(model, x.to(device), calibration, levels,
                                    samples if samples and i % sample_stride == 0 else 0,
                                    sampling)
        preds["residual-quantiles"] = baseline_forecast(x).numpy()[None] + baseline_spread
        y = y.numpy()
        for name, pred in preds.items():
            sums[name].update(pred, y)
            windows[name] += len(y)
    return {
        "dataset": data.name, "split": split, "horizon": horizon, "context_points": context,
        "stride": stride, "head": calibration.head, "calibration": source, "baseline": baseline,
        "samples": samples,
        "methods": {name: {**s.result(), "windows": windows[name]} for name, s in sums.items()},
    }


def _residual_baseline(train, val):
    """``evaluate_forecaster``'s linear baseline with the lower validation MSE (fitted as it
    fits them): its name, its forecast, and its validation residuals' quantiles."""
    from timetok.forecast.calibration import Calibration, collect_residuals

    fits = {"dlinear": fit_linear(train, val_windows=val),
            "rlinear": fit_linear(train, linear_revin(), val_windows=val)}
    forecasts = {"dlinear": lambda x: apply_linear(fits["dlinear"].weights, x),
                 "rlinear": lambda x: apply_rlinear(fits["rlinear"].weights, x)}
    name = min(fits, key=lambda n: fits[n].val_mse)
    residuals = collect_residuals(forecasts[name], val)[0]
    return name, forecasts[name], Calibration.from_residuals(residuals, name)


def _quantile_forecasts(model, x: Tensor, calibration, levels: list[float], samples: int,
                        sampling: Sampling) -> dict[str, np.ndarray]:
    """Quantile forecasts ``[Q, B, H, C]`` at ``levels`` for contexts ``x``: the calibrated
    point forecast's and, with ``samples``, the sampled paths' own and calibrated ones."""
    from timetok.forecast.probabilistic import sample_quantiles

    point = model.predict(x)[calibration.head].float().cpu().numpy()
    scale = calibration.scales(x)
    preds = {"timetok-calibrated": point[None] + calibration.quantiles(levels, scale=scale)}
    if samples:
        horizon = point.shape[1]
        paths = model.sample(x, horizon, samples, sampling).float().cpu().numpy()
        preds["timetok-sampled"] = sample_quantiles(paths, levels, axis=1)
        preds["timetok-sampled-calibrated"] = sample_quantiles(
            calibration.map_paths(paths, point, scale), levels, axis=1)
    return preds
