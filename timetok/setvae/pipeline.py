"""``MortalityClassifier``: in-hospital mortality risk from a finetuned SeqSetVAE folder.

Takes stays as :func:`~timetok.core.data.records.load_records` reads them (values on their
recorded scale), maps their variables onto the model's vocabulary by name, applies the
training scaler and cuts the stays into sets the way the model was trained (exact times
or buckets), then returns the probability of class 1 per stay.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from timetok.core.data.records import Records, RecordsScaler, collate_sets, make_sets
from timetok.core.errors import ConfigError, DataError
from timetok.setvae.artifacts import SCALER, RecordsSettings, Vocabulary
from timetok.setvae.model import SeqSetVAE

logger = logging.getLogger(__name__)


class MortalityClassifier:
    """Risk per stay from a finetuned SeqSetVAE.

    >>> from timetok.core.data.records import load_records
    >>> clf = MortalityClassifier.from_pretrained("runs/setvae-ft")    # doctest: +SKIP
    >>> records = load_records("physionet2012", data_dir="data", sets=("c",))   # doctest: +SKIP
    >>> clf.predict_proba(records)            # -> [N] probabilities  # doctest: +SKIP
    >>> clf.predict_proba(records, np.arange(10))   # the first 10 stays  # doctest: +SKIP
    """

    def __init__(self, model: SeqSetVAE, scaler: RecordsScaler, vocabulary: Vocabulary,
                 bucket: str | float = "exact", settings: RecordsSettings | None = None):
        if model.head is None:
            raise ConfigError("this model has no classification head; finetune it first")
        self.model = model.eval()
        self.scaler = scaler
        self.vocabulary = vocabulary
        self.bucket = bucket
        self.settings = settings  # how the training stays were read

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> MortalityClassifier:
        """Load the model, ``records_scaler.json``, ``variables.json`` and the bucket of
        ``records.json`` from a folder of ``timetok setvae finetune``."""
        directory = Path(directory)
        model = SeqSetVAE.from_pretrained(directory)
        vocabulary = Vocabulary.load(directory)
        settings = RecordsSettings.load(directory)
        scaler = RecordsScaler.load(directory / SCALER)
        return cls(model, scaler, vocabulary, settings.bucket, settings)

    @torch.no_grad()
    def predict_proba(self, records: Records, index: np.ndarray | None = None,
                      batch_size: int = 64, device: str | torch.device = "cpu",
                      track: Callable[[Iterable], Iterable] = iter) -> np.ndarray:
        """The probability of class 1 (death) of the stays ``index [n]`` of ``records``
        (all when None): ``[n]`` float32, in the order of ``index``."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        records = self.vocabulary.remap(records)
        index = np.arange(len(records)) if index is None else np.asarray(index, dtype=np.int64)
        if index.ndim != 1 or (len(index) and not 0 <= index.min() <= index.max()
                               < len(records)):
            raise DataError(f"index must list stays 0 to {len(records) - 1}, got "
                            f"{np.asarray(index).tolist()[:8]}")
        sets = make_sets(records, index, self.scaler, self.bucket)
        self.model.to(device)
        probs = []
        for batch in track(DataLoader(sets, batch_size=batch_size, collate_fn=collate_sets)):
            batch = dataclasses.replace(batch, **{f.name: getattr(batch, f.name).to(device)
                                                  for f in dataclasses.fields(batch)})
            probs.append(self.model(batch).logits.softmax(-1)[:, 1].float().cpu())
        return torch.cat(probs).numpy() if probs else np.zeros(0, dtype=np.float32)
