"""The user classifier: it learns a separable toy task through the shared runner, draws
the same weights for the same seed, and round-trips as a model folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.doppler.bands import SMALL, bands
from timetok.core.errors import DataError
from timetok.core.outputs import ClassifierOutput
from timetok.core.train.runner import RunOptions, begin
from timetok.doppler.classifier import (
    UserClassifier,
    UserClassifierConfig,
    augment,
    train_classifier,
)


def options(epochs: int, seed: int = 0) -> RunOptions:
    return RunOptions(n_epochs=epochs, accelerator="cpu", devices="1", progress=False,
                      seed=seed, checkpoint_every=10**9)


def fit(images, users, out, epochs: int = 4, seed: int = 0) -> UserClassifier:
    begin(options(epochs, seed))
    return train_classifier(images, users, out, options(epochs, seed), channels=SMALL,
                            lr=3e-3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classifier")
    x, y = bands(30)
    return fit(x, y, folder), folder


def test_classifier_learns_users(trained):
    classifier, folder = trained
    xt, yt = bands(15, seed=2)
    assert (classifier.predict(xt) == yt).mean() >= 0.9
    assert classifier.features(xt).shape == (len(xt), 32)
    assert classifier.history["validation_images"] == 15
    assert classifier.history["best_val_accuracy"] >= 0.9
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "history.csv", "model.safetensors", "training.json"]


def test_the_same_seed_draws_the_same_classifier(tmp_path):
    x, y = bands(10)
    first, second = (fit(x, y, tmp_path / name, epochs=1, seed=5) for name in "ab")
    np.testing.assert_array_equal(first.features(x), second.features(x))
    third = fit(x, y, tmp_path / "c", epochs=1, seed=6)
    assert not np.array_equal(first.features(x), third.features(x))


def test_classifier_folder_round_trip(trained):
    classifier, folder = trained
    xt, _ = bands(5, seed=3)
    loaded = UserClassifier.load(folder)
    np.testing.assert_array_equal(loaded.features(xt), classifier.features(xt))
    assert loaded.seen_users == [0, 1, 2] and loaded.history["epochs"] == 4


def test_forward_returns_the_classifier_output_with_its_loss():
    torch.manual_seed(0)
    model = UserClassifier(UserClassifierConfig(3, channels=[4, 8]))
    images, users = torch.rand(5, 16, 16), torch.tensor([0, 1, 2, 0, 1])
    out = model(images, users)
    assert isinstance(out, ClassifierOutput)
    assert out.logits.shape == (5, 3) and out.embedding.shape == (5, 8)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, users))
    assert model(images).loss is None


def test_augmentation_rolls_time_only():
    torch.manual_seed(0)
    x = torch.zeros(4, 8, 16)
    x[:, 3, :] = 1.0  # a band in Doppler row 3
    assert torch.equal(augment(x).sum(2).argmax(1), torch.full((4,), 3))


@pytest.mark.parametrize("images, users, match", [
    (np.zeros((6, 8, 8), np.uint8), [0, 0, 0, 1, 1, 1], "floats"),
    (np.zeros((6, 8, 8), np.float32), [0, 0, 1], "one user id per image"),
    (np.full((6, 8, 8), 2, np.float32), [0, 0, 0, 1, 1, 1], r"\[0, 1\]"),
])
def test_bad_training_images_are_refused(tmp_path, images, users, match):
    with pytest.raises(DataError, match=match):
        train_classifier(images, np.array(users), tmp_path, options(1))
    assert not any(tmp_path.iterdir())
