"""System 2 through the CLI: pretrain -> finetune -> evaluate -> forecast, and its errors."""

import json

import numpy as np
import pytest
import torch

from timetok.models.forecaster import TokenForecaster

RUN = ["--batch-size", "16", "--no-progress", "--accelerator", "cpu", "--devices", "1"]
LM = ["--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-ff", "32", *RUN]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A tiny tokenizer, language model and H=8 forecaster trained on a generated CSV."""
    from tests.conftest import write_series_csv
    from timetok.cli.main import main

    root = tmp_path_factory.mktemp("system2")
    data = write_series_csv(root / "series.csv", rows=400)
    common = ["--dataset", "custom", "--data-path", str(data)]
    tok, lm, ft = root / "tok", root / "lm", root / "ft"
    assert main(["tokenizer", "train", *common, "--context-points", "32", "--batch-size", "8",
                 "--block-hidden-size", "16", "--res-hidden-size", "8", "--embedding-dim",
                 "8", "--num-embeddings", "16", "--max-steps", "10", "--no-progress",
                 "--save-path", str(tok)]) == 0
    tok_before = (tok / "model.safetensors").read_bytes()
    assert main(["lm", "pretrain", "--tokenizer", str(tok), *common, "--context-points", "32",
                 "--max-horizon", "16", *LM, "--max-steps", "6", "--save-path", str(lm)]) == 0
    assert main(["lm", "finetune", "--model", str(lm), *common, "--horizon", "8", "--horizon", "6",
                 *RUN, "--max-steps", "6", "--save-path", str(ft)]) == 0
    return {"root": root, "data": data, "tok": tok, "lm": lm, "ft": ft, "common": common,
            "tok_before": tok_before}


def test_pretraining_keeps_the_tokenizer_weights(pipeline):
    from timetok.models.tokenizer import TimeSeriesTokenizer

    tokenizer = TimeSeriesTokenizer.from_pretrained(pipeline["tok"])
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
        assert (pipeline["ft"] / f"H{horizon}" / "scaler.json").is_file()


def test_evaluate_reports_every_method(cli, pipeline):
    result = cli("lm", "evaluate", "--model", pipeline["ft"], *pipeline["common"], "--json",
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
    result = cli("lm", "forecast", "--model", pipeline["ft"] / "H8", "--input", pipeline["data"],
                 "--output", out)
    assert result.rc == 0, result.err
    assert out.read_text().splitlines()[0] == "step,a_forecast,b_forecast"
    blend = np.loadtxt(out, delimiter=",", skiprows=1)
    result = cli("lm", "forecast", "--model", pipeline["ft"] / "H8", "--input", pipeline["data"],
                 "--output", out, "--head", "blend")
    assert result.rc == 0, result.err
    np.testing.assert_allclose(np.loadtxt(out, delimiter=",", skiprows=1), blend)
    result = cli("lm", "forecast", "--model", pipeline["ft"] / "H8", "--input", pipeline["data"],
                 "--output", out, "--samples", "20", "--horizon", "12", "--top-p", "0.9")
    assert result.rc == 0, result.err
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    assert rows.shape == (12, 1 + 2 * 5)
    q10, q50, q90 = rows[:, 3], rows[:, 4], rows[:, 5]
    assert (q10 <= q50).all() and (q50 <= q90).all()
    assert out.with_suffix(".png").is_file()


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
    result = cli("lm", "forecast", "--model", pipeline["ft"] / "H8", "--input", pipeline["data"],
                 "--output", out, *args)
    result.assert_error(fragment)
    assert not out.exists()


def test_forecast_input_shorter_than_the_context(cli, pipeline, make_csv, tmp_path):
    short = make_csv("short.csv", rows=10)
    result = cli("lm", "forecast", "--model", pipeline["ft"] / "H8", "--input", short,
                 "--output", tmp_path / "f.csv")
    result.assert_error("10 steps", "32")


def test_forecast_with_another_channel_count(cli, pipeline, make_csv, tmp_path):
    wide = make_csv("wide.csv", rows=100, columns=("a", "b", "c"))
    result = cli("lm", "forecast", "--model", pipeline["ft"] / "H8", "--input", wide,
                 "--output", tmp_path / "f.csv")
    result.assert_error("2 channel", "3")


def test_freeze_all_but_head_trains_the_decoder_head_only(cli, pipeline, tmp_path):
    result = cli("lm", "finetune", "--model", pipeline["lm"], *pipeline["common"], "--heads",
                 "decoder", "--freeze", "all-but-head", "--horizon", "8", *RUN, "--max-steps",
                 "2", "--save-path", tmp_path / "x")
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
    result = cli("lm", "finetune", "--model", pipeline["lm"], *pipeline["common"], "--heads",
                 heads, "--freeze", freeze, "--horizon", "8", *RUN, "--max-steps", "2",
                 "--save-path", out)
    result.assert_error("--freeze", "no parameter to train")
    assert "trainable" in result.out and result.out.splitlines()[-1].split()[:2] == ["all", "0"]
    assert not out.exists()


def test_an_unknown_freeze_part_is_named(cli, pipeline, tmp_path):
    result = cli("lm", "finetune", "--model", pipeline["lm"], *pipeline["common"], "--freeze",
                 "tokenizer,heads", "--horizon", "8", *RUN, "--save-path", tmp_path / "u")
    result.assert_error("--freeze", "'tokenizer,heads'", "code-head")


def test_finetune_of_a_tokenizer_folder_is_refused(cli, pipeline, tmp_path):
    result = cli("lm", "finetune", "--model", pipeline["tok"], *pipeline["common"], *RUN,
                 "--save-path", tmp_path / "y")
    result.assert_error("tokenizer")


def test_the_commands_before_the_lm_group_still_work(cli, pipeline, tmp_path):
    out = tmp_path / "f.csv"
    result = cli("forecast", "--model", pipeline["ft"] / "H8", "--input", pipeline["data"],
                 "--output", out)
    assert result.rc == 0, result.err
    assert out.is_file()
    listed = [line.split()[0] for line in cli("--help").out.split("Commands:")[1].splitlines()
              if line.strip()]
    assert listed == ["data", "tokenizer", "lm"]


def test_pretrain_with_a_tokenizer_of_another_kind(cli, pipeline, tmp_path):
    result = cli("lm", "pretrain", "--tokenizer", pipeline["lm"], *pipeline["common"], *LM,
                 "--context-points", "32",
                 "--save-path", tmp_path / "z")
    result.assert_error("forecaster", "tokenizer")


def test_pretrain_with_a_max_horizon_longer_than_the_data(cli, pipeline, tmp_path):
    result = cli("lm", "pretrain", "--tokenizer", pipeline["tok"], *pipeline["common"], *LM,
                 "--context-points", "32", "--max-horizon", "720",
                 "--save-path", tmp_path / "long")
    result.assert_error("rows", "--max-horizon")
    assert not (tmp_path / "long").exists()


def test_evaluate_a_pretrained_model_without_heads(cli, pipeline):
    result = cli("lm", "evaluate", "--model", pipeline["lm"], *pipeline["common"])
    result.assert_error("finetune it first")


@pytest.mark.parametrize("horizon", ["0", "96,x"])
def test_finetune_bad_horizon(cli, pipeline, tmp_path, horizon):
    result = cli("lm", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN,
                 "--horizon", horizon, "--save-path", tmp_path / "h")
    result.assert_error("--horizon")
    assert not (tmp_path / "h").exists()


def test_finetune_keeps_the_fitted_start_when_training_only_hurts(cli, pipeline, tmp_path):
    """A learning rate of 10 wrecks the linear head: the start (the fitted skip) is exported."""
    out = tmp_path / "ft"
    result = cli("lm", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN,
                 "--heads", "linear", "--lr", "10", "--warmup-steps", "0", "--max-steps", "4",
                 "--val-every", "2", "--checkpoint-every", "2", "--horizon", "8",
                 "--save-path", out)
    assert result.rc == 0, result.err
    summary = json.loads((out / "H8" / "training.json").read_text())
    assert summary["exported"] == "start"
    assert summary["start_val_loss"] < summary["best_val_loss"]
    model = TokenForecaster.from_pretrained(out / "H8")
    assert not model.linear_head.weight.any()  # the hidden-state layer is still at zero
    result = cli("lm", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN,
                 "--heads", "linear", "--lr", "10", "--warmup-steps", "0", "--max-steps", "6",
                 "--val-every", "2", "--horizon", "8", "--resume", out / "H8")
    assert result.rc == 0, result.err
    resumed = json.loads((out / "H8" / "training.json").read_text())
    assert resumed["global_step"] == 6
    assert (resumed["exported"], resumed["start_val_loss"]) == ("start",
                                                               summary["start_val_loss"])


def test_finetune_learning_rate_defaults_per_head(cli, pipeline, tmp_path):
    """The decoder head alone starts at 1e-3; with the linear head the default stays 1e-4.
    (This run also shares its blend weights across the channels.)"""
    import yaml

    out = tmp_path / "ft"
    result = cli("lm", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN,
                 "--heads", "decoder", "--max-steps", "1", "--horizon", "8", "--save-path", out,
                 "--blend", "shared")
    assert result.rc == 0, result.err
    assert yaml.safe_load((out / "H8" / "run.yaml").read_text())["lr"] == 1e-3
    assert TokenForecaster.from_pretrained(out / "H8").blend_weight.shape == (8, 1)
    both = yaml.safe_load((pipeline["ft"] / "H8" / "run.yaml").read_text())
    assert both["lr"] == 1e-4


def test_finetune_chain_starts_each_horizon_from_the_longer_one(cli, pipeline, tmp_path):
    import yaml

    from timetok.train.checkpoints import checkpoint_state

    out = tmp_path / "chain"
    result = cli("lm", "finetune", "--model", pipeline["lm"], *pipeline["common"], *RUN, "--chain",
                 "--heads", "decoder", "--max-steps", "2", "--horizon", "6,8",
                 "--save-path", out)
    assert result.rc == 0, result.err
    assert result.out.index("H=8") < result.out.index("H=6")  # the longest first
    started = {h: yaml.safe_load((out / f"H{h}" / "run.yaml").read_text())["model_dir"]
               for h in (6, 8)}
    assert started == {8: str(pipeline["lm"]), 6: str(out / "H8")}
    # H=6 started from H=8's finetuned weights, its blend and skip fitted anew.
    start = checkpoint_state(out / "H6" / "checkpoints" / "start.ckpt")["state_dict"]
    longer = TokenForecaster.from_pretrained(out / "H8").state_dict()
    shared = [k for k in longer if k.startswith(("lm.", "query"))]
    assert shared and all(torch.equal(start[f"model.{k}"], longer[k]) for k in shared)
    assert start["model.skip_weight"].shape[0] == 6
