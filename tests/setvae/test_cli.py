"""System 5 through the CLI on a PhysioNet-layout fixture: pretrain -> finetune -> evaluate
-> predict on a tiny model, the pipeline, the key report and each bad input."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from tests.core.data.test_records import many_stays, write_physionet
from tests.setvae.test_recipe import damaged, icu_stays, write_icu
from tests.test_import_cost import _heavy_modules_after

TINY = ["--d-model", "16", "--latent-dim", "4", "--set-layers", "1", "--n-heads", "2",
        "--seq-layers", "1", "--d-ff", "32", "--beta-warmup-steps", "2"]
RUN = ["--batch-size", "8", "--no-progress", "--accelerator", "cpu", "--devices", "1",
       "--max-steps", "6"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A pretrained and a finetuned folder on 60 fixture stays (bucket 1 h)."""
    from timetok.cli import main

    root = tmp_path_factory.mktemp("setvae")
    data = ["--data-path", str(write_icu(root / "p12")), "--bucket", "1"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        patch.delenv("TIMETOK_DATA_DIR", raising=False)
        assert main(["setvae", "pretrain", *data, *TINY, *RUN,
                     "--save-path", str(root / "pre")]) == 0
        assert main(["setvae", "finetune", "--model", str(root / "pre"), *data, *RUN,
                     "--pos-weight", "auto", "--save-path", str(root / "ft")]) == 0
    return {"pre": root / "pre", "ft": root / "ft", "root": root, "data": data}


@pytest.fixture(autouse=True)
def _own_cache(isolated_env):
    """Every test caches into its own empty folder."""


def test_pretraining_writes_the_model_its_artifacts_and_its_figures(runs):
    pre = runs["pre"]
    for name in ("config.json", "model.safetensors", "data.json", "load_report.json",
                 "history.csv", "pretraining_losses.png", "kl_per_dim.png"):
        assert (pre / name).stat().st_size > 0, name
    assert set(json.loads((pre / "data.json").read_text())) == {
        "variables", "records_scaler", "records", "split"}
    assert "val_kl_d03" in (pre / "history.csv").read_text().splitlines()[0]


def split_ids(folder) -> dict:
    return json.loads((folder / "data.json").read_text())["split"]


def test_two_runs_of_one_split_hold_the_same_stays(runs, cli, tmp_path):
    first = split_ids(runs["pre"])
    assert first == split_ids(runs["ft"])
    result = cli("setvae", "pretrain", *runs["data"], *TINY, *RUN, "--max-steps", "1",
                 "--save-path", tmp_path / "again")
    assert result.rc == 0, result.err
    assert split_ids(tmp_path / "again") == first
    assert len(first["test"]) == 7 and not set(first["test"]) & set(first["train"])


def test_finetuning_prints_the_key_counts_once_and_the_keys_to_a_file(runs, cli, tmp_path):
    result = cli("setvae", "finetune", "--model", runs["pre"], *runs["data"], *RUN,
                 "--feature", "uncertainty", "--loss", "focal", "--no-summaries",
                 "--save-path", tmp_path / "ft")
    assert result.rc == 0, result.err
    assert result.out.count("60 stays, split 0") == 1 and "60 stays read" not in result.out
    assert result.out.count(" matched, 4 missing (e.g. head.0.weight)") == 1
    assert "set_encoder.variable.weight" not in result.out
    keys = (tmp_path / "ft" / "warm_start.txt").read_text()
    assert "matched     set_encoder.variable.weight" in keys
    assert "missing     head.0.weight" in keys and "wide.weight" not in keys
    assert "freeze head-only:" in result.out
    share = float(result.out.split("trainable share: ")[1].split(" %")[0])
    assert 0 < share < 5
    summary = json.loads((tmp_path / "ft" / "training.json").read_text())
    assert summary["monitor"] == "val_auroc" and 0 <= summary["best_val_auroc"] <= 1


def test_every_key_is_logged_for_verbose_runs(runs, cli, tmp_path, caplog):
    with caplog.at_level("INFO", logger="timetok.setvae.recipe"):
        result = cli("setvae", "finetune", "--model", runs["pre"], *runs["data"], *RUN,
                     "--max-steps", "1", "--save-path", tmp_path / "ft")
    assert result.rc == 0, result.err
    assert "matched     set_encoder.variable.weight" in caplog.text
    assert "60 stays read, 60 kept" in caplog.text  # the load report, also in the run folder


def test_evaluate_reports_auroc_auprc_and_draws_the_curves(runs, cli):
    result = cli("setvae", "evaluate", "--model", runs["ft"], "--json")
    assert result.rc == 0, result.err
    headline = json.loads(result.out)
    assert headline["stays"] == 7 and headline["positives"] == 2
    assert 0 <= headline["auroc"] <= 1 and 0 < headline["auprc"] <= 1
    baseline = headline["baseline"]
    assert baseline["method"] == "logistic regression on stay summaries"
    assert baseline["stays"] == 7 and 0 <= baseline["auroc"] <= 1 and baseline["C"] > 0
    out = runs["ft"] / "eval-physionet2012-split0"
    for name in ("roc.png", "precision_recall.png", "calibration.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert sum(b["stays"] for b in report["calibration"]) == 7
    assert report["baseline"]["auroc"] == baseline["auroc"]
    with (out / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["stay_id"] for row in rows] == split_ids(runs["ft"])["test"]


def test_evaluate_prints_the_baseline_beside_the_model(runs, cli, tmp_path):
    result = cli("setvae", "evaluate", "--model", runs["ft"], "--out", tmp_path / "e")
    assert result.rc == 0, result.err
    table = [line for line in result.out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| method | stays | positives | auroc")
    assert table[1].startswith("| SeqSetVAE | 7 | 2 |")
    assert table[2].startswith("| logistic (C ")
    assert "fitted on the split's training stays in this run" in result.out
    result = cli("setvae", "evaluate", "--model", runs["ft"], "--no-baseline", "--out",
                 tmp_path / "n")
    assert result.rc == 0, result.err
    assert "logistic" not in result.out


def test_predict_writes_the_risk_of_each_stay_as_the_pipeline_computes_it(runs, cli, tmp_path):
    from timetok import MortalityClassifier
    from timetok.core.data.records import load_records

    out = tmp_path / "risk.csv"
    result = cli("setvae", "predict", "--model", runs["ft"], "--output", out)
    assert result.rc == 0, result.err
    with out.open() as handle:
        assert handle.readline() == "stay_id,probability\n"
        rows = list(csv.reader(handle))
    records = load_records("physionet2012", data_path=runs["data"][1])
    assert [r[0] for r in rows] == records.ids.tolist()
    probs = np.array([float(r[1]) for r in rows])
    assert ((probs >= 0) & (probs <= 1)).all()
    classifier = MortalityClassifier.from_pretrained(runs["ft"])
    np.testing.assert_allclose(classifier.predict_proba(records), probs, atol=1e-6)
    result = cli("setvae", "predict", "--model", runs["ft"], "--split", "0", "--output", out)
    assert result.rc == 0, result.err
    assert [line.split(",")[0] for line in out.read_text().splitlines()[1:]] == split_ids(
        runs["ft"])["test"]


def test_the_pipeline_equals_the_trained_model_on_the_scaled_sets(runs):
    import torch

    from timetok.core.data.records import collate_sets
    from timetok.setvae.data import load_splits
    from timetok.setvae.model import SeqSetVAE
    from timetok.setvae.pipeline import MortalityClassifier

    data = load_splits(data_path=runs["data"][1], bucket=1.0)
    model = SeqSetVAE.from_pretrained(runs["ft"])
    test = data.sets["test"]
    with torch.no_grad():
        expected = model(collate_sets([test[i] for i in range(len(test))])).logits.softmax(-1)
    got = MortalityClassifier.from_pretrained(runs["ft"]).predict_proba(
        data.records, data.index["test"], batch_size=3)
    np.testing.assert_allclose(got, expected[:, 1].numpy(), atol=1e-6)


def test_under_95_percent_of_the_backbone_is_refused_unless_allowed(runs, cli, tmp_path):
    old = damaged(runs["pre"], tmp_path / "old")
    out = tmp_path / "ft"
    result = cli("setvae", "finetune", "--model", old, *runs["data"], *RUN, "--save-path", out)
    result.assert_error("95 % needed", "--allow-partial")
    assert "unexpected  seq_model.project.weight" in result.out
    assert not out.exists()
    result = cli("setvae", "finetune", "--model", old, *runs["data"], *RUN, "--allow-partial",
                 "--max-steps", "1", "--save-path", out)
    assert result.rc == 0, result.err
    assert "missing (e.g. sequence.project.weight)" in result.out
    assert "missing     sequence.project.weight" in (out / "warm_start.txt").read_text()


def test_a_model_of_another_variable_vocabulary_is_refused(runs, cli, tmp_path):
    table = many_stays(tmp_path / "t", n=60)
    out = tmp_path / "ft"
    result = cli("setvae", "finetune", "--model", runs["pre"], "--dataset", "records-csv",
                 "--data-path", table, *RUN, "--save-path", out)
    result.assert_error("reads 36 variables", "records-csv holds 3 (HR, Temp, pH)",
                        "another variable vocabulary")
    assert not out.exists()


@pytest.mark.parametrize(("positives", "part"), [(0, "training"), (1, "validation")])
def test_stays_of_one_outcome_are_refused_before_training(runs, cli, tmp_path, positives, part):
    """All labels 0 would train a head on one outcome; one positive stay leaves the
    validation stays without one, and their AUROC (which picks the checkpoint) undefined."""
    stays = icu_stays(60, positive=0.0)
    outcomes = stays["outcomes"]["a"]
    outcomes[:positives] = [(record, 1) for record, _ in outcomes[:positives]]
    folder = write_physionet(tmp_path / "p12", stays["stays"], stays["outcomes"])
    out = tmp_path / "ft"
    result = cli("setvae", "finetune", "--model", runs["pre"], "--data-path", folder,
                 "--bucket", "1", *RUN, "--save-path", out)
    result.assert_error(f"the {part} stays of split 0", "all have label 0", "both outcomes",
                        "--limit N")
    assert not out.exists()


@pytest.mark.parametrize("args, fragments", [
    (["--scratch", "--allow-partial"], ["--allow-partial", "--scratch", "drop one"]),
    (["--scratch", "--freeze", "head-only"], ["--freeze head-only with --scratch",
                                              "use --freeze none"]),
    (["--freeze", "everything"], ["--freeze takes a policy", "head-only"]),
    (["--pos-weight", "many"], ["--pos-weight must be a number > 0 or 'auto'"]),
    (["--d-model", "8"], ["leave --d-model out"]),
    (["--bucket", "hourly"], ["--bucket must be 'exact' or a number of hours"]),
    (["--split", "5"], ["--split", "5"]),
    (["--sets", "a,x"], ["--sets must be distinct names among a, b, c"]),
    (["--limit", "0"], ["--limit"]),
])
def test_impossible_finetuning_settings(runs, cli, tmp_path, args, fragments):
    out = tmp_path / "bad"
    result = cli("setvae", "finetune", "--model", runs["pre"], *runs["data"], *RUN, *args,
                 "--save-path", out)
    result.assert_error(*fragments)
    assert not out.exists()


def test_other_bad_inputs(runs, cli, tmp_path):
    cli("setvae", "finetune", *runs["data"], *RUN, "--save-path", tmp_path / "x").assert_error(
        "needs a pretrained folder, --model PATH, or --scratch")
    cli("setvae", "pretrain", *runs["data"], "--bucket", "0", "--save-path",
        tmp_path / "x").assert_error("--bucket must be")
    cli("setvae", "evaluate", "--model", runs["pre"]).assert_error("finetune it first")
    cli("setvae", "evaluate", "--model", runs["ft"], "--split", "1").assert_error(
        "were among", "training or validation stays", "the stays of split 0")
    cli("setvae", "predict", "--model", runs["ft"], "--output", tmp_path / "r.txt").assert_error(
        "--output must name a .csv file")
    moved = shutil.copytree(runs["ft"], tmp_path / "moved")
    sections = json.loads((moved / "data.json").read_text())
    sections["records"]["source"] = "/nowhere/p12"
    (moved / "data.json").write_text(json.dumps(sections))
    cli("setvae", "evaluate", "--model", moved).assert_error(
        "trained on /nowhere/p12, which is not there", "--data-dir or --data-path")
    del sections["records_scaler"]
    (moved / "data.json").write_text(json.dumps(sections))
    cli("setvae", "predict", "--model", moved, "--output", tmp_path / "r.csv").assert_error(
        "no records scaler", "section 'records_scaler' of data.json")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv", [["setvae", "--help"], ["setvae", "pretrain", "--help"],
                                  ["setvae", "finetune", "--help"],
                                  ["setvae", "evaluate", "--help"],
                                  ["setvae", "predict", "--help"]],
                         ids=lambda argv: "-".join(argv))
def test_help_imports_no_heavy_library(argv):
    body = ("import contextlib, io\nfrom timetok.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main({argv!r}) == 0\n")
    assert _heavy_modules_after(body) == []
