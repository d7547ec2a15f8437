"""A dataset of a kind the core does not know plugs in through the registry alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from timetok.core.data import registry
from timetok.core.data.registry import DataKind, DatasetSpec
from timetok.core.errors import DataError


def describe_labelled(spec: DatasetSpec, path, options: dict) -> dict:
    with np.load(path) as arrays:
        x, y = arrays["X"], arrays["y"]
    return {"dataset": spec.name, "kind": spec.kind, "samples": len(x),
            "channels": x.shape[1], "length": x.shape[2],
            "classes": {str(c): int((y == c).sum()) for c in np.unique(y)}}


@pytest.fixture
def labelled(tmp_path, monkeypatch, isolated_env):
    """A 'labelled' kind and one dataset of it, registered for this test only."""
    registry.datasets()  # the built-in kinds first, as a real kind module would find them
    monkeypatch.setattr(registry, "KINDS", dict(registry.KINDS))  # undone after the test
    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))
    registry.register_kind(DataKind(
        "labelled", "samples with a class each", describe_labelled,
        lambda report: f"{report['dataset']}: {report['samples']} samples, classes "
                       f"{report['classes']}",
    ))
    registry.register(DatasetSpec("toy", "labelled", "a toy classification set", "toy.npz",
                                  "12 samples", licence="CC0"))
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"  # apart from the run folders the tests write
    folder.mkdir()
    np.savez(folder / "toy.npz", X=rng.normal(size=(12, 2, 16)), y=np.arange(12) % 3)
    return folder


def test_data_list_and_info_speak_for_any_registered_kind(cli, labelled):
    result = cli("data", "list", "--json", "--data-dir", labelled)
    assert result.rc == 0, result.err
    rows = {row["name"]: row for row in json.loads(result.out)}
    assert rows["toy"]["kind"] == "labelled" and rows["etth1"]["kind"] == "series"
    assert rows["toy"]["location"] == str(labelled / "toy.npz")
    assert rows["toy"]["licence"] == "CC0" and rows["toy"]["size"] == "12 samples"
    result = cli("data", "info", "toy", "--json", "--data-dir", labelled)
    assert result.rc == 0, result.err
    assert json.loads(result.out) == {"dataset": "toy", "kind": "labelled", "samples": 12,
                                      "channels": 2, "length": 16,
                                      "classes": {"0": 4, "1": 4, "2": 4}}
    result = cli("data", "info", "toy", "--data-dir", labelled)
    assert result.out.startswith("toy: 12 samples")


def test_a_series_loader_refuses_a_dataset_of_another_kind(cli, labelled, tmp_path):
    from timetok.core.data.series import load_splits

    with pytest.raises(DataError, match="holds labelled"):
        load_splits("toy", 32, data_dir=labelled)
    result = cli("tokenizer", "train", "--dataset", "toy", "--data-dir", labelled,
                 "--save-path", tmp_path / "run")
    result.assert_error("holds labelled", "timetok data list")
    assert not (tmp_path / "run").exists()


def test_registering_needs_a_known_kind_and_a_new_name(labelled):
    with pytest.raises(DataError, match="unknown kind"):
        registry.register(DatasetSpec("x", "graphs", "", None))
    with pytest.raises(DataError, match="already registered"):
        registry.register(DatasetSpec("toy", "labelled", "another", "other.npz"))
