import doctest
import os

import pytest

from timetok.core import paths
from timetok.core.errors import ConfigError
from timetok.core.paths import check_apart, overlap, read_paths


def test_doctests():
    assert doctest.testmod(paths).failed == 0


@pytest.mark.parametrize(("output", "relation"), [
    ("m", "would overwrite"), ("x/../m", "would overwrite"), ("link", "would overwrite"),
    (".", "holds"), ("m/eval", "lies inside"), ("link/eval", "lies inside"), ("m2", None),
    ("other/m", None),
])
def test_overlap_compares_resolved_paths(tmp_path, monkeypatch, output, relation):
    (tmp_path / "m").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    assert overlap(output, "m") == relation
    assert overlap(tmp_path / output, tmp_path / "m") == relation


def test_check_apart_names_both_paths_the_kind_and_the_fix(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    with pytest.raises(ConfigError, match=rf"^save_path='{model}' would overwrite the model "
                                          rf"folder it reads \(model='{model}'\); choose "
                                          r"another save_path=PATH$"):
        check_apart(model, "save_path", {"model": model})
    with pytest.raises(ConfigError, match=rf"^out='{tmp_path}' holds the file it reads "
                                          rf"\(data_path='{data}'\)"):
        check_apart(tmp_path, "out", {"data_path": data})
    with pytest.raises(ConfigError, match="lies inside the path it reads"):  # not there yet
        check_apart(tmp_path / "x" / "run", "save_path", {"data_dir": tmp_path / "x",
                                                          "model": None})
    (tmp_path / "x").mkdir()
    with pytest.raises(ConfigError, match="lies inside the folder it reads"):
        check_apart(tmp_path / "x" / "run", "save_path", {"data_dir": tmp_path / "x"})


def test_an_output_may_lie_inside_the_inputs_named_but_never_be_or_hold_them(tmp_path):
    model = tmp_path / "m"
    check_apart(model / "eval", "out", {"model": model}, may_lie_inside=("model",))
    check_apart(tmp_path / "elsewhere", "out", {"model": model, "data_path": None})
    for out in (model, tmp_path):
        with pytest.raises(ConfigError):
            check_apart(out, "out", {"model": model}, may_lie_inside=("model",))


def test_read_paths_picks_the_inputs_of_any_settings():
    settings = {"model": "m", "data_path": None, "save_path": "s", "lr": 0.1, "out": "o"}
    assert read_paths(settings) == {"model": "m", "data_path": None}


def test_a_run_config_refuses_a_folder_on_what_it_reads(tmp_path):
    from timetok.tokenizer.config import TokenizerTrainConfig

    data = tmp_path / "series.csv"
    config = TokenizerTrainConfig(dataset="custom", data_path=str(data),
                                  save_path=str(tmp_path), overwrite=True)
    with pytest.raises(ConfigError, match="save_path=.* holds the path it reads"):
        config.check_new_run()
    config.replace(save_path=str(tmp_path / "run")).check_new_run()
    assert os.listdir(tmp_path) == []
