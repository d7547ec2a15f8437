import doctest
from dataclasses import dataclass

import pytest

from timetok.core import config as config_module
from timetok.core.config import RunConfig
from timetok.core.errors import ConfigError


@dataclass
class StageConfig(RunConfig):
    dataset: str = "etth1"
    lr: float = 1e-3


def test_yaml_settings_use_flag_spellings_and_overrides_win(tmp_path):
    path = tmp_path / "stage.yaml"
    path.write_text("dataset: ettm1\nmax-steps: 50\nlr: 0.01\n")
    config = StageConfig.from_yaml(path, lr=0.5)
    assert (config.dataset, config.max_steps, config.lr) == ("ettm1", 50, 0.5)


def test_an_unknown_setting_is_named(tmp_path):
    path = tmp_path / "stage.yaml"
    path.write_text("datset: ettm1\n")
    with pytest.raises(ConfigError, match="unknown setting 'datset'"):
        StageConfig.from_yaml(path)


def test_run_options_carry_the_budget_seed_threads_and_loggers():
    options = StageConfig(max_steps=7, seed=3, threads=1, logger="csv").run_options()
    assert (options.max_steps, options.seed, options.threads) == (7, 3, 1)
    assert options.loggers == ("csv",)


def test_run_yaml_settings_leave_out_how_the_call_ran():
    settings = StageConfig(overwrite=True, logger="csv").settings()
    assert "overwrite" not in settings and "logger" not in settings
    assert settings["dataset"] == "etth1"


def test_bad_run_settings_are_refused():
    with pytest.raises(ConfigError, match="threads must be >= 1"):
        StageConfig(threads=0).run_options()
    with pytest.raises(ConfigError, match="unknown logger 'csvv'"):
        StageConfig(logger="csvv").run_options()


def test_the_docstring_example_runs():
    assert doctest.testmod(config_module).failed == 0


def test_a_new_run_refuses_an_earlier_one_unless_it_resumes_or_overwrites(tmp_path):
    (tmp_path / "run.yaml").write_text("lr: 0.1\n")
    with pytest.raises(ConfigError, match="already holds a run; set resume=True"):
        StageConfig(save_path=str(tmp_path)).check_new_run()
    with pytest.raises(ConfigError, match="already holds a run; overwrite=True"):
        StageConfig().check_new_run(tmp_path, resumable=False)
    StageConfig(save_path=str(tmp_path), resume=True).check_new_run()
    StageConfig(save_path=str(tmp_path), overwrite=True).check_new_run()
    StageConfig().check_new_run(tmp_path / "elsewhere")


def test_a_commands_settings_become_a_config_and_its_defaults_are_the_configs():
    settings = {"dataset": "ettm1", "resume": "runs/x", "config_file": "a.yaml",
                "as_json": True, "lr": 0.5}
    config = StageConfig.from_settings(settings, lr=0.1)
    assert (config.dataset, config.resume, config.lr) == ("ettm1", True, 0.1)
    assert StageConfig.defaults()["lr"] == 1e-3 and StageConfig.defaults()["seed"] == 42
