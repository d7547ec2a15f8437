"""``save_pretrained`` / ``from_pretrained`` for every model: ``config.json`` + safetensors.

A model folder holds ``config.json`` (the config dataclass plus ``model_type``) and
``model.safetensors``; it is dispatched through ``MODEL_REGISTRY``. Nothing is unpickled.
Loading compares every key and shape and refuses weights that do not fit the config.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from timetok.core.errors import CheckpointError, ConfigError
from timetok.core.utils import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_REGISTRY: dict[str, type[PretrainedModel]] = {}


@dataclass
class LoadReport:
    """How a state dict lined up with a model, key by key."""

    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def fraction(self) -> float:
        """The share of the model's tensors that loaded (0 for a model without any)."""
        expected = len(self.matched) + len(self.missing) + len(self.mismatched)
        return len(self.matched) / expected if expected else 0.0

    def lines(self) -> list[str]:
        """Every key with what happened to it, for a person to read before training."""
        rows = [f"matched     {key}" for key in self.matched]
        rows += [f"missing     {key}" for key in self.missing]
        rows += [f"unexpected  {key}" for key in self.unexpected]
        rows += [f"mis-shaped  {key}: file {list(got)} vs model {list(want)}"
                 for key, got, want in self.mismatched]
        return rows

    def summary(self) -> str:
        parts = [f"{len(self.matched)} matched"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing (e.g. {self.missing[0]})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected (e.g. {self.unexpected[0]})")
        if self.mismatched:
            key, got, want = self.mismatched[0]
            parts.append(
                f"{len(self.mismatched)} mis-shaped (e.g. {key}: file {list(got)} vs "
                f"model {list(want)})"
            )
        return ", ".join(parts)


def compare_state_dicts(
    loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]
) -> LoadReport:
    report = LoadReport()
    for key, tensor in expected.items():
        if key not in loaded:
            report.missing.append(key)
        elif tuple(loaded[key].shape) != tuple(tensor.shape):
            report.mismatched.append((key, tuple(loaded[key].shape), tuple(tensor.shape)))
        else:
            report.matched.append(key)
    report.unexpected = [key for key in loaded if key not in expected]
    return report


def read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}; check the model folder")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); re-export the model") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object; re-export the model")
    return data


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"weights not found: {path}; check the model folder")
    try:
        state = load_file(path)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path} is truncated or corrupt ({reason}); re-export or re-download the model"
        ) from None
    # A NaN weight makes every answer NaN: refuse it here rather than print NaN figures,
    # write NaN forecasts or train from it and fail late.
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"weights in {path.parent} hold non-finite values (tensor {name}); re-export "
                "or retrain the model"
            )
    return state


def _fits(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON may stand for a config field of type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict | hint)
    return True


def _describe(hint: Any, plural: bool = False) -> str:
    """A field type in words: ``int | None`` -> "an integer or null"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg, plural) for arg in args)
    if origin is list:
        return "lists" if plural else f"a list of {_describe(args[0], plural=True)}"
    words = {type(None): ("null", "nulls"), bool: ("true or false", "booleans"),
             int: ("an integer", "integers"), float: ("a number", "numbers"),
             str: ("a string", "strings")}
    if hint in words:
        return words[hint][plural]
    return "objects" if plural else "an object"


def check_config_data(config_class: type, data: dict[str, Any], where: str,
                      prefix: str = "") -> None:
    """Refuse keys ``config_class`` does not have and values of the wrong JSON type,
    naming the setting and the type it takes (nested configs are checked too)."""
    hints = typing.get_type_hints(config_class)
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise CheckpointError(
            f"{where} has settings this version does not know "
            f"({', '.join(prefix + name for name in unknown)}); upgrade timetok or re-export "
            "the model"
        )
    for name, value in data.items():
        hint = hints[name]
        if not _fits(value, hint):
            raise CheckpointError(
                f"{where}: setting '{prefix}{name}' must be {_describe(hint)}, got {value!r}; "
                "fix the file or re-export the model"
            )
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            check_config_data(hint, value, where, f"{prefix}{name}.")


class PretrainedModel(nn.Module):
    """Base of every timetok model: a config dataclass in, folders out and back."""

    model_type: ClassVar[str]
    config_class: ClassVar[type]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "model_type" in cls.__dict__:
            MODEL_REGISTRY[cls.model_type] = cls

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors``, each atomically."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"model_type": self.model_type, **dataclasses.asdict(self.config)}
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(state, tmp, metadata={"format": "pt", "model_type": self.model_type})
        atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2))
        return directory

    @classmethod
    def config_from_dict(cls, data: dict[str, Any], where: str = "config.json"):
        check_config_data(cls.config_class, data, where)
        try:
            return cls.config_class(**data)
        except (TypeError, ConfigError) as err:
            raise CheckpointError(f"{where} is not a valid configuration: {err}") from None

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str = "cpu"):
        """Load a model folder; the class is chosen by ``model_type`` when called on the base."""
        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"model folder not found: {directory}; check the path")
        data = read_json(directory / CONFIG_NAME, "model config")
        model_type = data.pop("model_type", None)
        target = MODEL_REGISTRY.get(model_type) if cls is PretrainedModel else cls
        if target is None or model_type != target.model_type:
            raise CheckpointError(
                f"{directory} holds a {model_type!r} model, not a "
                f"{getattr(cls, 'model_type', 'known')!r} one; pass the right model folder"
            )
        model = target(target.config_from_dict(data, str(directory / CONFIG_NAME)))
        model.load_weights(read_weights(directory / WEIGHTS_NAME), str(directory))
        model.to(map_location)
        model.eval()
        return model

    def load_weights(self, state: dict[str, torch.Tensor], where: str,
                     new: tuple[str, ...] = ()) -> LoadReport:
        """Load a state dict, refusing any missing, unexpected or mis-shaped key.

        Keys under the prefixes in ``new`` (parts added since, e.g. a fresh head) may be
        missing; they keep their initialisation.
        """
        report = compare_state_dicts(state, self.state_dict())
        missing = [key for key in report.missing if not key.startswith(new)] if new else (
            report.missing)
        if missing or report.unexpected or report.mismatched:
            raise CheckpointError(
                f"weights in {where} do not fit this configuration ({report.summary()}); "
                "they come from another model or configuration"
            )
        self.load_state_dict(state, strict=not new)
        logger.info("loaded %s: %s", where, report.summary())
        return report


MIN_BACKBONE_SHARE = 0.95


def warm_start(model: nn.Module, directory: str | os.PathLike, new: tuple[str, ...] = (),
               allow_partial: bool = False) -> LoadReport:
    """Start ``model`` from the weights of a pretrained folder, key by key; returns the
    report of every key (matched, missing, unexpected, mis-shaped).

    The *backbone* is every tensor not under a prefix in ``new`` (parts the pretrained
    model lacks, a fresh head). Refuses (CheckpointError, the report as details) when less
    than 95 % of the backbone loads, unless ``allow_partial``; tensors that do not load
    keep their initialisation.
    """
    directory = Path(directory)
    state = read_weights(directory / WEIGHTS_NAME)
    expected = model.state_dict()
    report = compare_state_dicts(state, expected)
    backbone = [key for key in expected if not key.startswith(new)] if new else list(expected)
    loaded = len(set(report.matched).intersection(backbone))
    share = loaded / max(len(backbone), 1)
    if share < MIN_BACKBONE_SHARE and not allow_partial:
        raise CheckpointError(
            f"only {loaded} of the backbone's {len(backbone)} tensors ({100 * share:.0f} %, "
            f"95 % needed) load from {directory}: its weights come from another model or "
            "version; pass the right pretrained folder, or allow_partial=True to train the "
            "rest from new weights",
            details="\n".join(report.lines()))
    model.load_state_dict({key: state[key] for key in report.matched}, strict=False)
    logger.info("loaded %s: %s (backbone %.0f %%)", directory, report.summary(), 100 * share)
    return report


# Everything a model folder holds beside its weights that the data need (the scaler, class
# labels, the variable vocabulary, image geometry, calibration) lives in one file, one
# section per kind of fact, read and written only here.
DATA_NAME = "data.json"
# Folders exported before data.json kept each section in a file of its own.
LEGACY_DATA_FILES = {
    "scaler": "scaler.json",
    "records_scaler": "records_scaler.json",
    "variables": "variables.json",
    "records": "records.json",
    "labels": "labels.json",
    "images": "images.json",
    "calibration": "calibration.json",
}


def write_data_section(directory: str | os.PathLike, section: str, value: Any) -> Path:
    """Write (or replace) one section of ``directory/data.json``, keeping the others."""
    path = Path(directory) / DATA_NAME
    sections = read_json(path, "data file") if path.is_file() else {}
    sections[section] = value
    atomic_write_text(path, json.dumps(sections, indent=2) + "\n")
    return path


def read_data_section(directory: str | os.PathLike, section: str, required: bool = True,
                      what: str = "") -> Any:
    """One section of the model folder's data file (or of the file an older export kept it
    in); None when it is absent and not ``required``, else an error naming the file."""
    directory = Path(directory)
    path = directory / DATA_NAME
    if path.is_file():
        sections = read_json(path, "data file")
        if section in sections:
            return sections[section]
    legacy = directory / LEGACY_DATA_FILES.get(section, f"{section}.json")
    if legacy.is_file():
        return read_json(legacy, section)
    if not required:
        return None
    raise CheckpointError(
        f"{directory} has no {what or section} (section {section!r} of {DATA_NAME}); "
        "re-export the model with the data it was trained on"
    )
