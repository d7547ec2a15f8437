"""Evaluation of generated spectrograms: the figures :func:`evaluate_images` reports on a
toy task, the report files, the toy-run note and the tokenizer's ceiling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.doppler.bands import SMALL, bands
from timetok.core.errors import ConfigError, DataError
from timetok.core.train.runner import RunOptions, begin
from timetok.doppler.classifier import UserClassifier, UserClassifierConfig, train_classifier
from timetok.doppler.config import EvaluateConfig
from timetok.doppler.evaluate import evaluate_images, tokenizer_ceiling
from timetok.doppler.report import (
    FULL_RUN,
    pick_users,
    plot_codebook_history,
    run_scale,
    write_report,
)


@pytest.fixture(scope="module")
def toy():
    return bands(30), bands(15, seed=1), bands(15, seed=2)


@pytest.fixture(scope="module")
def classifier(toy, tmp_path_factory):
    (x, y), _, _ = toy
    options = RunOptions(n_epochs=4, accelerator="cpu", devices="1", progress=False, seed=0)
    begin(options)
    return train_classifier(x, y, tmp_path_factory.mktemp("clf"), options, channels=SMALL,
                            lr=3e-3)


def test_evaluate_images_and_write_report(tmp_path, toy, classifier):
    (x, y), (xt, yt), (xg, yg) = toy
    report = evaluate_images(x, y, xt, yt, xg, yg, classifier,
                             codebook={"codes_used": 200, "perplexity": 150.5})
    assert set(report) == {"data", "classifier", "accuracy", "frechet", "diversity",
                           "memorisation", "codebook", "per_user"}
    assert report["accuracy"]["real_test"] >= 0.9 and report["accuracy"]["generated"] >= 0.9
    assert report["frechet"]["generated_vs_real_test"] >= 0
    assert report["memorisation"]["verdict"] == "no memorised copies"
    assert report["memorisation"]["pixels"]["near_exact_copies"] == 0
    assert report["codebook"] == {"codes_used": 200, "perplexity": 150.5}
    assert set(report["per_user"]) == {"0", "1", "2"}
    assert report["data"]["validation_images"] == 15 and report["classifier"]["epochs"] == 4

    report["scale"] = run_scale(3, 90, 2)
    write_report(tmp_path / "out", report, xt, yt, xg, yg, per_user=3)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["grid.png", "report.json", "report.md"]  # no temporary left
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| classifier accuracy |" in markdown and "| user |" in markdown
    assert "A toy run (3 users against 31" in markdown
    assert (tmp_path / "out" / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_as_large_as_the_benchmark_is_no_toy():
    full = run_scale(FULL_RUN["users"], FULL_RUN["train_images"], FULL_RUN["prior_epochs"])
    assert not full["toy"] and "0.84 ± 0.08" in full["note"] and "14.5 ± 1.4" in full["note"]
    small = run_scale(8, 2000, None)
    assert small["toy"] and "8 users against 31" in small["note"]
    assert "training images" not in small["note"]


def test_evaluation_flags_copied_training_images(toy, classifier):
    (x, y), (xt, yt), _ = toy
    report = evaluate_images(x, y, xt, yt, x[::3], y[::3], classifier)
    memorised = report["memorisation"]
    assert memorised["memorised"] and memorised["pixels"]["near_exact_copies"] == 30


def test_the_tokenizer_ceiling_of_a_perfect_tokenizer_is_the_real_figures(toy, classifier):
    (x, y), (xt, yt), _ = toy
    ceiling = tokenizer_ceiling(classifier, x, xt, xt.copy(), yt)
    assert ceiling["user_acc_ratio"] == 1.0 and ceiling["fd_generated"] == pytest.approx(0)
    assert ceiling["fd_floor"] > 0


def test_pick_users_spreads_over_the_range():
    assert pick_users([2, 0, 1, 2]) == [0, 1, 2]
    picked = pick_users(range(20))
    assert len(picked) == 8 and picked[0] == 0 and picked[-1] == 19


def test_the_codebook_history_has_a_panel_per_scale(tmp_path, monkeypatch):
    """Usage (0-1) and codes per user (~100) each get an axis of their own."""
    import matplotlib.pyplot as plt

    history = tmp_path / "history.csv"
    history.write_text("epoch,val_usage,train_usage,val_codes_per_user,val_codes_per_user_min\n"
                       "0,0.5,0.6,90,80\n1,0.9,0.95,110,100\n")
    made = []
    subplots = plt.subplots
    monkeypatch.setattr(plt, "subplots", lambda *a, **k: made.append(subplots(*a, **k))
                        or made[-1])
    plot_codebook_history(tmp_path / "history.png", history)
    usage, per_user = made[0][1]
    assert usage.get_ylim()[1] <= 1.1 and per_user.get_ylim()[1] > 100
    assert (tmp_path / "history.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("case, match", [
    ("not_3d", r"\[N, H, W\]"),
    ("integers", "floats"),
    ("out_of_range", r"\[0, 1\]"),
    ("length", "one user id per image"),
    ("size", "resize"),
    ("unseen_user", "never saw"),
])
def test_bad_input_is_a_data_error(toy, case, match):
    (x, y), (xt, yt), (xg, yg) = toy
    if case == "not_3d":
        xg = xg[0]
    elif case == "integers":
        xg = (xg * 255).astype(np.uint8)
    elif case == "out_of_range":
        xg = xg * 2
    elif case == "length":
        yg = yg[:-1]
    elif case == "size":
        xg = xg[:, :8, :8]
    else:
        yg = np.full_like(yg, 5)
    untrained = UserClassifier(UserClassifierConfig(3, SMALL))
    with pytest.raises(DataError, match=match) as caught:
        evaluate_images(x, y, xt, yt, xg, yg, untrained)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("changes, match", [
    ({"model": None}, "model must name a generator folder"),
    ({"n_epochs": 3}, "set classifier_epochs"),
    ({"samples": 1}, "samples must be >= 2"),
    ({"generated": "gen", "guidance_scale": 2.0}, "read as they are"),
])
def test_impossible_evaluation_settings_are_refused(changes, match):
    with pytest.raises(ConfigError, match=match):
        EvaluateConfig(**({"model": "runs/doppler"} | changes))
