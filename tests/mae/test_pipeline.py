"""The Classifier pipeline: fit from Python, save/load round trip, every input kind, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch

from timetok.core.data.labelled import load_labelled
from timetok.core.errors import CheckpointError, ConfigError, DataError, TimetokError
from timetok.mae.pipeline import Classifier

TINY = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, regressor_layers=1, vocab_size=16,
            batch_size=16, max_steps=3, accelerator="cpu", threads=1)


@pytest.fixture(scope="module")
def ecg():
    """ECG200 on its original scale, [N, 96], with its classes named."""
    data = load_labelled("ecg200")
    x = np.concatenate([data.scaler.inverse_transform(data.splits[s].x)[..., 0]
                        for s in ("train", "val")])
    y = np.concatenate([data.splits[s].y for s in ("train", "val")])
    test = data.scaler.inverse_transform(data.splits["test"].x)[..., 0]
    return x, np.where(y == 1, "normal", "ischemia"), test


@pytest.fixture(scope="module")
def fitted(ecg, tmp_path_factory):
    x, y, _ = ecg
    root = tmp_path_factory.mktemp("fit")
    clf = Classifier(device="cpu").fit(x, y, save_path=str(root / "runs"), **TINY)
    return clf, root


def test_fit_pretrains_and_finetunes_on_arrays_and_predicts_the_original_labels(fitted, ecg):
    clf, root = fitted
    assert (root / "runs" / "pretrain" / "model.safetensors").is_file()
    assert (root / "runs" / "finetune" / "model.safetensors").is_file()
    assert clf.classes == ["ischemia", "normal"]
    predicted = clf.predict(ecg[2])
    assert predicted.shape == (100,) and set(predicted) <= {"ischemia", "normal"}
    probs = clf.predict_proba(ecg[2])
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert list(predicted) == [clf.classes[i] for i in probs.argmax(1)]
    assert clf.embed(ecg[2]).shape == (100, 16)


def test_save_and_from_pretrained_give_identical_answers(fitted, ecg, tmp_path):
    clf, _ = fitted
    loaded = Classifier.from_pretrained(clf.save_pretrained(tmp_path / "model"), device="cpu")
    assert loaded.classes == clf.classes
    np.testing.assert_array_equal(loaded.predict_proba(ecg[2]), clf.predict_proba(ecg[2]))
    np.testing.assert_array_equal(loaded.embed(ecg[2]), clf.embed(ecg[2]))
    assert list(loaded.predict(ecg[2])) == list(clf.predict(ecg[2]))


def test_numpy_torch_and_dataframe_inputs_agree_and_come_back_as_given(fitted, ecg):
    clf, _ = fitted
    x = ecg[2][:7]
    expected = clf.predict_proba(x)
    np.testing.assert_allclose(clf.predict_proba(x[..., None]), expected, rtol=1e-6)
    as_tensor = clf.predict_proba(torch.from_numpy(x))
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), expected, rtol=1e-6)
    frame = pd.DataFrame(x, index=[f"s{i}" for i in range(7)])
    as_frame = clf.predict_proba(frame)
    assert list(as_frame.columns) == clf.classes and list(as_frame.index) == list(frame.index)
    np.testing.assert_allclose(as_frame.to_numpy(), expected, rtol=1e-6)
    labels = clf.predict(frame)
    assert isinstance(labels, pd.Series) and list(labels) == list(clf.predict(x))
    embedded = clf.embed(frame)
    np.testing.assert_allclose(embedded.to_numpy(), clf.embed(x), rtol=1e-6)


def test_numeric_and_tuple_labels_survive_fit_save_and_load(fitted, ecg, tmp_path):
    clf, root = fitted
    x, y, test = ecg
    numbers = torch.tensor(np.where(y == "normal", 7, 3))
    again = Classifier(device="cpu").fit(x, numbers, pretrained=root / "runs" / "pretrain",
                                         **{k: v for k, v in TINY.items() if k in (
                                             "batch_size", "max_steps", "accelerator")})
    assert again.classes == [3, 7]
    predicted = again.predict(torch.from_numpy(test))
    assert isinstance(predicted, torch.Tensor) and set(predicted.tolist()) <= {3, 7}
    pairs = Classifier(device="cpu").fit(x, [(label, 1) for label in y],
                                         pretrained=root / "runs" / "finetune", max_steps=1,
                                         accelerator="cpu")
    loaded = Classifier.from_pretrained(pairs.save_pretrained(tmp_path / "pairs"), device="cpu")
    assert loaded.classes == [("ischemia", 1), ("normal", 1)]
    assert set(loaded.predict(test)) <= {("ischemia", 1), ("normal", 1)}


def test_bad_input_names_the_parameter_and_the_fix(fitted, ecg, tmp_path):
    clf, _ = fitted
    x, y, test = ecg
    cases = [
        (lambda: clf.predict(test[:, :50]), DataError, "[N, 96, 1]"),
        (lambda: clf.predict(np.full((2, 96), np.nan)), DataError, "NaN"),
        (lambda: clf.predict(np.zeros(96)), DataError, "x[None]"),
        (lambda: clf.predict(pd.DataFrame({"a": ["x", "y"]})), DataError, "numbers"),
        (lambda: clf.predict(test, batch_size=0), ConfigError, "batch_size"),
        (lambda: Classifier().predict(test), ConfigError, "fit(X, y)"),
        (lambda: Classifier().fit(x, y[:5]), DataError, "one label per series"),
        (lambda: Classifier().fit(x, np.zeros(len(x))), DataError, "two"),
        (lambda: Classifier().fit(x, y, n_layer=2), ConfigError, "'n_layer'"),
        (lambda: Classifier().fit(x, y, pretrained=tmp_path, d_model=8), ConfigError,
         "'d_model'"),
        (lambda: Classifier().fit(x, y, lr=-1.0), ConfigError, "lr must be > 0"),
        (lambda: Classifier().fit(x, [object()] * len(x)), DataError, "labels must be"),
        (lambda: Classifier(device="cuda:7" if not torch.cuda.is_available() else "bogus"),
         ConfigError, "device"),
    ]
    for call, error, fragment in cases:
        with pytest.raises(error) as caught:
            call()
        assert isinstance(caught.value, TimetokError) and isinstance(caught.value, ValueError)
        assert fragment in str(caught.value), str(caught.value)
        assert "--" not in str(caught.value), str(caught.value)  # speaks parameters


def test_a_folder_without_its_data_file_is_refused_naming_it(fitted, tmp_path):
    clf, _ = fitted
    folder = clf.save_pretrained(tmp_path / "model")
    (folder / "data.json").unlink()
    with pytest.raises(CheckpointError, match="data.json"):
        Classifier.from_pretrained(folder)


def test_a_pretrained_encoder_embeds_but_asks_for_finetuning_to_classify(fitted, ecg):
    _, root = fitted
    encoder = Classifier.from_pretrained(root / "runs" / "pretrain", device="cpu")
    assert encoder.embed(ecg[2][:3]).shape == (3, 16)
    with pytest.raises(ConfigError, match="finetune it first"):
        encoder.predict(ecg[2][:3])
