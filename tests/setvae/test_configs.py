"""configs/setvae: every file loads into its stage's config and is accepted by its command;
the flags' defaults are the configs' defaults; a profile with a tiny budget runs the
recipes end to end, from Python and from the command line."""

from __future__ import annotations

import dataclasses
import doctest
import json
from pathlib import Path

import pytest
import yaml

from tests.setvae.test_recipe import write_icu
from timetok.setvae import config as config_module
from timetok.setvae.config import EvaluateConfig, FinetuneConfig, PretrainConfig
from timetok.setvae.recipe import evaluate, finetune, pretrain

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "setvae"
FILES = sorted(CONFIGS.glob("*/*.yaml"))
STAGES = {"pretrain": (PretrainConfig, "pretrain"), "finetune": (FinetuneConfig, "finetune"),
          "scratch": (FinetuneConfig, "finetune")}
# The tiny budget: a few steps of a few thousand parameters on 60 fixture stays.
TINY_RUN = dict(max_time=None, max_steps=2, batch_size=8, progress=False, accelerator="cpu")
TINY_MODEL = dict(d_model=16, latent_dim=4, seq_layers=1, d_ff=32)


def stage(path: Path) -> str:
    return path.stem


@pytest.fixture(autouse=True)
def _own_cache(isolated_env):
    """Every test caches into its own empty folder."""


def test_the_docstring_example_runs():
    assert doctest.testmod(config_module).failed == 0


def test_every_profile_has_its_three_stages():
    assert len(FILES) == 9
    for profile in ("cpu", "gpu", "smoke"):
        for name in STAGES:
            assert (CONFIGS / f"physionet-{profile}" / f"{name}.yaml").is_file()


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_file_loads_into_its_config_and_names_flags_of_its_command(path):
    from timetok.setvae.cli import setvae

    config_class, command = STAGES[stage(path)]
    config = config_class.from_yaml(path)
    assert config.bucket == 1.0
    # A budget in epochs, so a figure does not depend on the machine's load (the GPU
    # profile's epochs were never measured: it keeps its minutes until they are).
    assert config.n_epochs is not None or path.parent.name == "physionet-gpu"
    params = {p.name for p in setvae.commands[command].params}
    assert set(yaml.safe_load(path.read_text())) <= params
    if stage(path) == "scratch":
        assert config.scratch and config.freeze == "none"


@pytest.mark.parametrize("command, config_class", [("pretrain", PretrainConfig),
                                                   ("finetune", FinetuneConfig)])
def test_the_flags_default_to_the_configs_defaults(command, config_class):
    import click

    from timetok.setvae.cli import setvae

    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    context = click.Context(setvae.commands[command])
    for param in setvae.commands[command].params:
        if param.name in defaults and param.name not in ("save_path", "resume", "pos_weight"):
            assert param.get_default(context) == defaults[param.name], param.name
    pos_weight = next(p for p in setvae.commands["finetune"].params if p.name == "pos_weight")
    assert float(pos_weight.default) == FinetuneConfig.pos_weight


def test_a_profile_with_a_tiny_budget_runs_the_recipes_end_to_end(tmp_path):
    data = str(write_icu(tmp_path / "p12"))
    pre = PretrainConfig.from_yaml(CONFIGS / "physionet-smoke" / "pretrain.yaml", data_path=data,
                                   save_path=str(tmp_path / "pre"), **TINY_RUN, **TINY_MODEL)
    assert pretrain(pre)["global_step"] == 2
    ft = FinetuneConfig.from_yaml(CONFIGS / "physionet-smoke" / "finetune.yaml", data_path=data,
                                  model=pre.save_path, save_path=str(tmp_path / "ft"),
                                  **TINY_RUN)
    summary = finetune(ft)
    assert summary["global_step"] == 2 and summary["monitor"] == "val_auroc"
    report = evaluate(EvaluateConfig(model=ft.save_path))
    assert report["stays"] == 7 and "auroc" in report["baseline"]
    run = yaml.safe_load((tmp_path / "ft" / "run.yaml").read_text())
    assert run["model"] == pre.save_path and run["freeze"] == "head-only"


def test_the_command_line_reads_a_profile_with_config(cli, tmp_path):
    data = str(write_icu(tmp_path / "p12"))
    out = tmp_path / "pre"
    result = cli("setvae", "pretrain", "--config", CONFIGS / "physionet-smoke" / "pretrain.yaml",
                 "--data-path", data, "--max-steps", "1", "--batch-size", "8",
                 "--d-model", "16", "--no-progress", "--accelerator", "cpu",
                 "--save-path", out)
    assert result.rc == 0, result.err
    run = yaml.safe_load((out / "run.yaml").read_text())
    assert run["latent_dim"] == 8 and run["d_model"] == 16 and run["n_epochs"] == 1
    assert json.loads((out / "config.json").read_text())["latent_dim"] == 8
