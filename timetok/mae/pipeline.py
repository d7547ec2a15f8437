"""``Classifier``: the user-facing classification API over a TimeMAE model folder.

Series go in on their original scale (the folder's training scaler is applied here) as

- a numpy array or torch tensor ``[N, T]`` (one channel) or ``[N, T, C]``;
- a pandas DataFrame of one channel: a row per sample, a column per time step.

Answers come back in the kind given: numpy arrays, torch tensors, or pandas objects
indexed like the input. ``predict`` returns the original labels, whatever their type.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from timetok.core.data.scaler import Scaler
from timetok.core.devices import resolve_device
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.core.model_folder import read_data_section
from timetok.core.utils import is_dataframe
from timetok.mae.model import TimeMAE

# What Classifier.fit changes from the recipes' defaults: a quiet run on one device.
FIT_DEFAULTS = {"progress": False, "devices": "1"}


def _as_array(X) -> tuple[np.ndarray, str]:
    """``X`` -> float32 ``[N, T, C]`` and its kind (numpy, torch or pandas)."""
    if is_dataframe(X):
        kind, values = "pandas", X.to_numpy()
    elif isinstance(X, torch.Tensor):
        kind, values = "torch", X.detach().cpu().numpy()
    else:
        kind, values = "numpy", X
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError("X must hold numbers: series as [N, T] or [N, T, C] (samples, steps, "
                        "channels)") from None
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or 0 in array.shape:
        raise DataError(f"X must be [N, T] or [N, T, C] (samples, steps, channels), got shape "
                        f"{list(array.shape)}; for one series pass x[None]")
    if kind == "pandas" and array.shape[2] != 1:
        raise DataError("a DataFrame holds one channel (a row per sample, a column per step); "
                        "pass several channels as an array [N, T, C]")
    if not np.isfinite(array).all():
        raise DataError("X holds NaN or infinite values; fill them first")
    return array, kind


def _label(value) -> Any:
    """A label as JSON can keep it: numpy scalars as numbers, tuples as lists."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, tuple):
        return [_label(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise DataError(f"labels must be numbers, strings, booleans or tuples of them, got "
                    f"{value!r} ({type(value).__name__})")


def _from_json(value) -> Any:
    return tuple(_from_json(v) for v in value) if isinstance(value, list) else value


def _labels(y, n: int) -> list:
    """``y`` as a list of hashable labels, one per sample."""
    if isinstance(y, torch.Tensor) or hasattr(y, "tolist"):
        y = y.tolist()
    labels = list(y)
    if len(labels) != n:
        raise DataError(f"y has {len(labels)} labels for {n} series; pass one label per series")
    for label in labels:
        _label(label)  # refuses what a model folder could not store
    return [label.item() if isinstance(label, np.generic) else label for label in labels]


def _class_order(labels: list) -> list:
    distinct = list(dict.fromkeys(labels))
    try:
        return sorted(distinct)
    except TypeError:  # labels of mixed types keep the order they first appear in
        return distinct


class Classifier:
    """Class predictions, probabilities and embeddings from a finetuned TimeMAE, and
    finetuning on your own series.

    >>> clf = Classifier().fit(X, y, n_epochs=20)        # X [N, T] or [N, T, C]  # doctest: +SKIP
    >>> clf = Classifier.from_pretrained("runs/mae-ft-har")               # doctest: +SKIP
    >>> clf.predict(X)          # -> N labels                              # doctest: +SKIP
    >>> clf.predict_proba(X)    # -> [N, K], columns in clf.classes order   # doctest: +SKIP
    >>> clf.embed(X)            # -> [N, d_model]                          # doctest: +SKIP
    """

    def __init__(self, model: TimeMAE | None = None, scaler: Scaler | None = None,
                 classes: list | None = None, device: str = "auto"):
        self.device = resolve_device(device)
        self.model = None if model is None else model.eval().to(self.device)
        self.scaler = scaler
        if classes is None and model is not None:
            classes = list(range(model.config.n_classes))
        self.classes = None if classes is None else list(classes)
        if model is None:
            return
        if scaler is None:
            raise ConfigError("a model needs the scaler of its training data (scaler=); "
                              "Classifier.from_pretrained(path) reads both from a folder")
        if len(scaler.mean) != model.config.n_channels:
            raise CheckpointError(f"the scaler has {len(scaler.mean)} channels, the model "
                                  f"reads {model.config.n_channels}; re-export the model")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str = "auto") -> Classifier:
        """A model folder (``timetok mae finetune``, ``pretrain`` or ``save_pretrained``):
        its weights and the scaler and labels of its ``data.json``."""
        model = TimeMAE.from_pretrained(path)
        scaler = Scaler.from_dict(read_data_section(path, "scaler", what="training scaler"))
        labels = read_data_section(path, "labels", what="class labels")
        try:
            classes = [_from_json(c) for c in labels["classes"]]
        except (KeyError, TypeError):
            raise CheckpointError(f"{path}: the labels section holds no list of classes; "
                                  "re-export the model") from None
        if model.head is not None and len(classes) != model.config.n_classes:
            raise CheckpointError(f"{path} names {len(classes)} classes for a head of "
                                  f"{model.config.n_classes}; re-export the model")
        return cls(model, scaler, classes, device)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write a folder :meth:`from_pretrained` reads back: ``config.json``,
        ``model.safetensors`` and ``data.json`` (scaler and labels)."""
        from timetok.mae.data import write_data_sections

        model = self._require_model()
        path = model.save_pretrained(path)
        c = model.config
        write_data_sections(path, self.scaler, [_label(v) for v in self.classes],
                            self.scaler.columns, c.length)
        return path

    def fit(self, X, y, pretrained: str | os.PathLike | None = None, **settings) -> Classifier:
        """Finetune TimeMAE on series ``X`` and their labels ``y`` (any hashable values)
        through the same recipe as ``timetok mae finetune``; returns ``self``.

        ``pretrained``: a TimeMAE folder to start from; None pretrains one on ``X`` first
        (masked pretraining reads no labels), as ``timetok mae pretrain`` does.
        ``settings``: fields of :class:`~timetok.mae.recipe.FinetuneConfig` (``n_epochs``,
        ``lr``, ``freeze_policy``, ``val_fraction`` ...) and, without ``pretrained``, of
        :class:`~timetok.mae.recipe.PretrainConfig` (``d_model``, ``n_layers`` ...);
        a setting both know goes to both. ``save_path`` keeps the run folders (else they go
        to a temporary folder). A share ``val_fraction`` of ``X`` picks the checkpoint.
        """
        from timetok.mae.data import labelled_from_arrays
        from timetok.mae.recipe import FinetuneConfig, PretrainConfig, finetune, pretrain

        x, _ = _as_array(X)
        labels = _labels(y, len(x))
        classes = _class_order(labels)
        index = {label: i for i, label in enumerate(classes)}
        settings = FIT_DEFAULTS | settings | {"dataset": "arrays"}
        save_path = settings.pop("save_path", None)
        if "model" in settings:
            raise ConfigError("pass the folder to start from as pretrained=, not model=")
        stages = [FinetuneConfig] + ([PretrainConfig] if pretrained is None else [])
        known = set().union(*(stage.field_names() for stage in stages)) - {"model", "save_path"}
        if unknown := sorted(set(settings) - known):
            raise ConfigError(f"unknown setting {unknown[0]!r} for fit; valid settings: "
                              f"{', '.join(sorted(known))}")

        def config(stage, **fixed):
            return stage(**{k: v for k, v in settings.items() if k in stage.field_names()},
                         **fixed)

        head = config(FinetuneConfig)  # checks the settings before any work
        data = labelled_from_arrays(x, np.array([index[v] for v in labels]),
                                    [_label(c) for c in classes], head.val_fraction,
                                    head.split_seed)
        with tempfile.TemporaryDirectory(prefix="timetok-fit-") as tmp:
            root = Path(save_path or tmp)
            if pretrained is None:
                pretrained = root / "pretrain"
                pretrain(config(PretrainConfig, save_path=str(pretrained)), data)
            finetune(head.replace(model=str(pretrained), save_path=str(root / "finetune")),
                     data)
            fitted = Classifier.from_pretrained(root / "finetune", str(self.device))
        self.model, self.scaler, self.classes = fitted.model, fitted.scaler, classes
        return self

    # --- inference ----------------------------------------------------------------------

    def _require_model(self) -> TimeMAE:
        if self.model is None:
            raise ConfigError("this Classifier has no model yet; call fit(X, y) or "
                              "Classifier.from_pretrained(path)")
        return self.model

    def _series(self, X) -> tuple[torch.Tensor, str]:
        model = self._require_model()
        array, kind = _as_array(X)
        c = model.config
        if array.shape[1:] != (c.length, c.n_channels):
            raise DataError(f"X must be [N, {c.length}, {c.n_channels}] (samples, steps, "
                            f"channels) for this model, got {list(np.shape(X))}")
        return torch.from_numpy(self.scaler.transform(array)), kind

    @torch.no_grad()
    def _run(self, series: torch.Tensor, batch_size: int, embed: bool) -> torch.Tensor:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        out = []
        for batch in series.split(batch_size):
            batch = batch.to(self.device)
            answer = self.model.embed(batch) if embed else self.model(batch).logits.softmax(-1)
            out.append(answer.cpu())
        return torch.cat(out)

    def predict_proba(self, X, batch_size: int = 256):
        """Class probabilities ``[N, K]``, columns in the order of ``self.classes``."""
        if self._require_model().head is None:
            raise ConfigError("this model has no classification head; finetune it first")
        series, kind = self._series(X)
        probs = self._run(series, batch_size, embed=False)
        if kind == "pandas":
            import pandas as pd

            return pd.DataFrame(probs.numpy(), index=X.index, columns=self.classes)
        return probs if kind == "torch" else probs.numpy()

    def predict(self, X, batch_size: int = 256):
        """The most likely label per series: a numpy array, a pandas Series for a
        DataFrame, a tensor for a tensor where the labels are numbers (else a numpy
        array: a tensor cannot hold them)."""
        probs = self.predict_proba(X, batch_size)
        best = np.asarray(probs).argmax(-1)
        labels = np.empty(len(self.classes), dtype=object)
        labels[:] = self.classes
        chosen = labels[best]
        if all(isinstance(c, int | float | bool) for c in self.classes):
            chosen = np.array(chosen.tolist())  # numbers as a numeric array
        if is_dataframe(X):
            import pandas as pd

            return pd.Series(chosen, index=X.index, name="label")
        if isinstance(X, torch.Tensor) and chosen.dtype != object:
            return torch.from_numpy(chosen)
        return chosen

    def embed(self, X, batch_size: int = 256):
        """The encoder's pooled representation ``[N, d_model]``."""
        series, kind = self._series(X)
        out = self._run(series, batch_size, embed=True)
        if kind == "pandas":
            import pandas as pd

            return pd.DataFrame(out.numpy(), index=X.index)
        return out if kind == "torch" else out.numpy()
