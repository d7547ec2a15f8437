"""timetok: self-supervised tokenizers and encoders for time series and spectrograms.

Heavy libraries load on first use, so ``import timetok`` and the CLI stay fast.
"""

__version__ = "0.1.0"

_LAZY = {
    "TimeSeriesTokenizer": "timetok.models.tokenizer",
    "TokenizerConfig": "timetok.models.tokenizer",
    "Forecaster": "timetok.pipelines.forecast",
    "TokenForecaster": "timetok.models.forecaster",
    "Classifier": "timetok.pipelines.classify",
    "TimeMAE": "timetok.models.timemae",
    "TimeMAEConfig": "timetok.models.timemae",
    "MortalityClassifier": "timetok.pipelines.mortality",
    "SeqSetVAE": "timetok.models.setvae",
    "SeqSetVAEConfig": "timetok.models.setvae",
    "SpectrogramGenerator": "timetok.models.spectrogram",
    "SpectrogramTokenizer": "timetok.models.spectrogram",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'timetok' has no attribute {name!r}")
