"""The MortalityClassifier contract: a save_pretrained / from_pretrained round trip, Records,
DataFrame, numpy and torch inputs giving one answer in their own kind, and each bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from tests.setvae.test_recipe import write_icu
from timetok.core.data.records import Records, load_records
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.setvae.config import FinetuneConfig
from timetok.setvae.pipeline import MortalityClassifier
from timetok.setvae.recipe import finetune

TINY = dict(d_model=16, latent_dim=4, set_layers=1, n_heads=2, seq_layers=1, d_ff=32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A mortality model finetuned from new weights for 3 steps on 60 fixture stays."""
    root = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        config = FinetuneConfig(data_path=str(write_icu(root / "p12")), bucket=1.0, scratch=True,
                                batch_size=8, max_steps=3, progress=False, accelerator="cpu",
                                devices="1", save_path=str(root / "ft"), **TINY)
        finetune(config)
        records = load_records("physionet2012", data_path=config.data_path)
    return root / "ft", records


@pytest.fixture(autouse=True)
def _own_cache(isolated_env):
    """Every test caches into its own empty folder."""


def long_table(records: Records) -> pd.DataFrame:
    """The stays as one DataFrame of (stay_id, time, variable, value) rows, each stay's
    statics (no time) first."""
    frames = []
    for i, stay in enumerate(records.ids):
        rows = slice(records.offsets[i], records.offsets[i + 1])
        observed = ~np.isnan(records.statics[i])
        frames.append(pd.DataFrame({
            "stay_id": stay,
            "time": [np.nan] * int(observed.sum()) + records.times[rows].tolist(),
            "variable": [n for n, o in zip(records.static_names, observed, strict=True) if o]
                        + [records.variable_names[v] for v in records.variables[rows]],
            "value": records.statics[i][observed].tolist() + records.values[rows].tolist()}))
    return pd.concat(frames, ignore_index=True)


def as_array(frame: pd.DataFrame, clf: MortalityClassifier) -> np.ndarray:
    """The long table as ``[K, 4]`` rows with the model's variable codes."""
    static = frame["time"].isna().to_numpy()
    series = {name: i for i, name in enumerate(clf.vocabulary.variables)}
    n = len(series)
    statics = {name: n + i for i, name in enumerate(clf.vocabulary.statics)}
    codes = [statics[v] if s else series[v] for v, s in zip(frame["variable"], static,
                                                             strict=True)]
    return np.stack([frame["stay_id"].astype(float), frame["time"], codes, frame["value"]], 1)


def test_save_and_from_pretrained_give_identical_answers(folder, tmp_path):
    path, records = folder
    clf = MortalityClassifier.from_pretrained(path, device="cpu")
    again = MortalityClassifier.from_pretrained(clf.save_pretrained(tmp_path / "copy"))
    assert set(json.loads((tmp_path / "copy" / "data.json").read_text())) == {
        "records_scaler", "variables", "records", "split"}
    np.testing.assert_array_equal(again.predict_proba(records), clf.predict_proba(records))
    np.testing.assert_array_equal(again.embed(records), clf.embed(records))
    assert again.split == clf.split and again.settings == clf.settings


def test_records_dataframe_numpy_and_torch_give_one_answer_in_their_own_kind(folder):
    path, records = folder
    clf = MortalityClassifier.from_pretrained(path)
    expected = clf.predict_proba(records)
    assert isinstance(expected, np.ndarray) and expected.shape == (60,)
    frame = long_table(records)
    series = clf.predict_proba(frame)
    assert isinstance(series, pd.Series) and series.name == "probability"
    assert series.index.name == "stay_id" and series.index.tolist() == records.ids.tolist()
    np.testing.assert_allclose(series.to_numpy(), expected, atol=1e-6)
    array = as_array(frame, clf)
    np.testing.assert_allclose(clf.predict_proba(array), expected, atol=1e-6)
    tensor = clf.predict_proba(torch.from_numpy(array))
    assert isinstance(tensor, torch.Tensor)
    np.testing.assert_allclose(tensor.numpy(), expected, atol=1e-6)


def test_stays_come_back_in_the_order_they_first_appear(folder):
    path, records = folder
    clf = MortalityClassifier.from_pretrained(path)
    frame = long_table(records)
    last_first = pd.concat([frame[frame["stay_id"] == s] for s in records.ids[::-1]])
    series = clf.predict_proba(last_first)
    assert series.index.tolist() == records.ids[::-1].tolist()
    np.testing.assert_allclose(series.to_numpy(), clf.predict_proba(records)[::-1], atol=1e-6)


def test_predict_and_embed(folder):
    path, records = folder
    clf = MortalityClassifier.from_pretrained(path)
    frame = long_table(records)
    probs = clf.predict_proba(frame)
    threshold = float(probs.median())
    labels = clf.predict(frame, threshold=threshold)
    assert labels.name == "prediction" and labels.dtype == np.int64
    assert (labels == (probs >= threshold)).all()
    np.testing.assert_array_equal(clf.predict(records, threshold), labels.to_numpy())
    embedding = clf.embed(frame)
    assert embedding.shape == (60, 16) and embedding.index.name == "stay_id"
    assert list(embedding.columns[:2]) == ["embedding_0", "embedding_1"]
    np.testing.assert_allclose(embedding.to_numpy(), clf.embed(records), atol=1e-6)
    assert clf.embed(torch.from_numpy(as_array(frame, clf))).shape == (60, 16)


def test_bad_inputs_name_the_parameter_and_the_fix(folder):
    path, records = folder
    clf = MortalityClassifier.from_pretrained(path)
    frame = long_table(records)
    with pytest.raises(DataError, match="lacks the column.* value .*pass one row per "
                                        "observation with the columns stay_id, time"):
        clf.predict_proba(frame.drop(columns="value"))
    with pytest.raises(DataError, match="hold variables Lactate2, which the model does not "
                                        "read .* leave them out"):
        clf.predict_proba(frame.assign(variable=frame["variable"].replace("HR", "Lactate2")))
    statics_only = frame[frame["time"].isna()]
    with pytest.raises(DataError, match="has no time-series observation .* leave them out"):
        clf.predict_proba(statics_only)
    with pytest.raises(DataError, match="time 'noon' is not a number"):
        clf.predict_proba(frame.astype({"time": object}).assign(time="noon"))
    with pytest.raises(DataError, match=r"must be \[K, 4\] rows"):
        clf.predict_proba(np.zeros((3, 3)))
    with pytest.raises(DataError, match="variable code 99 is not one of the model's 0 to 40"):
        clf.predict_proba(np.array([[1.0, 0.5, 99, 1.0]]))
    with pytest.raises(ConfigError, match=r"threshold must lie in \[0, 1\]"):
        clf.predict(frame, threshold=2)
    with pytest.raises(ConfigError, match="batch_size must be a whole number >= 1"):
        clf.predict_proba(frame, batch_size=0)
    with pytest.raises(ConfigError, match="index picks stays of a Records object"):
        clf.predict_proba(frame, index=np.arange(3))
    with pytest.raises(DataError, match="records must be a DataFrame"):
        clf.predict_proba([1, 2, 3])
    with pytest.raises(ConfigError, match="device must be 'auto', 'cpu'"):
        MortalityClassifier.from_pretrained(path, device="abacus")


def test_a_folder_without_its_records_scaler_is_an_error_naming_data_json(folder, tmp_path):
    copy = shutil.copytree(folder[0], tmp_path / "copy")
    sections = json.loads((copy / "data.json").read_text())
    del sections["records_scaler"]
    (copy / "data.json").write_text(json.dumps(sections))
    with pytest.raises(CheckpointError, match=r"no records scaler \(section 'records_scaler' of "
                                              r"data.json\); re-export"):
        MortalityClassifier.from_pretrained(copy)
