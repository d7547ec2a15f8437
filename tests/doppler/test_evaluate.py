"""Validation of generated spectrograms: the maths against closed forms and brute force, the
user classifier on a separable toy task, and the report files."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest
import torch

from timetok.core.errors import DataError
from timetok.doppler import evaluate as doppler
from timetok.doppler.evaluate import (
    UserClassifier,
    frechet_distance,
    mean_pairwise_distance,
    memorisation,
    nearer_train,
    nearest_distances,
    pick_users,
    validate,
    write_report,
)

SMALL = (8, 16, 32, 32)  # classifier channels: fast on one core


def band_row(user: int, users: int, size: int) -> int:
    return 2 + user * (size - 4) // max(users - 1, 1)


def bands(per_user: int, users: int = 3, size: int = 16, seed: int = 0):
    """Noisy images with a bright horizontal band at a row that depends on the user."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.4, (users * per_user, size, size))
    ids = np.repeat(np.arange(users), per_user)
    for i, user in enumerate(ids):
        row = band_row(user, users, size)
        images[i, row - 1:row + 2] += 0.5
    return images.clip(0, 1).astype(np.float32), ids


@pytest.fixture(scope="module")
def toy():
    return bands(30), bands(15, seed=1), bands(15, seed=2)


@pytest.fixture(scope="module")
def classifier(toy):
    (x, y), (xv, yv), _ = toy
    return UserClassifier(3, SMALL).fit(x, y, xv, yv, epochs=4, batch_size=16, lr=3e-3)


# --------------------------------------------------------------------------- maths


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mean_a, mean_b = np.array([0.0, 1.0, 0.0, 2.0]), np.array([1.0, 1.0, 0.5, 1.5])
    var_a, var_b = np.array([1.0, 2.0, 0.5, 1.0]), np.array([4.0, 1.0, 0.5, 2.0])
    expected = ((mean_a - mean_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    a = mean_a + np.sqrt(var_a) * rng.standard_normal((40_000, 4))
    b = mean_b + np.sqrt(var_b) * rng.standard_normal((40_000, 4))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)
    # A shared rotation makes the covariances full; the distance does not change.
    rotation, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    assert frechet_distance(a @ rotation, b @ rotation) == pytest.approx(expected, rel=0.03)
    assert frechet_distance(b, a) == pytest.approx(frechet_distance(a, b), rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_refuses_a_single_sample():
    with pytest.raises(DataError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_distances_match_brute_force(monkeypatch):
    monkeypatch.setattr(doppler, "CHUNK_BYTES", 8 * 9 * 2)  # two query rows per block
    rng = np.random.default_rng(1)
    query, reference = rng.standard_normal((5, 3)), rng.standard_normal((9, 3))
    brute = np.linalg.norm(query[:, None] - reference[None], axis=-1).min(1)
    np.testing.assert_allclose(nearest_distances(query, reference), brute, rtol=1e-12)
    points = rng.standard_normal((7, 3))
    pairs = [np.linalg.norm(p - q) for p, q in combinations(points, 2)]
    assert mean_pairwise_distance(points) == pytest.approx(np.mean(pairs), rel=1e-12)
    np.testing.assert_array_equal(nearest_distances(points, points), np.zeros(7))


def test_memorisation_flags_copies_but_not_fresh_samples():
    rng = np.random.default_rng(2)
    train, test = rng.standard_normal((400, 8)), rng.standard_normal((400, 8))
    test_to_train = nearest_distances(test, train)
    fresh = memorisation(nearest_distances(rng.standard_normal((400, 8)), train), test_to_train)
    assert not fresh["memorised"] and fresh["verdict"] == "no memorised copies"
    assert fresh["share_below"] <= fresh["tolerance"] == pytest.approx(0.1)
    copies = memorisation(nearest_distances(train[:100], train), test_to_train)
    assert copies["memorised"] and copies["share_below"] == 1.0
    assert copies["median_generated"] == 0.0 < copies["median_test"]


def band_templates(users: int = 3, size: int = 16) -> np.ndarray:
    """Each user's expected image under :func:`bands`: what a perfectly smooth generator
    that learned the distribution, not the training images, would draw."""
    templates = np.full((users, size, size), 0.2)
    for user in range(users):
        row = band_row(user, users, size)
        templates[user, row - 1:row + 2] += 0.5
    return templates


def test_nearer_train_passes_smooth_images_and_flags_near_copies():
    (x, y), (xt, yt) = bands(40, seed=0), bands(10, seed=1)
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(3), 20)
    smooth = (band_templates()[ids] + rng.normal(0, 0.1, (60, 16, 16))).clip(0, 1)
    smooth = smooth.astype(np.float32)
    # less noisy than the real images, these lie closer to all of them: the quantile test
    # alone cries wolf
    flat = x.reshape(len(x), -1)
    assert memorisation(nearest_distances(smooth.reshape(60, -1), flat),
                        nearest_distances(xt.reshape(len(xt), -1), flat))["memorised"]
    fresh = nearer_train(smooth, x, xt, y, yt)
    assert not fresh["memorised"] and fresh["verdict"] == "no memorised copies"
    assert fresh["nearest_real_images"] >= 30 and fresh["expected_share"] == pytest.approx(0.8)
    assert abs(fresh["share_nearest_train"] - 0.8) < 0.1 and fresh["near_exact_copies"] == 0

    near = (x[::2] + rng.uniform(-0.01, 0.01, x[::2].shape)).clip(0, 1).astype(np.float32)
    copied = nearer_train(near, x, xt, y, yt)
    assert copied["memorised"] and copied["near_exact_copies"] == 0
    assert copied["nearest_real_images"] == 60 and copied["share_nearest_train"] == 1.0
    assert copied["excess"] == pytest.approx(1.0)
    assert "possible memorisation" in copied["verdict"] and copied["z"] > 3

    one = nearer_train(np.concatenate([smooth, x[:1]]), x, xt, y, yt)
    assert one["memorised"] and one["near_exact_copies"] == 1
    assert one["verdict"].startswith("memorised: 1 near-exact")
    with pytest.raises(DataError, match="same users"):
        nearer_train(smooth, x, xt, y, yt + 3)


# --------------------------------------------------------------------------- classifier


def test_classifier_learns_users_and_is_deterministic(toy, classifier):
    (x, y), _, (xt, yt) = toy
    assert (classifier.predict(xt) == yt).mean() >= 0.9
    assert classifier.features(xt).shape == (len(xt), 32)
    again = [UserClassifier(3, SMALL).fit(x, y, epochs=1, batch_size=16, seed=5)
             for _ in range(2)]
    np.testing.assert_array_equal(again[0].features(xt), again[1].features(xt))


def test_classifier_save_load_round_trip(tmp_path, toy, classifier):
    _, _, (xt, _) = toy
    classifier.save(tmp_path / "clf")
    assert sorted(p.name for p in (tmp_path / "clf").iterdir()) == [
        "config.json", "model.safetensors"]
    loaded = UserClassifier.load(tmp_path / "clf")
    np.testing.assert_array_equal(loaded.features(xt), classifier.features(xt))
    assert loaded.seen_users == [0, 1, 2] and loaded.history == classifier.history


def test_augmentation_rolls_time_only():
    x = torch.zeros(4, 8, 16)
    x[:, 3, :] = 1.0  # a band in Doppler row 3
    out = doppler._augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(out.sum(2).argmax(1), torch.full((4,), 3))


# --------------------------------------------------------------------------- report


def test_validate_and_write_report(tmp_path, toy):
    (x, y), (xt, yt), (xg, yg) = toy
    report = validate(x, y, xt, yt, xg, yg, codebook={"codes_used": 200, "perplexity": 150.5},
                      epochs=3, batch_size=16, lr=3e-3, classifier_channels=SMALL)
    assert set(report) == {"data", "classifier", "accuracy", "frechet", "diversity",
                           "memorisation", "codebook", "per_user"}
    assert report["accuracy"]["real_test"] >= 0.9 and report["accuracy"]["generated"] >= 0.9
    assert report["frechet"]["generated_vs_real_test"] >= 0
    assert report["memorisation"]["verdict"] == "no memorised copies"
    assert report["memorisation"]["pixels"]["near_exact_copies"] == 0
    assert report["codebook"] == {"codes_used": 200, "perplexity": 150.5}
    assert set(report["per_user"]) == {"0", "1", "2"}
    assert report["data"]["validation_images"] == 15

    write_report(tmp_path / "out", report, xt, yt, xg, yg, per_user=3)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["grid.png", "report.json", "report.md"]  # no temporary left
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| classifier accuracy |" in markdown and "| user |" in markdown
    assert (tmp_path / "out" / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validate_flags_copied_training_images(toy, classifier):
    (x, y), (xt, yt), _ = toy
    report = validate(x, y, xt, yt, x[::3], y[::3], classifier=classifier)
    memorised = report["memorisation"]
    assert memorised["memorised"] and memorised["pixels"]["near_exact_copies"] == 30
    assert report["classifier"]["trained_here"] is False


def test_pick_users_spreads_over_the_range():
    assert pick_users([2, 0, 1, 2]) == [0, 1, 2]
    picked = pick_users(range(20))
    assert len(picked) == 8 and picked[0] == 0 and picked[-1] == 19


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
    untrained = UserClassifier(3, SMALL)
    with pytest.raises(DataError, match=match) as caught:
        validate(x, y, xt, yt, xg, yg, classifier=untrained)
    assert "\n" not in str(caught.value)
