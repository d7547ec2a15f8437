"""Live training curves through Lightning's own loggers, beside ``history.csv``.

``logger`` names them (``"csv"``, ``"tensorboard"``, ``"mlflow"``, or several separated by
commas). Each writes under the run folder's ``logs/``: ``logs/csv/version_N/metrics.csv``,
``logs/tensorboard/version_N/``, and for mlflow a database ``logs/mlflow/mlflow.db`` unless
``MLFLOW_TRACKING_URI`` names a tracking server. Inside the run folder they belong to the
run's transaction: a run that fails or is interrupted takes its logs with it.

This module imports nothing heavy: the CLI checks the names when it reads them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

from timetok.core.errors import ConfigError

# Each logger -> the package it needs beyond timetok's own dependencies (None: none).
LOGGERS: dict[str, str | None] = {"csv": None, "tensorboard": "tensorboard", "mlflow": "mlflow"}
INSTALL_ALL = "pip install 'timetok[loggers]'"


def logger_names(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """The loggers ``value`` names: a comma list (``"csv,tensorboard"``), a list of such,
    or None or an empty list (none). Refuses an unknown name, an empty entry or a name
    given twice (``ConfigError``), and a logger whose package is not installed
    (``ImportError``)."""
    parts = [value] if isinstance(value, str) else list(value or ())
    if not parts:
        return ()
    names = [name.strip() for part in parts for name in str(part).split(",")]
    shown = ",".join(map(str, parts))
    valid = ", ".join(LOGGERS)
    if not all(names):
        raise ConfigError(f"logger {shown!r} holds an empty name; pass one or more of {valid}, "
                          "separated by commas")
    unknown = [name for name in names if name not in LOGGERS]
    if unknown:
        raise ConfigError(f"unknown logger {unknown[0]!r}; valid loggers: {valid}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"logger names {', '.join(twice)} more than once ({shown!r}); name "
                          f"each of {valid} at most once")
    for name in names:
        package = LOGGERS[name]
        if package is not None and importlib.util.find_spec(package) is None:
            raise ImportError(f"the {name} logger needs the {package} package, which is not "
                              f"installed: pip install {package} (or {INSTALL_ALL} for "
                              "every logger)")
    return tuple(names)


def make_loggers(names: Iterable[str], run_dir: Path) -> list:
    """Lightning loggers for ``names`` (as :func:`logger_names` returns them), writing
    under ``run_dir/logs``; none in the other processes of a distributed run, as the main
    process alone writes the run folder (an MLflow store would be opened by each)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:
        return []
    logs = Path(run_dir) / "logs"
    made = []
    for name in names:
        if name == "csv":
            from lightning.pytorch.loggers import CSVLogger

            made.append(CSVLogger(save_dir=logs, name="csv"))
        elif name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            # No hp_metric: a placeholder series TensorBoard would show beside the real ones.
            made.append(TensorBoardLogger(save_dir=logs, name="tensorboard",
                                          default_hp_metric=False))
        else:  # mlflow
            made.append(_mlflow(run_dir, logs / "mlflow"))
    return made


def _mlflow(run_dir: Path, store: Path):
    """An MLflow run named after ``run_dir``: on the server ``MLFLOW_TRACKING_URI`` names,
    else in a database of its own in ``store`` (recent MLflow refuses its older
    plain-file store), its artifacts beside it."""
    from lightning.pytorch.loggers import MLFlowLogger

    server = os.environ.get("MLFLOW_TRACKING_URI")
    if server:
        where = {"tracking_uri": server}
    else:
        store = store.resolve()
        store.mkdir(parents=True, exist_ok=True)
        where = {"tracking_uri": f"sqlite:///{store / 'mlflow.db'}",
                 "artifact_location": (store / "artifacts").as_uri()}
    return MLFlowLogger(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", "timetok"),
                        run_name=str(run_dir), **where)
