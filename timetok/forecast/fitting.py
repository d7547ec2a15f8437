"""What :meth:`timetok.forecast.pipeline.Forecaster.fit` runs: the user's series as a
``custom`` dataset, then the same recipes as ``timetok tokenizer train``, ``timetok
forecast pretrain`` and ``timetok forecast finetune``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from timetok.core.errors import ConfigError, DataError


def series_frame(data):
    """A DataFrame of ``data``'s numeric columns: a DataFrame's own, or ``[T]``/``[T, C]``
    values (array, tensor, list) as columns ``c0, c1 ...``."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        frame = data.select_dtypes("number")
        if frame.shape[1] == 0:
            raise DataError("data has no numeric columns; pass the series' columns")
        return frame.set_axis([str(c) for c in frame.columns], axis=1)
    if hasattr(data, "detach"):  # a torch tensor
        data = data.detach().cpu().numpy()
    values = np.asarray(data, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    if values.ndim != 2:
        raise DataError(f"data must be a DataFrame or [T, C] values, got shape "
                        f"{tuple(values.shape)}")
    return pd.DataFrame(values, columns=[f"c{i}" for i in range(values.shape[1])])


def fit_folder(data, horizon: int, pretrained, work: Path, tokenizer_settings: dict | None,
               pretrain_settings: dict | None, settings: dict) -> Path:
    """Finetune on ``data`` under ``work`` (training a tokenizer and pretraining first where
    ``pretrained`` is None); returns the finetuned model's folder."""
    from timetok.forecast.config import FinetuneConfig, PretrainConfig
    from timetok.forecast.recipe import finetune, pretrain

    reserved = {"model", "dataset", "data_path", "horizon", "save_path"} & set(settings)
    if reserved:
        raise ConfigError(f"fit sets {', '.join(sorted(reserved))} itself; pass the data, "
                          "horizon and pretrained arguments instead")
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "series.csv"
    series_frame(data).to_csv(csv, index=False)
    source = {"dataset": "custom", "data_path": str(csv)}
    quiet = {"progress": False, "overwrite": bool(settings.get("overwrite"))}
    if pretrained is None:
        from timetok.tokenizer.config import TokenizerTrainConfig
        from timetok.tokenizer.recipe import train

        tokenizer = TokenizerTrainConfig(**(quiet | (tokenizer_settings or {}) | source
                                            | {"save_path": str(work / "tokenizer")}))
        train(tokenizer)
        pretrain_config = PretrainConfig(**(
            quiet | {"context_points": tokenizer.context_points} | (pretrain_settings or {})
            | source | {"tokenizer": str(work / "tokenizer"), "save_path": str(work / "lm")}))
        pretrain(pretrain_config)
        pretrained = work / "lm"
    config = FinetuneConfig(**(quiet | settings | source | {
        "model": str(pretrained), "horizon": [horizon], "save_path": str(work / "forecaster")}))
    finetune(config)
    return work / "forecaster" / f"H{horizon}"
