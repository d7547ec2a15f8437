"""One file per system's model; every model saves and loads as safetensors + JSON."""

from timetok.models.base import MODEL_REGISTRY, PretrainedModel
from timetok.models.code_lm import CodeLanguageModel, CodeLMConfig
from timetok.models.forecaster import ForecasterConfig, TokenForecaster
from timetok.models.setvae import SeqSetVAE, SeqSetVAEConfig
from timetok.models.timemae import TimeMAE, TimeMAEConfig
from timetok.models.tokenizer import TimeSeriesTokenizer, TokenizerConfig

__all__ = [
    "MODEL_REGISTRY",
    "CodeLMConfig",
    "CodeLanguageModel",
    "ForecasterConfig",
    "PretrainedModel",
    "SeqSetVAE",
    "SeqSetVAEConfig",
    "TimeMAE",
    "TimeMAEConfig",
    "TimeSeriesTokenizer",
    "TokenForecaster",
    "TokenizerConfig",
]
