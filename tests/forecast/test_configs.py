"""The benchmark profiles under configs/forecast/: each stage's file loads into its config
class and runs, with a tiny budget, through the recipe and through the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from timetok.forecast.config import FinetuneConfig, PretrainConfig
from timetok.tokenizer.config import TokenizerTrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "forecast"
STAGES = {"tokenizer": TokenizerTrainConfig, "pretrain": PretrainConfig,
          "linear": FinetuneConfig, "decoder": FinetuneConfig}
FILES = sorted(CONFIGS.glob("*/*.yaml"))
TINY = {"max_steps": 2, "n_epochs": None, "val_every": None, "progress": False,
        "accelerator": "cpu", "devices": "1"}


def test_every_profile_has_its_four_stages():
    profiles = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir())
    assert profiles == [f"{d}-{p}" for d in ("etth1", "etth2", "ettm1", "ettm2")
                        for p in ("cpu", "gpu")]
    assert len(FILES) == 4 * len(profiles)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_file_loads_into_its_stage_config(path):
    config = STAGES[path.stem].from_yaml(path)
    assert config.dataset == path.parent.name.split("-")[0]
    assert config.seed == 1 and config.max_time is None  # budgets in steps, not minutes
    if isinstance(config, FinetuneConfig):
        assert set(config.horizon_steps) == set(config.horizon) == {96, 192, 336, 720}
        assert config.chain == (path.stem == "decoder")


def test_a_profile_runs_end_to_end_with_a_tiny_budget(tmp_path, isolated_env):
    """The ETTh1 CPU profile's four stages on the bundled ETTh1, each file's settings with
    a two-step budget and smaller models (the contexts and the data as the files say)."""
    from timetok.forecast.recipe import finetune, pretrain
    from timetok.tokenizer.recipe import train

    folder = CONFIGS / "etth1-cpu"
    tok = TokenizerTrainConfig.from_yaml(
        folder / "tokenizer.yaml", **TINY, block_hidden_size=16, res_hidden_size=8,
        embedding_dim=8, num_embeddings=16, save_path=str(tmp_path / "tok"))
    train(tok)
    pre = PretrainConfig.from_yaml(folder / "pretrain.yaml", **TINY, d_model=16, n_layers=1,
                                   n_heads=2, d_ff=32, max_horizon=96,
                                   tokenizer=str(tmp_path / "tok"), save_path=str(tmp_path / "lm"))
    assert pretrain(pre)["global_step"] == 2
    for stage in ("linear", "decoder"):
        config = FinetuneConfig.from_yaml(
            folder / f"{stage}.yaml", **TINY, horizon=[96], horizon_steps={96: 2},
            trained_skip=False, model=str(tmp_path / "lm"), save_path=str(tmp_path / stage))
        summaries = finetune(config)
        assert summaries[96]["global_step"] == 2
        assert (tmp_path / stage / "H96" / "data.json").is_file()


def test_the_command_line_reads_a_profile_and_flags_win(cli, tmp_path, isolated_env):
    """``timetok forecast finetune --config FILE``: the file's horizons and step budgets,
    with the command line's changes on top."""
    import yaml

    from timetok.forecast.model import ForecasterConfig, TokenForecaster
    from timetok.tokenizer.model import TokenizerConfig

    lm = tmp_path / "lm"
    tokenizer = TokenizerConfig(n_channels=1, context_points=512, embedding_dim=8,
                                num_embeddings=16, block_hidden_size=16, res_hidden_size=8)
    TokenForecaster(ForecasterConfig(tokenizer=tokenizer, context_points=512, max_horizon=96,
                                     d_model=16, n_layers=1, n_heads=2, d_ff=32)
                    ).save_pretrained(lm)
    result = cli("forecast", "finetune", "--config", CONFIGS / "etth1-cpu" / "linear.yaml",
                 "--model", lm, "--horizon", "96", "--horizon-steps", "96:1",
                 "--no-trained-skip", "--no-progress", "--save-path", tmp_path / "ft",
                 "--json")
    assert result.rc == 0, result.err
    settings = yaml.safe_load((tmp_path / "ft" / "H96" / "run.yaml").read_text())
    assert (settings["heads"], settings["batch_size"], settings["val_stride"]) == (
        "linear", 32, 16)
    assert settings["max_steps"] == 1 and settings["seed"] == 1
