"""Recipe configs: one dataclass per training stage, read from YAML, flags or Python.

A stage's config subclasses :class:`RunConfig`: its own fields (data, model, optimiser)
beside the run's (epochs, steps, devices, seed, threads). Field names are the command's
flag names with underscores, so one YAML file under ``configs/`` serves both
``timetok <system> <stage> --config FILE`` and ``Config.from_yaml(FILE)`` in Python, and
the recipe both call is the same function.

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo(RunConfig):
...     lr: float = 1e-3
>>> Demo.from_dict({"lr": 0.01, "max_steps": 5}).run_options().max_steps
5
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from timetok.core.errors import ConfigError

C = TypeVar("C", bound="RunConfig")
# A command's settings that are about the command (its --config file, --json), not the run.
COMMAND_SETTINGS = ("config_file", "as_json")


@dataclass
class RunConfig:
    """How to run a training stage; where its run folder goes.

    ``n_epochs``, ``max_steps`` and ``max_time`` (minutes) budget the run: a budget in
    epochs or steps makes the result independent of the machine's load. ``logger`` names
    loggers of live training curves (``"csv"``, ``"tensorboard"``, ``"mlflow"``, or several
    separated by commas; see :mod:`timetok.core.train.loggers`), written under
    ``save_path/logs``; like ``progress`` it is how this call is watched, not a setting of
    the run, so ``run.yaml`` leaves it out.
    """

    save_path: str | None = None
    n_epochs: int | None = None
    max_steps: int = -1
    max_time: float | None = None
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    accelerator: str = "auto"
    amp: bool = False
    val_every: int | None = None
    checkpoint_every: int = 100
    num_workers: int = 0
    patience: int | None = None
    seed: int = 42
    threads: int | None = None  # None: $TIMETOK_THREADS, else the idle cores
    resume: bool = False  # continue the run in save_path from its last checkpoint
    overwrite: bool = False  # replace a run already in save_path
    progress: bool = True
    logger: str | None = None

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any], where: str = "config",
                  ignore: tuple[str, ...] = ()) -> C:
        """A config from ``values`` (keys may use ``-`` or ``_``); an unknown key is an
        error naming it, keys in ``ignore`` are skipped."""
        names = cls.field_names()
        kwargs = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name in ignore:
                continue
            if name not in names:
                raise ConfigError(f"unknown setting {key!r} in {where}; valid settings: "
                                  f"{', '.join(sorted(names))}")
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def from_settings(cls: type[C], settings: dict[str, Any], ignore: tuple[str, ...] = (),
                      **changes: Any) -> C:
        """A config from a command's merged settings: ``--resume FOLDER`` (whose folder the
        settings already hold as ``save_path``) becomes ``resume=True``; ``changes`` win."""
        values = settings | {"resume": bool(settings.get("resume"))} | changes
        return cls.from_dict(values, where="the command line",
                             ignore=(*COMMAND_SETTINGS, *ignore))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each field's default: the command's flags take theirs from here, so a default
        lives in the config alone."""
        return {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING
                else f.default for f in dataclasses.fields(cls)}

    @classmethod
    def from_yaml(cls: type[C], path: str | Path, **overrides: Any) -> C:
        """A config from a YAML mapping of setting: value, then ``overrides``."""
        from timetok.core.cli_options import read_yaml

        values = read_yaml(path, "config file") | overrides
        return cls.from_dict(values, where=str(path))

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def settings(self) -> dict[str, Any]:
        """What a run records in ``run.yaml``: every setting but how this call ran."""
        skip = {"resume", "overwrite", "progress", "logger"}
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    def check_apart(self, folder: str | Path | None = None) -> None:
        """Refuse a run folder (default ``save_path``) that is, holds or lies inside what
        the run reads: its model, tokenizer or data (:mod:`timetok.core.paths`)."""
        from timetok.core.paths import check_apart, read_paths

        folder = folder if folder is not None else self.save_path
        check_apart(folder, "save_path", read_paths(self.to_dict()))

    def check_new_run(self, folder: str | Path | None = None, resumable: bool = True) -> None:
        """Refuse to start in ``folder`` (default ``save_path``) a run that would write
        over what it reads (:meth:`check_apart`), or over an earlier run unless this
        config resumes or overwrites it (``resumable=False``: a recipe that cannot resume).
        Other processes of a distributed run find the main process's ``run.yaml`` and do
        not check it."""
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        folder = Path(folder if folder is not None else self.save_path)
        self.check_apart(folder)
        if self.resume or self.overwrite or rank_zero_only.rank != 0:
            return
        if (folder / "run.yaml").exists():
            resume = "set resume=True to continue it, " if resumable else ""
            raise ConfigError(f"{folder} already holds a run; {resume}overwrite=True to "
                              "replace it, or another save_path")

    def run_options(self):
        """The Trainer's side of this config."""
        from timetok.core.train.loggers import logger_names
        from timetok.core.train.runner import RunOptions

        return RunOptions(
            n_epochs=self.n_epochs, max_steps=self.max_steps, devices=self.devices,
            num_nodes=self.num_nodes, strategy=self.strategy, accelerator=self.accelerator,
            amp=self.amp, val_every=self.val_every, checkpoint_every=self.checkpoint_every,
            max_time=self.max_time, seed=self.seed, progress=self.progress,
            patience=self.patience, threads=self.threads, loggers=logger_names(self.logger),
        )
