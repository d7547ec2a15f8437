"""Bad input to the forecast commands: one error line, exit 2, nothing written."""

import json
import os
from pathlib import Path

import pytest

from tests.forecast.cli_run import LM, RUN


def _forecast(pipeline, output, *extra, model="ft/H8", data=None):
    return ["forecast", "predict", "--model", pipeline["root"] / model, "--input",
            data or pipeline["data"], "--output", output, *extra]


@pytest.mark.parametrize("value", ["1e39", "1e300"])
def test_forecast_input_beyond_float32(cli, pipeline, make_csv, tmp_path, value):
    csv = make_csv("big.csv", rows=100, cells={(50, "a"): value})
    out = tmp_path / "f.csv"
    cli(*_forecast(pipeline, out, data=csv)).assert_error(f"'{value}'", "float32")
    assert not out.exists()


@pytest.mark.parametrize("truth", ["missing", "non-numeric", "folder", "three-columns"])
def test_forecast_checks_the_truth_before_writing(cli, pipeline, make_csv, tmp_path, truth):
    path = {"missing": tmp_path / "nope.csv",
            "non-numeric": make_csv("t.csv", rows=8, cells={(2, "b"): "abc"}),
            "folder": make_csv("dir/t.csv").parent,
            "three-columns": make_csv("t3.csv", rows=8, columns=("a", "b", "c"))}[truth]
    out = tmp_path / "f.csv"
    result = cli(*_forecast(pipeline, out, "--truth", path))
    result.assert_error("--truth", {"missing": "not found", "non-numeric": "'abc'",
                                    "folder": "is a folder",
                                    "three-columns": "3 column(s)"}[truth])
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_forecast_with_a_truth_plots_it(cli, pipeline, make_csv, tmp_path):
    out = tmp_path / "f.csv"
    result = cli(*_forecast(pipeline, out, "--truth", make_csv("t.csv", rows=5)))
    assert result.rc == 0, result.err
    assert out.is_file() and out.with_suffix(".png").is_file()


@pytest.mark.parametrize("name", ["x.png", "x", "x.txt"])
def test_forecast_output_must_be_a_csv(cli, pipeline, tmp_path, name):
    out = tmp_path / name
    cli(*_forecast(pipeline, out)).assert_error("--output", ".csv", name)
    assert list(tmp_path.iterdir()) == []


def test_forecast_over_its_own_input(cli, pipeline, tmp_path):
    import shutil

    csv = Path(shutil.copy(pipeline["data"], tmp_path / "a.csv"))
    before = csv.read_bytes()
    cli(*_forecast(pipeline, csv, data=csv)).assert_error("--output", "would overwrite",
                                                          "(--input")
    # Its plot (b.png) would land on an input named b.png.
    png = Path(shutil.copy(pipeline["data"], tmp_path / "b.png"))
    cli(*_forecast(pipeline, tmp_path / "b.csv", data=png)).assert_error("would overwrite",
                                                                         "b.png")
    truth = Path(shutil.copy(pipeline["data"], tmp_path / "t.csv"))
    cli(*_forecast(pipeline, truth, "--truth", truth)).assert_error("would overwrite",
                                                                    "(--truth")
    assert csv.read_bytes() == png.read_bytes() == truth.read_bytes() == before
    assert not (tmp_path / "b.csv").exists()


@pytest.mark.parametrize("seed", ["-1", "99999999999"])
def test_forecast_seed_out_of_range(cli, pipeline, tmp_path, seed):
    out = tmp_path / "f.csv"
    cli(*_forecast(pipeline, out, "--seed", seed)).assert_error("--seed", seed)
    assert not out.exists()


def test_forecast_with_a_model_without_heads(cli, pipeline, tmp_path):
    out = tmp_path / "f.csv"
    cli(*_forecast(pipeline, out, model="lm")).assert_error("no forecast heads",
                                                            "finetune", "--samples")
    assert not out.exists()


def test_forecaster_refuses_a_folder_without_the_scaler(pipeline, tmp_path):
    import shutil

    from timetok import Forecaster
    from timetok.core.errors import CheckpointError

    folder = Path(shutil.copytree(pipeline["ft"] / "H8", tmp_path / "H8"))
    sections = json.loads((folder / "data.json").read_text())
    del sections["scaler"]
    (folder / "data.json").write_text(json.dumps(sections))
    with pytest.raises(CheckpointError, match="training scaler.*data.json"):
        Forecaster.from_pretrained(folder)


def _writers(pipeline, base):
    """Each writing forecast command, its output under ``base``."""
    common = pipeline["common"]
    return {
        "pretrain": ["forecast", "pretrain", "--tokenizer", pipeline["tok"], *common, *LM,
                     "--context-points", "32", "--max-horizon", "16", "--save-path",
                     base / "lm"],
        "finetune": ["forecast", "finetune", "--model", pipeline["lm"], *common, *RUN, "--horizon",
                     "8", "--save-path", base / "ft"],
        "evaluate": ["forecast", "evaluate", "--model", pipeline["ft"], *common, "--out",
                     base / "eval"],
        "predict": _forecast(pipeline, base / "f.csv"),
    }


WRITER_FLAGS = {"pretrain": "--save-path", "finetune": "--save-path", "evaluate": "--out",
                "predict": "--output"}


@pytest.mark.parametrize("command", list(WRITER_FLAGS))
def test_lm_output_under_a_regular_file(cli, pipeline, tmp_path, command):
    blocker = tmp_path / "data.csv"
    blocker.write_text("x\n")
    result = cli(*_writers(pipeline, blocker / "sub")[command])
    result.assert_error(WRITER_FLAGS[command], "data.csv is a file, not a folder")
    assert blocker.read_text() == "x\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", list(WRITER_FLAGS))
def test_lm_output_in_a_read_only_folder(cli, pipeline, tmp_path, command):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = cli(*_writers(pipeline, folder)[command])
        result.assert_error(WRITER_FLAGS[command], "not writable")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("command", list(WRITER_FLAGS))
def test_lm_output_in_a_folder_the_process_may_not_write(cli, pipeline, tmp_path, monkeypatch,
                                                         command):
    """The read-only case for root too: the check asks os.access, as a non-root run would."""
    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        Path(path) != folder and real_access(path, mode, **kw)))
    result = cli(*_writers(pipeline, folder)[command])
    result.assert_error(WRITER_FLAGS[command], "not writable")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("names", ["", ",", " "])
@pytest.mark.parametrize("command", ["pretrain", "finetune", "evaluate"])
def test_lm_dataset_list_naming_nothing(cli, pipeline, tmp_path, command, names):
    args = _writers(pipeline, tmp_path)[command]
    args[args.index("--dataset") + 1] = names
    cli(*args).assert_error("--dataset", "no dataset")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("horizon", "fragments"),
    [("8,8", ["--horizon", "[8] more than once"]),
     ("6,8,6", ["--horizon", "[6] more than once"]),
     ("8,33", ["--horizon", "[33]", "--max-horizon 16"]),
     ("0", ["--horizon", "positive integers"]),
     ("8,x", ["--horizon", "'8,x'"]),
     ("", ["--horizon", "at least one"]),
     (",", ["--horizon", "at least one"])],
)
def test_finetune_checks_every_horizon_before_training(cli, pipeline, tmp_path, horizon,
                                                       fragments):
    out = tmp_path / "h"
    cli("forecast", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN, "--horizon",
        horizon, "--save-path", out).assert_error(*fragments)
    assert not out.exists()


@pytest.mark.parametrize("seed", ["-1", "99999999999"])
def test_finetune_seed_out_of_range(cli, pipeline, tmp_path, seed):
    out = tmp_path / "s"
    cli("forecast", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN, "--horizon",
        "8", "--seed", seed, "--save-path", out).assert_error("--seed")
    assert not out.exists()


def test_evaluate_of_a_tokenizer_folder(cli, pipeline, tmp_path):
    out = tmp_path / "eval"
    result = cli("forecast", "evaluate", "--model", pipeline["tok"], *pipeline["common"],
                 "--out", out)
    result.assert_error("'tokenizer' model", "finetuned forecaster", "tokenizer eval")
    assert "without forecast heads" not in result.err
    assert not out.exists()


def test_evaluate_says_where_it_wrote_the_report(cli, pipeline, tmp_path):
    out = tmp_path / "eval"
    result = cli("forecast", "evaluate", "--model", pipeline["ft"] / "H6", *pipeline["common"],
                 "--out", out, "--stride", "8")
    assert result.rc == 0, result.err
    assert result.out.rstrip().splitlines()[-1] == f"report in {out}"
    assert (out / "report.md").is_file() and (out / "report.json").is_file()


def test_a_forecaster_config_value_of_the_wrong_type(cli, pipeline, tmp_path):
    import shutil

    folder = Path(shutil.copytree(pipeline["ft"] / "H8", tmp_path / "H8"))
    config = json.loads((folder / "config.json").read_text())
    config["tokenizer"]["compression_factor"] = "4"
    (folder / "config.json").write_text(json.dumps(config))
    out = tmp_path / "f.csv"
    cli(*_forecast(pipeline, out, model=folder)).assert_error(
        "config.json", "'tokenizer.compression_factor' must be an integer", "'4'")
    assert not out.exists()
