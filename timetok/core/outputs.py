"""What every model's ``forward`` returns: a named output with ``loss`` and its tensors.

One convention for the five systems: ``forward(inputs, targets=None)`` returns a
:class:`ModelOutput` subclass whose ``loss`` is set where the targets are known (None
otherwise), beside the task's tensors under their own names. Fields are keyword-only, so
a subclass lists its tensors without defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(kw_only=True)
class ModelOutput:
    loss: Tensor | None = None


@dataclass(kw_only=True)
class ClassifierOutput(ModelOutput):
    """A classifier's answer: ``logits [B, n_classes]``; ``embedding [B, D]`` is the pooled
    representation the head reads."""

    logits: Tensor
    embedding: Tensor
