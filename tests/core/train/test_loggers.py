"""Live training curves (``--logger``): the names, the packages they need, and the files a
run writes into its folder (or, failing, does not leave behind)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import yaml

from tests.core.train.test_seams import ScoredModule, ToyData, options
from timetok.core.errors import ConfigError, TrainingError
from timetok.core.train.loggers import logger_names
from timetok.core.train.runner import train_and_export

pytestmark = pytest.mark.usefixtures("isolated_env")

MAE = ["mae", "pretrain", "--dataset", "ecg200", "--max-steps", "4", "--batch-size", "16",
       "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-ff", "32",
       "--regressor-layers", "1", "--vocab-size", "16", "--no-progress", "--accelerator", "cpu",
       "--devices", "1"]


def rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(("value", "names"), [
    (None, ()), ([], ()), ("csv", ("csv",)), (" csv ", ("csv",)), (["csv"], ("csv",)),
])
def test_names_from_a_comma_list_or_a_list(value, names):
    assert logger_names(value) == names


@pytest.mark.parametrize(("value", "fragment"), [
    ("wandb", "unknown logger 'wandb'"), ("", "empty name"), ("csv,", "empty name"),
    (" , ", "empty name"), ("csv,csv", "names csv more than once"),
    (["csv", "csv"], "names csv more than once"),
])
def test_bad_names_are_refused_naming_the_valid_ones(value, fragment):
    with pytest.raises(ConfigError, match=fragment) as err:
        logger_names(value)
    assert "csv, tensorboard, mlflow" in str(err.value)


def test_a_logger_without_its_package_says_what_to_install(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if mlflow were not installed
    with pytest.raises(ImportError, match=r"pip install mlflow \(or pip install "
                                          r"'timetok\[loggers\]'"):
        logger_names("csv,mlflow")
    run = tmp_path / "run"
    cli(*MAE, "--logger", "csv", "--logger", "mlflow", "--save-path", run).assert_error(
        "--logger", "pip install mlflow", "timetok[loggers]")
    assert not run.exists()


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--logger", "nope"], "unknown logger 'nope'"),
    (["--logger", "csv", "--logger", "csv"], "names csv more than once"),
    (["--logger", "csv,,tensorboard"], "empty name"),
])
def test_bad_flags_are_one_line_before_any_work(cli, tmp_path, flags, fragment):
    run = tmp_path / "run"
    cli(*MAE, *flags, "--save-path", run).assert_error("--logger", fragment,
                                                       "csv, tensorboard, mlflow")
    assert not run.exists()


@pytest.mark.parametrize("text", ["logger: nope", "logger: [csv, nope]"])
def test_a_config_file_names_loggers_as_the_flag_does(cli, tmp_path, text):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    run = tmp_path / "run"
    cli(*MAE, "--config", config, "--save-path", run).assert_error(
        "bad value for 'logger'", "unknown logger 'nope'")
    assert not run.exists()


def test_every_training_command_takes_the_flag():
    import click

    from timetok.cli import cli as root

    def commands(group):
        for command in group.commands.values():
            yield from commands(command) if isinstance(command, click.Group) else [command]

    training = [c for c in commands(root) if any(p.name == "max_steps" for p in c.params)]
    assert len({c.callback for c in training}) >= 8  # every stage of the five systems
    assert all(any(p.name == "logger" for p in c.params) for c in training)


def test_a_csv_logger_writes_each_training_step_and_the_validation(cli, tmp_path):
    run = tmp_path / "run"
    result = cli(*MAE, "--logger", "csv", "--save-path", run)
    assert result.rc == 0, result.err
    (metrics,) = run.glob("logs/csv/*/metrics.csv")
    logged = rows(metrics)
    assert [r["step"] for r in logged if r["train_loss_step"]] == ["0", "1", "2", "3"]
    assert len([r for r in logged if r["val_loss"]]) == 1
    assert len(rows(run / "history.csv")) == 1  # beside the history, which stays as it was
    assert "logger" not in yaml.safe_load((run / "run.yaml").read_text())  # how it was watched


def test_a_tensorboard_logger_writes_the_curves(cli, tmp_path):
    pytest.importorskip("tensorboard", reason="--logger tensorboard needs tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = cli(*MAE, "--logger", "tensorboard", "--save-path", run)
    assert result.rc == 0, result.err
    (version,) = (run / "logs" / "tensorboard").iterdir()
    events = EventAccumulator(str(version))
    events.Reload()
    assert [e.step for e in events.Scalars("train_loss_step")] == [0, 1, 2, 3]
    assert len(events.Scalars("val_loss")) == 1


def test_a_run_keeps_its_logs_and_a_failed_run_leaves_none(tmp_path):
    kept, failed = tmp_path / "kept", tmp_path / "failed"
    train_and_export(ScoredModule([0.5, 0.6]), ToyData(), kept,
                     options(n_epochs=2, loggers=("csv",)))
    (metrics,) = kept.glob("logs/csv/*/metrics.csv")
    assert len([r for r in rows(metrics) if r["val_score"]]) == 2  # one per epoch
    with pytest.raises(TrainingError, match="diverged"):
        train_and_export(ScoredModule([0.1] * 3, poison_at=6), ToyData(), failed,
                         options(n_epochs=3, loggers="csv"))
    assert not failed.exists()
