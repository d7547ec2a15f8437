"""One file per system's model; every model saves and loads as safetensors + JSON."""

from timetok.models.base import MODEL_REGISTRY, PretrainedModel
from timetok.models.tokenizer import TimeSeriesTokenizer, TokenizerConfig

__all__ = ["MODEL_REGISTRY", "PretrainedModel", "TimeSeriesTokenizer", "TokenizerConfig"]
