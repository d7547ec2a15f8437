"""configs/mae: every file loads into its stage's config and is what the CLI accepts; one
runs the recipes end to end on a tiny budget."""

import json
from pathlib import Path

import pytest

from timetok.core.cli_options import read_yaml
from timetok.mae.recipe import FinetuneConfig, PretrainConfig, finetune, pretrain

CONFIGS = sorted((Path(__file__).parents[2] / "configs" / "mae").glob("*/*.yaml"))
STAGES = {"pretrain": PretrainConfig, "finetune": FinetuneConfig}
TINY = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, regressor_layers=1, vocab_size=16,
            batch_size=16, n_epochs=None, max_steps=3, progress=False, data_dir=None)


def stage_of(path: Path) -> str:
    return path.stem


def test_one_pair_of_configs_serves_every_dataset_and_names_none():
    names = {f"{path.parent.name}/{path.name}" for path in CONFIGS}
    assert names == {"classify/pretrain.yaml", "classify/finetune.yaml"}
    for path in CONFIGS:  # the size-driven settings are left to the recipe
        values = read_yaml(path, "config")
        assert not {"dataset", "encoder", "batch_size", "lr", "n_epochs", "max_steps"} & set(values)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_config_loads_and_every_key_is_a_flag_of_its_command(path):
    from timetok.mae.cli import mae

    stage = stage_of(path)
    config = STAGES[stage].from_yaml(path)
    values = read_yaml(path, "config")
    assert all(getattr(config, key) == value for key, value in values.items())
    flags = {param.name for param in mae.commands[stage].params}
    assert set(values) <= flags


def test_the_configs_run_the_recipes_end_to_end_on_ecg200(tmp_path):
    configs = Path(__file__).parents[2] / "configs" / "mae" / "classify"
    pre = PretrainConfig.from_yaml(configs / "pretrain.yaml", **TINY, dataset="ecg200",
                                   save_path=str(tmp_path / "pre"))
    summary = pretrain(pre)
    assert summary["global_step"] == 3 and summary["mcc"]["chance"] == 1 / 16
    tiny_finetune = {k: v for k, v in TINY.items() if k in FinetuneConfig.field_names()}
    ft = FinetuneConfig.from_yaml(configs / "finetune.yaml", **tiny_finetune, dataset="ecg200",
                                  model=str(tmp_path / "pre"), save_path=str(tmp_path / "ft"),
                                  freeze_policy="linear-probe")
    assert ft.freeze_policy == "head-only"  # the old name is still understood
    summary = finetune(ft)
    assert summary["monitor"] == "val_selection" and summary["classes"] == ["0", "1"]
    table = {row["part"]: row for row in summary["parameters_by_part"]}
    assert table["encoder"]["trainable"] == 0 and table["head"]["trainable"] > 0
    saved = json.loads((tmp_path / "ft" / "training.json").read_text())
    assert saved["global_step"] == 3


def test_a_run_folder_is_not_overwritten_unless_asked(tmp_path):
    from timetok.core.errors import ConfigError

    (tmp_path / "run.yaml").write_text("seed: 1\n")
    with pytest.raises(ConfigError, match="overwrite=True"):
        pretrain(PretrainConfig(save_path=str(tmp_path), **{k: v for k, v in TINY.items()}))


def test_the_cli_runs_a_config_file_with_flags_on_top(cli, tmp_path):
    path = tmp_path / "pre.yaml"
    path.write_text("dataset: ecg200\nd_model: 16\nn_layers: 1\nn_heads: 2\nd_ff: 32\n"
                    "regressor_layers: 1\nvocab_size: 8\nbatch_size: 16\nmax_steps: 2\n")
    result = cli("mae", "pretrain", "--config", path, "--vocab-size", "16", "--no-progress",
                 "--save-path", tmp_path / "run")
    assert result.rc == 0, result.err
    assert "chance 0.0625 (1 of 16 codewords)" in result.out
    assert read_yaml(tmp_path / "run" / "run.yaml", "run")["vocab_size"] == 16
