"""Every benchmark profile under configs/tokenizer/ is a config the recipe runs, and the
CLI's defaults are the config's."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from timetok.core.cli_options import read_yaml
from timetok.tokenizer.evaluate import evaluate, load
from timetok.tokenizer.pipeline import TimeSeriesTokenizer
from timetok.tokenizer.recipe import TokenizerTrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "tokenizer").glob("*/*.yaml"))
TINY = dict(context_points=32, batch_size=8, embedding_dim=8, block_hidden_size=16,
            res_hidden_size=8, num_embeddings=16, max_steps=3, val_every=3, val_stride=1,
            accelerator="cpu", devices="1", progress=False)


def tiny_config(path: Path, csv: Path, run: Path, **overrides) -> TokenizerTrainConfig:
    return TokenizerTrainConfig.from_yaml(path, dataset="custom", data_path=str(csv),
                                          save_path=str(run), **(TINY | overrides))


def test_every_benchmark_method_has_its_config(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_tokenizer",
                                                  ROOT / "benchmarks" / "tokenizer.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr("sys.argv", ["tokenizer.py"])
    methods = bench.parse_args().methods.split(",")
    assert sorted(bench.config_path(m) for m in methods) == CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_loads_and_builds_its_model(path):
    config = TokenizerTrainConfig.from_yaml(path)
    assert config.dataset == "ettm1" and config.max_steps > 0
    assert config.run_options().max_time is None  # budgeted in steps, not minutes
    model = config.model_config(n_channels=7)
    assert (model.context_points, model.compression, model.num_embeddings) == (512, 4, 256)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_speaks_the_train_commands_flags(path):
    from timetok.tokenizer.cli import train as command

    flags = {param.name for param in command.params}
    assert set(read_yaml(path, "config")) <= flags


def test_the_commands_defaults_are_the_configs():
    import click

    from timetok.tokenizer.cli import train as command

    ctx = click.Context(command)
    defaults = {f.name: f.default for f in dataclasses.fields(TokenizerTrainConfig)}
    params = {param.name: param for param in command.params}
    assert set(defaults) - {"resume"} <= set(params)
    for name, default in defaults.items():
        if name != "resume":  # a folder on the command line, a flag in the config
            assert params[name].get_default(ctx) == default, name


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_tiny_budget_of_each_config_trains_and_evaluates(path, make_csv, tmp_path):
    csv = make_csv()
    config = tiny_config(path, csv, tmp_path / "run")
    summary = train(config)
    assert summary["global_step"] == 3 and summary["exported"] == "best"
    saved = read_yaml(config.run_dir / "run.yaml", "run settings")
    assert saved == json.loads(json.dumps(config.settings()))
    model, data = load(config.run_dir, "custom", data_path=csv)
    assert model.config.quantizer == config.quantizer
    evaluation = evaluate(model, data, "test")
    assert evaluation.report["windows"] > 0 and 0 < evaluation.report["usage"] <= 1
    evaluation.save(tmp_path / "eval")
    assert {p.name for p in (tmp_path / "eval").iterdir()} == {
        "report.json", "report.md", "reconstructions.png", "code_usage.png"}
    tokenizer = TimeSeriesTokenizer.from_pretrained(config.run_dir, device="cpu")
    assert tokenizer.reconstruct(data.scaler.inverse_transform(data.splits["test"][:32])
                                 ).shape == (32, 2)


def test_the_recipe_seeds_each_run_alike(make_csv, tmp_path):
    csv = make_csv()
    path = CONFIGS[0]
    for name in ("first", "second"):
        torch.manual_seed(len(name))  # whatever ran before, the recipe seeds itself
        train(tiny_config(path, csv, tmp_path / name))
    first = load_file(tmp_path / "first" / "model.safetensors")
    second = load_file(tmp_path / "second" / "model.safetensors")
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(dict(compression_factor=8, patch_size=4), "exclude each other"),
     (dict(fsq_levels="8,x"), "fsq_levels takes positive integers"),
     (dict(context_points=0), "context_points must be >= 1"),
     (dict(lr=0), "lr must be > 0"),
     (dict(compression_factor=0), "compression_factor must be one of 4, 8, 12, 16, got 0"),
     (dict(patch_size=0), "patch_size must be >= 1, got 0"),
     (dict(quantizer="fsq", fsq_levels="4,4", num_embeddings=256),
      "num_embeddings 256 does not fit fsq_levels 4,4, whose codebook holds their product, "
      "16 codes; leave num_embeddings out or set it to 16"),
     (dict(batch_size_typo=3), "unknown setting 'batch_size_typo'")],
)
def test_bad_settings_speak_parameter_names(overrides, message):
    with pytest.raises(ValueError, match=message):
        TokenizerTrainConfig.from_dict(overrides)


def test_fsq_levels_read_from_a_list_or_a_comma_string():
    assert TokenizerTrainConfig(fsq_levels="8,5,5").fsq_levels == [8, 5, 5]
    assert TokenizerTrainConfig(fsq_levels=[8, 5, 5]).fsq_levels == [8, 5, 5]


def test_the_codebook_is_256_codes_or_the_product_of_the_fsq_levels():
    assert TokenizerTrainConfig().model_config(1).num_embeddings == 256
    fsq = TokenizerTrainConfig(quantizer="fsq", fsq_levels="8,5,5,5")
    assert fsq.model_config(1).num_embeddings == 1000
    assert fsq.replace(num_embeddings=1000).model_config(1).num_embeddings == 1000
    assert TokenizerTrainConfig(quantizer="fsq", num_embeddings=1000).codebook_size == 1000
