import pytest
import torch

from timetok.cli import main
from timetok.core.errors import ConfigError
from timetok.core.threads import ENV, available_cores, idle_cores, resolve_threads, use_threads


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_an_explicit_count_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(ENV, "2")
    assert resolve_threads(1) == 1
    assert resolve_threads() == 2


def test_without_a_count_the_idle_cores_are_used(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert 1 <= resolve_threads() == idle_cores() <= available_cores()


def test_a_busy_machine_gets_one_thread(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr("os.getloadavg", lambda: (available_cores() + 3.0, 0.0, 0.0))
    assert resolve_threads() == 1


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_environment_value_is_refused(monkeypatch, value):
    monkeypatch.setenv(ENV, value)
    with pytest.raises(ConfigError, match=ENV):
        resolve_threads()


def test_use_threads_sets_torch():
    assert use_threads(1) == 1
    assert torch.get_num_threads() == 1


def test_the_threads_flag_sets_torch_before_the_command_runs(tmp_path):
    # The command fails on its missing model folder after the flag was applied.
    torch.set_num_threads(2)
    assert main(["tokenizer", "eval", "--model", str(tmp_path / "none"), "--threads", "1"]) == 2
    assert torch.get_num_threads() == 1


def test_a_zero_threads_flag_is_a_usage_error(capsys):
    assert main(["tokenizer", "train", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
