"""Choosing the next token from logits: greedy, or sampled with temperature, top-k, top-p.

Every generator in timetok (forecast paths, spectrogram codes) draws through
:func:`next_token`; the filters are ``transformers``' own logits warpers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from timetok.core.errors import ConfigError


@dataclass(frozen=True)
class Sampling:
    """How to pick each next token. ``temperature=0`` decodes greedily (the argmax)."""

    temperature: float = 1.0
    top_k: int | None = None  # keep the k most likely tokens
    top_p: float | None = None  # keep the smallest set whose probability reaches p

    def __post_init__(self):
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must lie in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None
                  ) -> Tensor:
    """``[S, K]`` logits with every token outside the top-k / top-p set at ``-inf``."""
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    if top_k is not None and top_k < logits.shape[-1]:
        logits = TopKLogitsWarper(top_k)(None, logits)
    if top_p is not None and top_p < 1:
        logits = TopPLogitsWarper(top_p)(None, logits)
    return logits


def next_token(logits: Tensor, sampling: Sampling = Sampling(),
               generator: torch.Generator | None = None) -> Tensor:
    """Logits ``[S, K]`` -> one token per row, ``[S]``."""
    if sampling.greedy:
        return logits.argmax(dim=-1)
    scores = filter_logits(logits.float() / sampling.temperature, sampling.top_k, sampling.top_p)
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator)[:, 0]
