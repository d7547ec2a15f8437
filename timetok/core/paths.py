"""Where a command or recipe may write: never onto, over or into what it reads.

Every output (a run folder, a report folder, a file) is compared with every input (a data
file or folder, a model folder) once both are resolved, so ``..``, a symlink or a relative
spelling of the same place is caught. An output that *is* an input would overwrite it; one
that *holds* an input would, replaced (``overwrite``) or rolled back, take the input with
it; one that *lies inside* an input writes into the user's data or model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from timetok.core.errors import ConfigError

# The settings by which every system's configs and commands name what a run reads.
INPUT_FIELDS = ("model", "tokenizer", "tokenizer_from", "data_path", "data_dir", "generated")

Where = str | os.PathLike


def overlap(output: Where, source: Where) -> str | None:
    """How ``output`` meets ``source`` once both are resolved, as a phrase; None when apart.

    >>> overlap("runs/m", "runs/x/../m")
    'would overwrite'
    >>> overlap("runs", "runs/m")
    'holds'
    >>> overlap("runs/m/eval", "runs/m")
    'lies inside'
    >>> overlap("runs/m2", "runs/m") is None
    True
    """
    out, src = Path(output).resolve(), Path(source).resolve()
    if out == src:
        return "would overwrite"
    if out in src.parents:
        return "holds"
    if src in out.parents:
        return "lies inside"
    return None


def _kind(source: Path) -> str:
    from timetok.core.model_folder import CONFIG_NAME

    if (source / CONFIG_NAME).is_file():
        return "model folder"
    if source.is_dir():
        return "folder"
    return "file" if source.exists() else "path"


def check_apart(output: Where, name: str, inputs: Mapping[str, Where | None],
                may_lie_inside: Iterable[str] = ()) -> None:
    """Refuse an ``output`` (the setting ``name``) that is, holds or lies inside one of
    ``inputs`` (setting -> path; None where not given), before anything is read or
    written. An output may lie inside the inputs named in ``may_lie_inside`` (a report
    folder inside the model it evaluates); it may never be or hold one.

    >>> check_apart("runs/m/ft", "save_path", {"model": "runs/m"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    timetok.core.errors.ConfigError: save_path='runs/m/ft' lies inside the path it reads ...
    """
    for key, source in inputs.items():
        if not source:
            continue
        relation = overlap(output, source)
        if relation is None or (relation == "lies inside" and key in may_lie_inside):
            continue
        raise ConfigError(f"{name}={str(output)!r} {relation} the {_kind(Path(source))} it "
                          f"reads ({key}={str(source)!r}); choose another {name}=PATH")


def read_paths(settings: Mapping[str, object]) -> dict[str, Where | None]:
    """The inputs among a config's or a command's ``settings`` (:data:`INPUT_FIELDS`)."""
    return {key: settings[key] for key in INPUT_FIELDS if key in settings}  # type: ignore[misc]
