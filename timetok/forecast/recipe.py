"""The forecaster's stages as library functions: what ``timetok forecast <stage>`` runs
and what the benchmarks call.

- :func:`pretrain`: next-code pretraining of the language model over a frozen tokenizer;
- :func:`finetune`: forecast heads for each horizon, the skip, the blend and the
  calibration (one model folder per horizon);
- :func:`evaluate`: test MSE/MAE per horizon beside in-run baselines and published figures;
- :func:`calibrate`: a finetuned model's forecast quantiles, fitted anew on validation.

Each training stage takes one config (:mod:`timetok.forecast.config`) and seeds once, in
:func:`timetok.core.train.runner.begin`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.forecast.config import FinetuneConfig, PretrainConfig

logger = logging.getLogger(__name__)

# Called before each finetuning run (summary None) and after it: (horizon, folder, module,
# summary).
RunReport = Callable[[int, Path, object, dict | None], None]


def pretrain(config: PretrainConfig) -> dict:
    """Pretrain the language model on the next code of ``config.dataset``'s windows (the
    context and ``max_horizon`` further steps, encoded on the context's scale); export it
    to ``config.save_path`` (default ``runs/lm-DATASET``). Returns the run's summary."""
    from timetok.core.train.runner import begin, train_and_export
    from timetok.forecast.data import WindowDataModule
    from timetok.forecast.modules import pretrain_module

    save_path = Path(config.default_save_path())
    config.check_new_run(save_path)
    options = config.run_options()
    begin(options)
    module = pretrain_module(config)
    datamodule = WindowDataModule(
        config.dataset, config.context_points, module.model.config.pretrain_future,
        config.batch_size, config.stride, channel_independent=True, data_dir=config.data_dir,
        data_path=config.data_path, num_workers=config.num_workers,
        eval_stride=config.val_stride,
    )
    try:
        datamodule.load()
    except DataError as error:
        raise DataError(f"{error}; in pretraining the target is max_horizon "
                        f"({config.max_horizon}): lower it if no forecast goes that far") from None
    return train_and_export(module, datamodule, save_path, options, config.resume,
                            config.settings() | {"save_path": str(save_path)})


def finetune_folders(config: FinetuneConfig) -> dict[int, Path]:
    """Each horizon's run folder, in the order the runs go (longest first with ``chain``):
    ``SAVE_PATH/H<horizon>``, or ``SAVE_PATH`` itself when one horizon's run resumes."""
    base = Path(config.default_save_path())
    order = sorted(config.horizon, reverse=True) if config.chain else config.horizon
    return {h: base if config.resume else base / f"H{h}" for h in order}


def check_horizons(config: FinetuneConfig, max_horizon: int) -> None:
    """The whole horizon list, checked before any run starts."""
    beyond = [h for h in config.horizon if h > max_horizon]
    if beyond:
        raise ConfigError(f"horizon must not exceed the pretrained model's max_horizon "
                          f"{max_horizon}, got {beyond}; pretrain with a longer max_horizon "
                          "or forecast fewer steps")
    if config.resume and len(config.horizon) > 1:
        raise ConfigError("resume continues one run, one horizon; pass the H<horizon> folder "
                          "as save_path and its horizon")


def finetune(config: FinetuneConfig, report: RunReport | None = None) -> dict[int, dict]:
    """Finetune ``config.model`` to forecast each horizon of ``config.horizon``, one run
    and one model folder per horizon (:func:`finetune_folders`); with ``chain`` each run
    starts from the last one's model. Every run is seeded alike. Returns each horizon's
    summary; ``report``, where given, is called before each run and after it."""
    from timetok.core.train.runner import begin, train_and_export
    from timetok.forecast.data import WindowDataModule
    from timetok.forecast.model import TokenForecaster
    from timetok.forecast.modules import finetune_module

    runs = finetune_folders(config)
    for save_path in runs.values():  # every folder is free before anything is read
        config.check_new_run(save_path)
    pretrained = TokenForecaster.from_pretrained(config.model).config
    check_horizons(config, pretrained.max_horizon)
    start, summaries = config.model, {}
    for horizon, save_path in runs.items():
        run = config.replace(max_steps=config.steps_for(horizon))
        options = run.run_options()
        begin(options)
        datamodule = WindowDataModule(
            config.dataset, pretrained.context_points, horizon, config.batch_size,
            config.stride, channel_independent=True, data_dir=config.data_dir,
            data_path=config.data_path, num_workers=config.num_workers,
            eval_stride=config.val_stride,
        )
        datamodule.load()
        # Fitted on resume too: the same windows give the same scale, the checkpoint the rest.
        module = finetune_module(config, start, horizon, datamodule)
        if report is not None:
            report(horizon, save_path, module, None)
        settings = run.settings() | {"horizon": [horizon], "horizon_steps": {},
                                     "lr": config.learning_rate(), "model": str(start),
                                     "save_path": str(save_path)}
        summaries[horizon] = train_and_export(module, datamodule, save_path, options,
                                              config.resume, settings)
        if report is not None:
            report(horizon, save_path, module, summaries[horizon])
        if config.chain:
            start = save_path
    return summaries


def model_folders(model_dir: str | os.PathLike, horizons: Iterable[int] = ()) -> dict[int, Path]:
    """A finetuned model folder, or a folder of ``H<horizon>`` model folders -> the folder
    of each horizon asked for (default: every one there)."""
    from timetok.core.model_folder import read_json

    model_dir, horizons = Path(model_dir), list(horizons)
    if (model_dir / "config.json").is_file():
        config = read_json(model_dir / "config.json", "model config")
        if config.get("model_type") != "forecaster":
            raise CheckpointError(
                f"{model_dir} holds a {config.get('model_type')!r} model, not a forecaster; "
                "evaluate wants a finetuned forecaster (timetok forecast finetune), and a "
                "tokenizer is evaluated by 'timetok tokenizer evaluate'"
            )
        horizon = config.get("horizon", 0)
        if not horizon:
            raise CheckpointError(f"{model_dir} is a pretrained language model without "
                                  "forecast heads; finetune it first (timetok forecast finetune)")
        if horizons and horizons != [horizon]:
            raise CheckpointError(f"{model_dir} forecasts {horizon} steps, not {horizons}; pass "
                                  "the folder that holds H<horizon> sub-folders")
        return {horizon: model_dir}
    found = {int(p.name[1:]): p for p in model_dir.glob("H*") if p.name[1:].isdigit()}
    if not found:
        raise CheckpointError(f"no finetuned model in {model_dir}; check the model path")
    missing = [h for h in horizons if h not in found]
    if missing:
        raise CheckpointError(f"{model_dir} has models for horizons {sorted(found)}, not "
                              f"{missing}; finetune them")
    return {h: found[h] for h in (horizons or sorted(found))}


def evaluate(model: str | os.PathLike, dataset: str = "etth1", *, data_path=None,
             data_dir=None, horizons: Iterable[int] = (), stride: int = 1, batch_size: int = 64,
             samples: int | None = None, sample_stride: int = 50, sampling=None,
             out: str | os.PathLike | None = None, device: str = "auto",
             track: Callable[[Iterable, int], Iterable] | None = None) -> dict:
    """Test MSE/MAE of each horizon's finetuned model in ``model`` (a model folder or a
    folder of ``H<horizon>`` folders) beside the in-run baselines and the published
    figures; with ``samples`` also the CRPS of that many sampled paths. Writes
    ``report.json`` and ``report.md`` into ``out`` (default ``MODEL/eval-DATASET``) and
    returns the report, its Markdown under ``markdown``. ``track(batches, horizon)`` may
    wrap the test batches in a progress display."""
    from timetok.core.data.registry import get_spec
    from timetok.core.data.series import load_splits
    from timetok.core.devices import resolve_device
    from timetok.core.nn.sampling import Sampling
    from timetok.core.published import forecast_rows
    from timetok.core.report import markdown_table, write_report
    from timetok.forecast.evaluate import evaluate_forecaster
    from timetok.forecast.model import TokenForecaster

    device = resolve_device(device)
    dirs = model_folders(model, horizons)
    out = Path(out or Path(model) / f"eval-{get_spec(dataset).name}")
    rows, reports, loaded = [], [], {}
    for horizon, folder in dirs.items():
        forecaster = TokenForecaster.from_pretrained(folder)
        context = forecaster.config.context_points  # models of one run share it: read once
        if context not in loaded:
            loaded[context] = load_splits(dataset, context, data_dir=data_dir,
                                          data_path=data_path)
        data = loaded[context]
        result = evaluate_forecaster(
            forecaster, data, horizon, batch_size, stride, samples or 0, sample_stride,
            sampling or Sampling(), device=device,
            track=(lambda it, h=horizon: track(it, h)) if track else iter,
        )
        reports.append(result)
        rows += [{"H": horizon, "method": method, **metrics, "source": "measured",
                  "windows": result["windows"]} for method, metrics in result["methods"].items()]
        if "sampled" in result:
            sampled = result["sampled"]
            rows.append({"H": horizon, "method": f"timetok-sampled ({samples} paths, median)",
                         "mse": sampled["median_mse"], "mae": sampled["median_mae"],
                         "crps": sampled["crps"], "source": "measured",
                         "windows": sampled["windows"]})
        rows += [{"H": horizon, **r} for r in forecast_rows(data.name, horizon)]
    markdown = (f"# Forecast, {data.name} test (context {context}, stride {stride}, "
                "standardised)\n\n"
                + markdown_table(rows, ["H", "method", "mse", "mae", "crps", "windows",
                                        "source"]))
    full = {"dataset": data.name, "results": rows, "reports": reports}
    write_report(out, full, markdown)
    return full | {"markdown": markdown, "out": str(out)}


def calibrate(model: str | os.PathLike, dataset: str = "etth1", *, data_path=None,
              data_dir=None, head: str | None = None, max_windows: int = 2000):
    """Fit a finetuned model folder's forecast quantiles anew on ``dataset``'s validation
    split (:func:`timetok.forecast.calibration.calibrate_folder`) and write them into the
    folder; returns the :class:`~timetok.forecast.calibration.Calibration`."""
    from timetok.core.data.series import load_splits
    from timetok.core.model_folder import read_json
    from timetok.forecast.calibration import calibrate_folder

    folder = Path(model)
    context = read_json(folder / "config.json", "model config").get("context_points", 512)
    data = load_splits(dataset, context, data_dir=data_dir, data_path=data_path)
    return calibrate_folder(folder, data, head, max_windows)
