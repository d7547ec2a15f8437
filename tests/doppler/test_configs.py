"""Every profile under configs/doppler/ loads into its recipe's config, and the smoke
profile, cut to a tiny budget, trains and evaluates end to end through the recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from timetok.doppler.config import EvaluateConfig, TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "doppler"
STAGES = {"train.yaml": TrainConfig, "evaluate.yaml": EvaluateConfig}
FILES = sorted(CONFIGS.glob("*/*.yaml"))


def test_every_profile_has_both_stages():
    profiles = sorted(p for p in CONFIGS.iterdir() if p.is_dir())
    assert {p.name for p in profiles} >= {"grid32-cpu", "cpu", "gpu", "smoke"}
    for profile in profiles:
        assert sorted(p.name for p in profile.glob("*.yaml")) == ["evaluate.yaml", "train.yaml"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_config_loads_into_its_class(path):
    config = STAGES[path.name].from_yaml(path)
    assert config.seed == 0
    assert f"--config configs/doppler/{path.parent.name}/{path.name}" in path.read_text()


def test_the_headline_profile_is_the_committed_runs_settings():
    config = TrainConfig.from_yaml(CONFIGS / "grid32-cpu" / "train.yaml")
    assert config.channels == [32, 64] and config.tokenizer_config().grid == 32
    assert (config.adversarial_weight, config.adversarial_start, config.adversarial_ramp) == (
        0.5, 10, 5)
    assert (config.prior_epochs, config.code_noise, config.prior_batch_size) == (24, 0.1, 8)
    assert config.amp and config.tokenizer_weight_decay == 1e-4
    evaluation = EvaluateConfig.from_yaml(CONFIGS / "grid32-cpu" / "evaluate.yaml")
    assert evaluation.guidance_scale == 2 and evaluation.classifier_epochs == 40


def test_the_smoke_profile_trains_and_evaluates_through_the_recipes(tmp_path):
    from timetok.doppler.evaluate import evaluate
    from timetok.doppler.recipe import train
    from timetok.doppler.simulator import RadarConfig, simulate_dataset

    simulate_dataset(tmp_path / "sim", n_users=3, per_user=8, radar=RadarConfig(size=32),
                     seed=0, progress=False, workers=1)
    config = TrainConfig.from_yaml(CONFIGS / "smoke" / "train.yaml", data_path=str(
        tmp_path / "sim"), save_path=str(tmp_path / "run"), tokenizer_epochs=1, prior_epochs=1,
        codebook_size=16, progress=False)
    summaries = train(config)
    assert summaries["prior"]["users"] == 3
    evaluation = EvaluateConfig.from_yaml(CONFIGS / "smoke" / "evaluate.yaml",
                                          model=str(tmp_path / "run"), samples=2,
                                          classifier_epochs=1, progress=False)
    report = evaluate(evaluation)
    assert report["data"]["generated_images"] == 6 and report["scale"]["toy"]
    assert (tmp_path / "run" / "generator" / "evaluation" / "report.md").is_file()
