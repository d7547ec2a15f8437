"""``MortalityClassifier``: in-hospital mortality risk from a finetuned SeqSetVAE folder.

Takes stays on their recorded scale, maps their variables onto the model's vocabulary by
name, applies the training scaler and cuts the stays into sets the way the model was
trained (exact times or buckets), then returns the probability of class 1 per stay, the
class at a threshold, or the pooled state the head reads.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from timetok.core.data.records import Records, RecordsScaler, collate_sets, make_sets
from timetok.core.devices import resolve_device
from timetok.core.errors import ConfigError, DataError
from timetok.setvae.artifacts import (
    RecordsSettings,
    Vocabulary,
    load_scaler,
    load_split,
    save_scaler,
    save_split,
)
from timetok.setvae.inputs import records_from_array, records_from_frame
from timetok.setvae.model import SeqSetVAE

logger = logging.getLogger(__name__)


class MortalityClassifier:
    """Risk per stay from a finetuned SeqSetVAE.

    ``records`` is a :class:`~timetok.core.data.records.Records` (as
    :func:`~timetok.core.data.records.load_records` reads them), or a long table of one row
    per observation on its recorded scale: a pandas DataFrame with the columns ``stay_id``,
    ``time`` (hours since admission; empty for a static such as Age), ``variable`` (a name
    of :attr:`variable_names`) and ``value`` (PhysioNet's own ``Time,Parameter,Value``
    layout, one table for many stays), or a ``[K, 4]`` numpy array or torch tensor of rows
    ``(stay id, time, variable code, value)`` whose codes index :attr:`variable_names`.
    Answers come back as the input came: a DataFrame gives a Series (or, for
    :meth:`embed`, a DataFrame) indexed by ``stay_id``; an array or a tensor gives one row
    per stay in the order the stays first appear; Records give a numpy array.

    >>> import pandas as pd
    >>> clf = MortalityClassifier.from_pretrained("runs/p12-ft")           # doctest: +SKIP
    >>> table = pd.DataFrame({"stay_id": [1, 1, 1], "time": [None, 0.5, 2.0],
    ...                       "variable": ["Age", "HR", "HR"], "value": [71, 88, 93]})
    >>> clf.predict_proba(table)      # Series: stay_id -> probability   # doctest: +SKIP
    """

    def __init__(self, model: SeqSetVAE, scaler: RecordsScaler, vocabulary: Vocabulary,
                 settings: RecordsSettings, split: dict | None = None,
                 device: str | torch.device = "cpu"):
        if model.head is None:
            raise ConfigError("this model has no classification head; finetune it first")
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.scaler = scaler
        self.vocabulary = vocabulary
        self.settings = settings  # how the training stays were read, the bucket among them
        self.split = split  # the record ids of the training, validation and test stays

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str = "auto"
                        ) -> MortalityClassifier:
        """Load a folder of ``timetok setvae finetune`` (or :meth:`save_pretrained`): the
        model, and the ``variables``, ``records_scaler`` and ``records`` sections of its
        ``data.json``."""
        path = Path(path)
        model = SeqSetVAE.from_pretrained(path)
        return cls(model, load_scaler(path), Vocabulary.load(path), RecordsSettings.load(path),
                   load_split(path, required=False), device)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write a folder :meth:`from_pretrained` reads back: ``config.json``,
        ``model.safetensors`` and ``data.json``."""
        path = self.model.save_pretrained(path)
        save_scaler(path, self.scaler)
        self.vocabulary.save(path)
        self.settings.save(path)
        if self.split is not None:
            save_split(path, self.split["split"], {part: self.split[part]
                                                   for part in ("train", "val", "test")})
        return path

    @property
    def variable_names(self) -> list[str]:
        """The model's variables, then its statics: the codes of array input."""
        return [*self.vocabulary.variables, *self.vocabulary.statics]

    def predict_proba(self, records: Any, index: np.ndarray | None = None,
                      batch_size: int = 64, track: Callable[[Iterable], Iterable] = iter):
        """The probability of class 1 (death) per stay: ``[n]`` float32 (a Series named
        ``probability`` for a DataFrame). ``index [n]`` picks stays of Records (all when
        None), in its order; ``track`` wraps the batches (a progress bar)."""
        return self._answer(records, index, batch_size, track, "probability")

    def predict(self, records: Any, threshold: float = 0.5, batch_size: int = 64):
        """1 where the probability of death reaches ``threshold``, else 0: ``[n]`` int64 (a
        Series named ``prediction`` for a DataFrame)."""
        if not 0 <= threshold <= 1:
            raise ConfigError(f"threshold must lie in [0, 1], got {threshold}")
        return self._answer(records, None, batch_size, iter, "prediction", threshold)

    def embed(self, records: Any, batch_size: int = 64):
        """The pooled sequence state the head reads: ``[n, d_model]`` float32 (a DataFrame
        of columns ``embedding_0`` ... for a DataFrame)."""
        return self._answer(records, None, batch_size, iter, "embedding")

    # --- the work -----------------------------------------------------------------------

    def _answer(self, records: Any, index: np.ndarray | None, batch_size: int,
                track: Callable, what: str, threshold: float = 0.5):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        stays, index = self._stays(records, index)
        values = self._run(stays, index, batch_size, track, what == "embedding")
        if what == "prediction":
            values = (values >= threshold).astype(np.int64)
        return _like(records, values, stays.ids[index], what)

    def _stays(self, records: Any, index: np.ndarray | None) -> tuple[Records, np.ndarray]:
        """Records in the model's vocabulary and the stays to score."""
        if isinstance(records, Records):
            records = self.vocabulary.remap(records)
        else:
            if index is not None:
                raise ConfigError("index picks stays of a Records object; select the rows of "
                                  "the table instead")
            if isinstance(records, torch.Tensor):
                records = records_from_array(records.detach().cpu().numpy(), self.vocabulary)
            elif isinstance(records, np.ndarray):
                records = records_from_array(records, self.vocabulary)
            else:
                records = records_from_frame(records, self.vocabulary)
        index = np.arange(len(records)) if index is None else np.asarray(index, dtype=np.int64)
        if index.ndim != 1 or (len(index) and not 0 <= index.min() <= index.max()
                               < len(records)):
            raise DataError(f"index must list stays 0 to {len(records) - 1}, got "
                            f"{np.asarray(index).tolist()[:8]}")
        return records, index

    @torch.no_grad()
    def _run(self, records: Records, index: np.ndarray, batch_size: int, track: Callable,
             embed: bool) -> np.ndarray:
        """``[n]`` probabilities of class 1, or ``[n, d_model]`` embeddings."""
        sets = make_sets(records, index, self.scaler, self.settings.bucket)
        out = []
        for batch in track(DataLoader(sets, batch_size=batch_size, collate_fn=collate_sets)):
            batch = dataclasses.replace(batch, **{
                f.name: getattr(batch, f.name).to(self.device) for f in dataclasses.fields(batch)})
            if embed:
                out.append(self.model.embed(batch).float().cpu())
            else:
                out.append(self.model(batch).logits.softmax(-1)[:, 1].float().cpu())
        if not out:
            shape = (0, self.model.config.d_model) if embed else (0,)
            return np.zeros(shape, dtype=np.float32)
        return torch.cat(out).numpy()


def _like(records: Any, values: np.ndarray, ids: np.ndarray, what: str):
    """``values`` as the kind ``records`` came in (see :class:`MortalityClassifier`)."""
    if isinstance(records, torch.Tensor):
        return torch.from_numpy(values).to(records.device)
    if isinstance(records, Records | np.ndarray):
        return values
    import pandas as pd

    stays = pd.Index(ids, name="stay_id")
    if values.ndim == 2:
        return pd.DataFrame(values, index=stays,
                            columns=[f"{what}_{i}" for i in range(values.shape[1])])
    return pd.Series(values, index=stays, name=what)
