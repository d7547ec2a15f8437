"""``SpectrogramGenerator``: the folder round trip gives identical answers, numpy, torch and
DataFrame inputs give the same answer in their own kind, and each bad input is refused
with its fix."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.doppler.test_model import generator
from timetok import SpectrogramGenerator
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.doppler.data import ORIENTATION, VALUE_RANGE

SECTION = {"image_size": 32, "value_range": VALUE_RANGE, "orientation": ORIENTATION,
           "users": ["ann", "bob", "cy"], "dataset": "image-folder", "data_path": "sim",
           "split": {"val": 0.1, "test": 0.2, "seed": 0}}


@pytest.fixture(scope="module")
def pipeline():
    torch.manual_seed(0)
    model = generator()
    model.tokenizer(torch.rand(8, 32, 32))  # k-means initialises the codebook
    return SpectrogramGenerator(model.eval(), SECTION)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)


def test_save_and_load_give_identical_answers(pipeline, images, tmp_path):
    folder = pipeline.save_pretrained(tmp_path / "gen")
    assert json.loads((folder / "data.json").read_text())["images"] == SECTION
    loaded = SpectrogramGenerator.from_pretrained(tmp_path / "gen", device="cpu")
    assert loaded.users == ["ann", "bob", "cy"] and loaded.image_size == 32
    np.testing.assert_array_equal(loaded.generate(["bob", 0], n=2, seed=3),
                                  pipeline.generate(["bob", 0], n=2, seed=3))
    np.testing.assert_array_equal(loaded.encode(images), pipeline.encode(images))
    np.testing.assert_array_equal(loaded.reconstruct(images), pipeline.reconstruct(images))


def test_a_training_run_folder_is_found_by_its_save_path(pipeline, tmp_path):
    pipeline.save_pretrained(tmp_path / "run" / "generator")
    assert SpectrogramGenerator.from_pretrained(tmp_path / "run").users == pipeline.users


def test_generate_draws_each_user_in_order_and_repeatably(pipeline):
    images = pipeline.generate(["cy", 0], n=2, seed=1, top_k=5, guidance=2.0)
    assert images.shape == (4, 32, 32) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    np.testing.assert_array_equal(images, pipeline.generate(["cy", 0], n=2, seed=1, top_k=5,
                                                            guidance=2.0))
    tensors = pipeline.generate(["cy", 0], n=2, seed=1, top_k=5, guidance=2.0,
                                return_tensors="pt")
    assert isinstance(tensors, torch.Tensor)
    np.testing.assert_array_equal(tensors.numpy(), images)
    assert pipeline.generate("cy", n=1, seed=1).shape == (1, 32, 32)
    assert pipeline.generate(n=1, seed=0).shape == (3, 32, 32)  # every user


def test_numpy_torch_and_dataframe_inputs_give_the_same_answer(pipeline, images):
    codes = pipeline.encode(images)
    assert codes.shape == (3, 8, 8) and codes.dtype == np.int64
    from_torch = pipeline.encode(torch.from_numpy(images))
    assert isinstance(from_torch, torch.Tensor)
    np.testing.assert_array_equal(from_torch.numpy(), codes)
    frame = pipeline.encode(pd.DataFrame(images[1]))
    assert isinstance(frame, pd.DataFrame) and frame.shape == (8, 8)
    np.testing.assert_array_equal(frame.to_numpy(), codes[1])
    np.testing.assert_array_equal(pipeline.encode(images[1]), codes[1])  # one image

    rebuilt = pipeline.decode(codes)
    assert rebuilt.shape == (3, 32, 32) and 0 <= rebuilt.min() and rebuilt.max() <= 1
    np.testing.assert_array_equal(pipeline.decode(torch.from_numpy(codes)).numpy(), rebuilt)
    np.testing.assert_array_equal(pipeline.decode(pd.DataFrame(codes[2])).to_numpy(),
                                  rebuilt[2])
    np.testing.assert_array_equal(pipeline.reconstruct(images), rebuilt)
    np.testing.assert_array_equal(pipeline.reconstruct(pd.DataFrame(images[0])).to_numpy(),
                                  rebuilt[0])


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 16, 16), np.float32), r"images must be \[N, 32, 32\].*resize"),
    (np.zeros((2, 32, 32), np.uint8), "divide 8-bit pictures by 255"),
    (np.full((1, 32, 32), 1.5, np.float32), r"finite values in \[0, 1\]"),
    (np.zeros((0, 32, 32), np.float32), r"images must be \[N, 32, 32\]"),
])
def test_bad_images_are_refused_with_their_fix(pipeline, bad, match):
    with pytest.raises(DataError, match=match):
        pipeline.encode(bad)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((1, 4, 4), np.int64), r"codes must be \[N, 8, 8\]"),
    (np.full((1, 8, 8), 16), r"integers in \[0, 16\)"),
    (np.zeros((1, 8, 8), np.float32), "integers"),
])
def test_bad_codes_are_refused(pipeline, bad, match):
    with pytest.raises(DataError, match=match):
        pipeline.decode(bad)


def test_bad_generation_settings_are_refused(pipeline):
    with pytest.raises(ConfigError, match="unknown user 'dan'"):
        pipeline.generate(["dan"])
    with pytest.raises(ConfigError, match="top_k must be >= 1"):
        pipeline.generate(0, top_k=0)
    with pytest.raises(ConfigError, match="return_tensors must be"):
        pipeline.generate(0, return_tensors="tf")


def test_a_folder_without_its_images_section_is_refused(pipeline, tmp_path):
    pipeline.model.save_pretrained(tmp_path / "bare")
    with pytest.raises(CheckpointError, match="data.json"):
        SpectrogramGenerator.from_pretrained(tmp_path / "bare")
    with pytest.raises(CheckpointError, match="does not match the model"):
        SpectrogramGenerator(pipeline.model, SECTION | {"users": ["ann", "bob"]})
