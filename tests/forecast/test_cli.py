"""The forecaster through the CLI: pretrain -> finetune -> evaluate -> predict."""

import json

import numpy as np
import pytest
import torch

from tests.forecast.cli_run import LM, RUN
from timetok.forecast.model import TokenForecaster


def test_pretraining_keeps_the_tokenizer_weights(pipeline):
    from timetok.tokenizer.model import TokenizerModel

    tokenizer = TokenizerModel.from_pretrained(pipeline["tok"])
    lm = TokenForecaster.from_pretrained(pipeline["lm"])
    for key, value in tokenizer.state_dict().items():
        assert torch.equal(lm.tokenizer.state_dict()[key], value), key
    assert (pipeline["tok"] / "model.safetensors").read_bytes() == pipeline["tok_before"]
    history = (pipeline["lm"] / "history.csv").read_text()
    for column in ("val_perplexity", "val_top1", "val_top5"):
        assert column in history


def test_finetune_writes_one_model_per_horizon(pipeline):
    for horizon in (8, 6):
        model = TokenForecaster.from_pretrained(pipeline["ft"] / f"H{horizon}")
        assert model.config.horizon == horizon
        sections = json.loads((pipeline["ft"] / f"H{horizon}" / "data.json").read_text())
        assert len(sections["scaler"]["mean"]) == 2
        calibration = sections["calibration"]
        assert calibration["head"] == "blend" and calibration["horizon"] == horizon
        assert not (pipeline["ft"] / f"H{horizon}" / "scaler.json").exists()


def test_evaluate_reports_every_method(cli, pipeline):
    result = cli("forecast", "evaluate", "--model", pipeline["ft"], *pipeline["common"], "--json",
                 "--samples", "4", "--sample-stride", "1")
    assert result.rc == 0, result.err
    report = json.loads(result.out)
    methods = {(row["H"], row["method"]) for row in report["results"]}
    for horizon in (6, 8):
        for method in ("timetok-decoder", "timetok-linear", "timetok-blend", "repeat-last",
                       "dlinear", "tokenizer-ceiling"):
            assert (horizon, method) in methods
    sampled = [r for r in report["results"] if "crps" in r]
    assert sampled and all(r["crps"] > 0 for r in sampled)
    assert (pipeline["ft"] / "eval-custom" / "report.md").is_file()


def test_finetune_blends_the_decoder_head_with_the_skip_on_validation(pipeline):
    summary = json.loads((pipeline["ft"] / "H8" / "training.json").read_text())
    assert summary["val_mse_blend"] <= min(summary["val_mse_skip"], summary["val_mse_decoder"])
    model = TokenForecaster.from_pretrained(pipeline["ft"] / "H8")
    assert model.outputs == ["decoder", "linear", "blend"]
    assert model.blend_weight.shape == (8, 2)  # per step and channel: the CSV's a and b
    assert ((model.blend_weight >= 0) & (model.blend_weight <= 1)).all()
    assert model.blend_weight.mean() == pytest.approx(summary["blend_weight_mean"])


def test_forecast_point_and_samples(cli, pipeline, tmp_path):
    out = tmp_path / "f.csv"
    result = cli("forecast", "predict", "--model", pipeline["ft"] / "H8", "--input",
                 pipeline["data"],
                 "--output", out)
    assert result.rc == 0, result.err
    assert out.read_text().splitlines()[0] == "step,a_forecast,b_forecast"
    blend = np.loadtxt(out, delimiter=",", skiprows=1)
    result = cli("forecast", "predict", "--model", pipeline["ft"] / "H8", "--input",
                 pipeline["data"],
                 "--output", out, "--head", "blend")
    assert result.rc == 0, result.err
    np.testing.assert_allclose(np.loadtxt(out, delimiter=",", skiprows=1), blend)
    result = cli("forecast", "predict", "--model", pipeline["ft"] / "H8", "--input",
                 pipeline["data"],
                 "--output", out, "--samples", "20", "--horizon", "12", "--top-p", "0.9")
    assert result.rc == 0, result.err
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    assert rows.shape == (12, 1 + 2 * 5)
    q10, q50, q90 = rows[:, 3], rows[:, 4], rows[:, 5]
    assert (q10 <= q50).all() and (q50 <= q90).all()
    assert out.with_suffix(".png").is_file()


def test_samples_within_the_heads_reach_come_with_the_point_forecast(cli, pipeline, tmp_path):
    """The point forecast is what a plot of samples draws, their band around it."""
    point, sampled = tmp_path / "point.csv", tmp_path / "sampled.csv"
    model = pipeline["ft"] / "H8"
    assert cli("forecast", "predict", "--model", model, "--input", pipeline["data"],
               "--output", point).rc == 0
    result = cli("forecast", "predict", "--model", model, "--input", pipeline["data"],
                 "--output", sampled, "--samples", "6")
    assert result.rc == 0, result.err
    header = sampled.read_text().splitlines()[0].split(",")
    assert header[1:7] == ["a_forecast", "a_mean", "a_median", "a_q10", "a_q50", "a_q90"]
    rows = np.loadtxt(sampled, delimiter=",", skiprows=1)
    np.testing.assert_allclose(rows[:, [1, 7]], np.loadtxt(point, delimiter=",",
                                                           skiprows=1)[:, 1:])


def test_forecaster_api(pipeline):
    from timetok import Forecaster

    forecaster = Forecaster.from_pretrained(pipeline["ft"] / "H8")
    series = np.loadtxt(pipeline["data"], delimiter=",", skiprows=1, usecols=(1, 2))
    assert forecaster.predict(series).shape == (8, 2)
    assert forecaster.predict(series[None].repeat(3, 0)).shape == (3, 8, 2)
    assert forecaster.predict(torch.tensor(series), num_samples=5).shape == (5, 8, 2)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--top-p", "1.5", "--samples", "3"], "--top-p"),
        (["--samples", "0"], "--samples"),
        (["--horizon", "20"], "point forecasts reach 8"),
    ],
)
def test_forecast_bad_options(cli, pipeline, tmp_path, args, fragment):
    out = tmp_path / "f.csv"
    result = cli("forecast", "predict", "--model", pipeline["ft"] / "H8", "--input",
                 pipeline["data"],
                 "--output", out, *args)
    result.assert_error(fragment)
    assert not out.exists()


def test_forecast_input_shorter_than_the_context(cli, pipeline, make_csv, tmp_path):
    short = make_csv("short.csv", rows=10)
    result = cli("forecast", "predict", "--model", pipeline["ft"] / "H8", "--input", short,
                 "--output", tmp_path / "f.csv")
    result.assert_error("10 steps", "32")


def test_forecast_with_another_channel_count(cli, pipeline, make_csv, tmp_path):
    wide = make_csv("wide.csv", rows=100, columns=("a", "b", "c"))
    result = cli("forecast", "predict", "--model", pipeline["ft"] / "H8", "--input", wide,
                 "--output", tmp_path / "f.csv")
    result.assert_error("2 channel", "3")


@pytest.mark.parametrize("policy", ["head-only", "all-but-head"])  # the old name, an alias
def test_freeze_head_only_trains_the_decoder_head_only(cli, pipeline, tmp_path, policy):
    result = cli("forecast", "finetune", "--model", pipeline["lm"], *pipeline["common"],
                 "--heads", "decoder", "--freeze", policy, "--horizon", "8", *RUN,
                 "--max-steps", "2", "--save-path", tmp_path / "x")
    assert result.rc == 0, result.err
    table = {line.split()[0]: line.split()[1:] for line in result.out.splitlines()
             if line.split() and line.split()[0] in ("backbone", "code-head", "query")}
    assert table["backbone"][0] == "0" and table["query"][0] == "0"
    assert table["code-head"][0] == table["code-head"][1] != "0"


@pytest.mark.parametrize(
    "heads, freeze",
    [("decoder", "tokenizer,backbone,code-head,query"),
     # the code head and the query feed the decoder head only: with the linear head alone
     # they count as frozen, so freezing the rest leaves nothing
     ("linear", "tokenizer,backbone,linear-head")],
)
def test_finetune_refuses_to_train_nothing_and_shows_the_table(cli, pipeline, tmp_path, heads,
                                                               freeze):
    out = tmp_path / "none"
    result = cli("forecast", "finetune", "--model", pipeline["lm"], *pipeline["common"], "--heads",
                 heads, "--freeze", freeze, "--horizon", "8", *RUN, "--max-steps", "2",
                 "--save-path", out)
    result.assert_error("--freeze", "no parameter to train")
    assert "trainable" in result.out and result.out.splitlines()[-1].split()[:2] == ["all", "0"]
    assert not out.exists()


def test_an_unknown_freeze_part_is_named(cli, pipeline, tmp_path):
    result = cli("forecast", "finetune", "--model", pipeline["lm"], *pipeline["common"], "--freeze",
                 "tokenizer,heads", "--horizon", "8", *RUN, "--save-path", tmp_path / "u")
    result.assert_error("--freeze", "'tokenizer,heads'", "code-head")


def test_finetune_of_a_tokenizer_folder_is_refused(cli, pipeline, tmp_path):
    result = cli("forecast", "finetune", "--model", pipeline["tok"], *pipeline["common"], *RUN,
                 "--save-path", tmp_path / "y")
    result.assert_error("tokenizer")


def test_the_names_before_the_forecast_group_still_work(cli, pipeline, tmp_path):
    """'lm' (the group's old name), 'forecast' (predict's) and the commands at the top level
    are hidden aliases; the top-level 'forecast' is the group now."""
    out = tmp_path / "f.csv"
    result = cli("lm", "forecast", "--model", pipeline["ft"] / "H8", "--input", pipeline["data"],
                 "--output", out)
    assert result.rc == 0, result.err
    assert out.is_file()
    result = cli("evaluate", "--model", pipeline["ft"] / "H6", *pipeline["common"], "--out",
                 tmp_path / "eval", "--stride", "8", "--json")
    assert result.rc == 0, result.err
    listed = [line.split()[0] for line in cli("--help").out.split("Commands:")[1].splitlines()
              if line.strip()]
    assert listed == ["data", "tokenizer", "forecast", "mae", "setvae", "doppler"]
    verbs = [line.split()[0] for line in cli("forecast", "--help").out.split("Commands:")[1]
             .splitlines() if line.strip()]
    assert verbs == ["pretrain", "finetune", "evaluate", "calibrate", "predict"]


def test_predict_reads_a_registered_dataset_by_name(cli, pipeline, tmp_path, isolated_env):
    """The bundled ETTh1 by name or by file name, wherever the command runs; neither is in
    the working directory."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(pipeline["ft"] / "H8", folder)
    for name in ("etth1", "ETTh1.csv"):
        result = cli("forecast", "predict", "--model", folder, "--input", name, "--output",
                     tmp_path / "f.csv")
        # the model reads 2 channels, ETTh1 has 7: the file was found and read
        result.assert_error("2 channel", "7")
    cli("forecast", "predict", "--model", folder, "--input", "nothing.csv", "--output",
        tmp_path / "f.csv").assert_error("--input nothing.csv", "etth1")


def test_pretrain_with_a_tokenizer_of_another_kind(cli, pipeline, tmp_path):
    result = cli("forecast", "pretrain", "--tokenizer", pipeline["lm"], *pipeline["common"], *LM,
                 "--context-points", "32",
                 "--save-path", tmp_path / "z")
    result.assert_error("forecaster", "tokenizer")


def test_pretrain_with_a_max_horizon_longer_than_the_data(cli, pipeline, tmp_path):
    result = cli("forecast", "pretrain", "--tokenizer", pipeline["tok"], *pipeline["common"], *LM,
                 "--context-points", "32", "--max-horizon", "720",
                 "--save-path", tmp_path / "long")
    result.assert_error("rows", "--max-horizon")
    assert not (tmp_path / "long").exists()


def test_evaluate_a_pretrained_model_without_heads(cli, pipeline):
    result = cli("forecast", "evaluate", "--model", pipeline["lm"], *pipeline["common"])
    result.assert_error("finetune it first")


@pytest.mark.parametrize("horizon", ["0", "96,x"])
def test_finetune_bad_horizon(cli, pipeline, tmp_path, horizon):
    result = cli("forecast", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN,
                 "--horizon", horizon, "--save-path", tmp_path / "h")
    result.assert_error("--horizon")
    assert not (tmp_path / "h").exists()


def test_finetune_keeps_the_fitted_start_when_training_only_hurts(cli, pipeline, tmp_path):
    """A learning rate of 10 wrecks the linear head: the start (the fitted skip) is exported."""
    out = tmp_path / "ft"
    result = cli("forecast", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN,
                 "--heads", "linear", "--lr", "10", "--warmup-steps", "0", "--max-steps", "4",
                 "--val-every", "2", "--checkpoint-every", "2", "--horizon", "8",
                 "--save-path", out)
    assert result.rc == 0, result.err
    summary = json.loads((out / "H8" / "training.json").read_text())
    assert summary["exported"] == "start"
    assert summary["start_val_loss"] < summary["best_val_loss"]
    model = TokenForecaster.from_pretrained(out / "H8")
    assert not model.linear_head.weight.any()  # the hidden-state layer is still at zero
    result = cli("forecast", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN,
                 "--heads", "linear", "--lr", "10", "--warmup-steps", "0", "--max-steps", "6",
                 "--val-every", "2", "--horizon", "8", "--resume", out / "H8")
    assert result.rc == 0, result.err
    resumed = json.loads((out / "H8" / "training.json").read_text())
    assert resumed["global_step"] == 6
    assert (resumed["exported"], resumed["start_val_loss"]) == ("start",
                                                               summary["start_val_loss"])


def test_finetune_learning_rate_defaults_per_head(cli, pipeline, tmp_path):
    """The decoder head alone starts at 1e-3; with the linear head the default stays 1e-4.
    (This run also shares its blend weights across the channels, and leaves the trained
    skip out.)"""
    import yaml

    out = tmp_path / "ft"
    result = cli("forecast", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN,
                 "--heads", "decoder", "--max-steps", "1", "--horizon", "8", "--save-path", out,
                 "--blend", "shared", "--no-trained-skip")
    assert result.rc == 0, result.err
    settings = yaml.safe_load((out / "H8" / "run.yaml").read_text())
    assert settings["lr"] == 1e-3 and settings["trained_skip"] is False
    model = TokenForecaster.from_pretrained(out / "H8")
    assert model.blend_weight.shape == (8, 1) and model.config.skip_fit == "ridge"
    both = yaml.safe_load((pipeline["ft"] / "H8" / "run.yaml").read_text())
    assert both["lr"] == 1e-4 and both["trained_skip"] is True


def test_finetune_chain_starts_each_horizon_from_the_longer_one(cli, pipeline, tmp_path):
    import yaml

    from timetok.core.train.checkpoints import checkpoint_state

    out = tmp_path / "chain"
    result = cli("forecast", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN,
                 "--chain",
                 "--heads", "decoder", "--max-steps", "2", "--horizon", "6,8",
                 "--save-path", out)
    assert result.rc == 0, result.err
    assert result.out.index("H=8") < result.out.index("H=6")  # the longest first
    started = {h: yaml.safe_load((out / f"H{h}" / "run.yaml").read_text())["model"]
               for h in (6, 8)}
    assert started == {8: str(pipeline["lm"]), 6: str(out / "H8")}
    # H=6 started from H=8's finetuned weights, its blend and skip fitted anew.
    start = checkpoint_state(out / "H6" / "checkpoints" / "start.ckpt")["state_dict"]
    longer = TokenForecaster.from_pretrained(out / "H8").state_dict()
    shared = [k for k in longer if k.startswith(("lm.", "query"))]
    assert shared and all(torch.equal(start[f"model.{k}"], longer[k]) for k in shared)
    assert start["model.skip_weight"].shape[0] == 6
