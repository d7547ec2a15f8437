"""timetok: self-supervised tokenizers and encoders for time series and spectrograms.

Heavy libraries load on first use, so ``import timetok`` and the CLI stay fast.
"""

__version__ = "0.1.0"

_LAZY = {
    "TimeSeriesTokenizer": "timetok.tokenizer.pipeline",
    "SpectrogramGenerator": "timetok.doppler.pipeline",
    "TokenizerModel": "timetok.tokenizer.model",
    "TokenizerConfig": "timetok.tokenizer.model",
    "Forecaster": "timetok.forecast.pipeline",
    "TokenForecaster": "timetok.forecast.model",
    "Classifier": "timetok.mae.pipeline",
    "TimeMAE": "timetok.mae.model",
    "TimeMAEConfig": "timetok.mae.model",
    "MortalityClassifier": "timetok.setvae.pipeline",
    "SeqSetVAE": "timetok.setvae.model",
    "SeqSetVAEConfig": "timetok.setvae.model",
    "GeneratorModel": "timetok.doppler.model",
    "SpectrogramTokenizer": "timetok.doppler.model",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'timetok' has no attribute {name!r}")
