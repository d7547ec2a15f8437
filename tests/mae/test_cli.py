"""System 4 through the CLI on the bundled ECG200: pretrain -> finetune -> evaluate -> embed."""

import csv
import json

import numpy as np
import pytest
import torch

from timetok.core.model_folder import read_data_section
from timetok.mae.model import TimeMAE

TINY = ["--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-ff", "32",
        "--regressor-layers", "1", "--vocab-size", "16"]
RUN = ["--batch-size", "16", "--no-progress", "--accelerator", "cpu", "--devices", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from timetok.cli import main

    root = tmp_path_factory.mktemp("mae")
    pre, ft = root / "pre", root / "ft"
    assert main(["mae", "pretrain", "--dataset", "ecg200", *TINY, *RUN, "--max-steps", "6",
                 "--save-path", str(pre)]) == 0
    assert main(["mae", "finetune", "--model", str(pre), "--dataset", "ecg200", *RUN,
                 "--max-steps", "6", "--save-path", str(ft)]) == 0
    return {"pre": pre, "ft": ft, "root": root}


def test_pretraining_writes_the_encoder_its_artifacts_and_a_loss_plot(runs):
    model = TimeMAE.from_pretrained(runs["pre"])
    assert model.head is None and model.config.length == 96
    assert read_data_section(runs["pre"], "labels")["classes"] == ["0", "1"]
    assert read_data_section(runs["pre"], "scaler")["columns"] == ["value"]
    with (runs["pre"] / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # every column the loss plot draws is in the history, with a value where it was measured
    for column in ("train_loss", "train_mrr", "train_mcc", "val_loss", "val_mrr", "val_mcc",
                   "val_mcc_accuracy"):
        assert any(row[column] for row in rows), column
    assert (runs["pre"] / "pretraining_losses.png").stat().st_size > 0


def test_finetuning_selects_on_validation_accuracy(runs):
    summary = json.loads((runs["ft"] / "training.json").read_text())
    assert summary["monitor"] == "val_selection" and 0 <= summary["best_val_selection"] <= 1
    assert summary["classes"] == ["0", "1"]
    model = TimeMAE.from_pretrained(runs["ft"])
    assert model.config.n_classes == 2


def test_evaluate_reports_accuracy_macro_f1_and_the_confusion_matrix(cli, runs):
    result = cli("mae", "evaluate", "--model", runs["ft"], "--dataset", "ecg200", "--json")
    assert result.rc == 0, result.err
    report = json.loads(result.out)
    assert report["split"] == "test" and report["samples"] == 100
    baseline = report["baseline"]  # fitted in the same run, on the same splits
    assert baseline["fitted_on"] == "train+val" and 0.5 < baseline["accuracy"] <= 1
    assert sum(map(sum, report["confusion"])) == 100
    assert set(report["per_class"]) == {"0", "1"}
    assert 0 <= report["macro_f1"] <= report["accuracy"] + 1
    assert (runs["ft"] / "eval-ecg200" / "confusion.png").is_file()


@pytest.mark.parametrize("policy", [["--freeze", "head-only"], ["--linear-probe"],
                                    ["--freeze", "linear-probe"]])
def test_head_only_leaves_the_encoder_as_pretraining_made_it(cli, runs, policy):
    out = runs["root"] / f"probe{policy[-1]}"
    result = cli("mae", "finetune", "--model", runs["pre"], "--dataset", "ecg200",
                 *policy, *RUN, "--max-steps", "4", "--save-path", out)
    assert result.rc == 0, result.err
    table = {line.split()[0]: line.split()[1:] for line in result.out.splitlines()
             if line.split() and line.split()[0] in ("encoder", "head")}
    assert table["encoder"][0] == "0" and table["head"][0] == table["head"][1] != "0"
    pretrained, probe = TimeMAE.from_pretrained(runs["pre"]), TimeMAE.from_pretrained(out)
    for name, tensor in pretrained.encoder.state_dict().items():
        assert torch.equal(probe.encoder.state_dict()[name], tensor), name
    assert torch.equal(probe.slicer.weight, pretrained.slicer.weight)


def test_scratch_starts_from_new_weights(cli, runs):
    out = runs["root"] / "scratch"
    result = cli("mae", "finetune", "--model", runs["pre"], "--dataset", "ecg200", "--scratch",
                 *RUN, "--max-steps", "1", "--lr", "1e-12", "--save-path", out)
    assert result.rc == 0, result.err
    pretrained, scratch = TimeMAE.from_pretrained(runs["pre"]), TimeMAE.from_pretrained(out)
    assert not torch.equal(scratch.slicer.weight, pretrained.slicer.weight)


def test_embed_writes_one_representation_per_sample(cli, runs, tmp_path):
    out = tmp_path / "emb.npz"
    result = cli("mae", "embed", "--model", runs["pre"], "--dataset", "ecg200", "--split",
                 "val", "--output", out)
    assert result.rc == 0, result.err
    with np.load(out) as arrays:
        assert arrays["embeddings"].shape == (20, 16) and arrays["labels"].shape == (20,)


def test_the_classifier_api_on_the_original_scale(runs):
    from timetok import Classifier
    from timetok.core.data.labelled import load_labelled

    data = load_labelled("ecg200")
    classifier = Classifier.from_pretrained(runs["ft"])
    raw = data.scaler.inverse_transform(data.splits["test"].x[:5])
    assert list(classifier.predict(raw)) == [
        ["0", "1"][i] for i in classifier.predict_proba(raw).argmax(1)]
    np.testing.assert_allclose(classifier.predict_proba(raw).sum(1), 1, rtol=1e-5)
    assert classifier.predict(raw[:1])[0] in ("0", "1")
    assert classifier.embed(raw).shape == (5, 16)


@pytest.mark.parametrize("args, fragments", [
    (["--mask-ratio", "1.5"], ["--mask-ratio", "(0, 1)"]),
    (["--mask-ratio", "0.01"], ["--mask-ratio", "at least one masked"]),
    (["--slice-length", "200"], ["--mask-ratio", "--slice-length"]),
])
def test_impossible_pretraining_settings(cli, tmp_path, args, fragments):
    out = tmp_path / "bad"
    result = cli("mae", "pretrain", "--dataset", "ecg200", *TINY, *RUN, *args,
                 "--save-path", out)
    result.assert_error(*fragments)
    assert not out.exists()


NEEDS = "X and y, or X_train, y_train, X_test and y_test"


@pytest.mark.parametrize(("content", "fragments"), [
    ("empty", ["empty.npz holds no arrays; it needs " + NEEDS]),
    ("random", ["random.npz is not an .npz archive", "it must hold " + NEEDS, "numpy.savez"]),
    ("one array", ["one array.npz holds one array (numpy.save)", "it must hold " + NEEDS]),
    ("cut", ["cut.npz: a damaged .npz archive", "it must hold " + NEEDS]),
])
def test_an_npz_that_holds_no_data_set(cli, tmp_path, content, fragments):
    """None of these says 'pickled data' or 'load it unsafely': numpy's words for any file
    that is neither a zip archive nor one array."""
    path = tmp_path / f"{content}.npz"
    if content == "empty":
        np.savez(path)
    elif content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif content == "one array":
        with path.open("wb") as handle:  # np.save would add .npy to the name
            np.save(handle, np.zeros(3))
    else:
        path.write_bytes(npz_set(tmp_path / "whole.npz", 8, 2).read_bytes()[:300])
    before = path.read_bytes()
    out = tmp_path / "run"
    result = cli("mae", "pretrain", "--dataset", "npz", "--data-path", path, *TINY, *RUN,
                 "--max-steps", "2", "--save-path", out)
    result.assert_error(*fragments)
    assert "pickle" not in result.err and "unsafe" not in result.err
    assert path.read_bytes() == before and not out.exists()


def npz_set(path, length: int, classes: int):
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.normal(size=(60, length, 1)).astype(np.float32),
             y=np.arange(60) % classes)
    return path


def test_a_model_of_another_shape_or_class_count_is_refused(cli, runs, tmp_path):
    shorter = npz_set(tmp_path / "short.npz", 50, 2)
    result = cli("mae", "finetune", "--model", runs["pre"], "--dataset", "npz", "--data-path",
                 shorter, *RUN, "--save-path", tmp_path / "x")
    result.assert_error("96 steps", "50")
    assert not (tmp_path / "x").exists()
    result = cli("mae", "embed", "--model", runs["pre"], "--dataset", "npz", "--data-path",
                 shorter, "--output", tmp_path / "e.npz")
    result.assert_error("96 steps", "50")
    three = npz_set(tmp_path / "three.npz", 96, 3)
    result = cli("mae", "evaluate", "--model", runs["ft"], "--dataset", "npz", "--data-path",
                 three)
    result.assert_error("2 classes", "3")


def test_linear_probe_and_another_freeze_policy_exclude_each_other(cli, runs, tmp_path):
    result = cli("mae", "finetune", "--model", runs["pre"], "--dataset", "ecg200",
                 "--linear-probe", "--freeze", "encoder", *RUN, "--save-path", tmp_path / "x")
    result.assert_error("--linear-probe", "--freeze")


def test_evaluate_of_a_pretrained_encoder_asks_for_finetuning(cli, runs):
    result = cli("mae", "evaluate", "--model", runs["pre"], "--dataset", "ecg200")
    result.assert_error("finetune it first")
