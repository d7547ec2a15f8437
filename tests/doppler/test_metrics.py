"""The measures of generated images against closed forms and brute force: the Fréchet
distance, nearest and pairwise distances, both memorisation tests."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from tests.doppler.bands import band_row, bands
from timetok.core.errors import DataError
from timetok.doppler import metrics
from timetok.doppler.metrics import (
    frechet_distance,
    mean_pairwise_distance,
    memorisation,
    nearer_train,
    nearest_distances,
)


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
    monkeypatch.setattr(metrics, "CHUNK_BYTES", 8 * 9 * 2)  # two query rows per block
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


