"""``Classifier``: the user-facing classification API over a finetuned TimeMAE folder.

Takes series on their original scale (``[N, T, C]`` or one ``[T, C]``), applies the
model's training scaler and returns class names, probabilities or representations.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from timetok.core.data.scaler import Scaler
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.mae.model import TimeMAE

logger = logging.getLogger(__name__)


class Classifier:
    """Class predictions and embeddings from a finetuned (or pretrained) TimeMAE.

    >>> clf = Classifier.from_pretrained("runs/mae-ft-har")   # doctest: +SKIP
    >>> clf.predict(x)          # x [N, T, C] -> N class names    # doctest: +SKIP
    >>> clf.predict_proba(x)    # -> [N, K]                       # doctest: +SKIP
    >>> clf.embed(x)            # -> [N, d_model]                 # doctest: +SKIP
    """

    def __init__(self, model: TimeMAE, scaler: Scaler | None = None,
                 classes: list[str] | None = None):
        self.model = model.eval()
        self.scaler = scaler
        self.classes = classes or [str(i) for i in range(model.config.n_classes)]

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> Classifier:
        directory = Path(directory)
        model = TimeMAE.from_pretrained(directory)
        scaler, classes = None, None
        if (directory / "scaler.json").is_file():
            scaler = Scaler.load(directory / "scaler.json")
        else:
            logger.warning("%s has no scaler.json: series are read without the training "
                           "scaler, so predictions differ from the trained model's; copy "
                           "scaler.json from the run folder", directory)
        if (directory / "labels.json").is_file():
            try:
                classes = [str(c) for c in json.loads((directory / "labels.json").read_text())
                           ["classes"]]
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise CheckpointError(f"cannot read {directory / 'labels.json'} ({err}); "
                                      "re-export the model") from None
        return cls(model, scaler, classes)

    def _prepare(self, x) -> tuple[torch.Tensor, bool]:
        array = np.asarray(x, dtype=np.float32)
        single = array.ndim == 2
        array = array[None] if single else array
        c = self.model.config
        if array.ndim != 3 or array.shape[1:] != (c.length, c.n_channels):
            raise DataError(
                f"series must be [N, {c.length}, {c.n_channels}] or [{c.length}, "
                f"{c.n_channels}] (steps, channels), got {list(np.shape(x))}"
            )
        if not np.isfinite(array).all():
            raise DataError("the series hold NaN or infinite values; fill them first")
        if self.scaler is not None:
            array = self.scaler.transform(array)
        return torch.from_numpy(np.ascontiguousarray(array)), single

    @torch.no_grad()
    def predict_proba(self, x, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``[N, K]`` (``[K]`` for one series)."""
        if self.model.head is None:
            raise ConfigError("this model has no classification head; finetune it first")
        series, single = self._prepare(x)
        probs = torch.cat([self.model(batch).logits.softmax(-1)
                           for batch in series.split(batch_size)]).numpy()
        return probs[0] if single else probs

    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """The most likely class name per series."""
        probs = self.predict_proba(x, batch_size)
        return np.asarray(self.classes, dtype=object)[probs.argmax(-1)]

    @torch.no_grad()
    def embed(self, x, batch_size: int = 256) -> np.ndarray:
        """The encoder's pooled representation ``[N, d_model]`` (``[d_model]`` for one)."""
        series, single = self._prepare(x)
        out = torch.cat([self.model.embed(batch) for batch in series.split(batch_size)]).numpy()
        return out[0] if single else out
