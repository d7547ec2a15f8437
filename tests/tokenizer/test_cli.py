"""``timetok tokenizer``: a benchmark config runs from the command line, ``evaluate`` (and
its old spelling ``eval``) writes the report, encode and decode round-trip a CSV."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import TINY_MODEL

ROOT = Path(__file__).resolve().parents[2]
RUN = ["--no-progress", "--accelerator", "cpu", "--devices", "1"]


def test_a_benchmark_config_runs_from_the_command_line(cli, make_csv, tmp_path):
    csv, run = make_csv(), tmp_path / "run"
    result = cli("tokenizer", "train", "--config", ROOT / "configs/tokenizer/ettm1/plain-vq.yaml",
                 "--dataset", "custom", "--data-path", csv, *TINY_MODEL, "--max-steps", "2",
                 "--val-every", "2", *RUN, "--save-path", run)
    assert result.rc == 0, result.err
    settings = yaml.safe_load((run / "run.yaml").read_text())
    assert settings["quantizer"] == "plain-vq" and settings["seed"] == 1  # from the file
    assert settings["batch_size"] == 8 and settings["max_steps"] == 2  # flags win
    assert json.loads((run / "config.json").read_text())["quantizer"] == "plain-vq"


@pytest.mark.parametrize(("flags", "message"), [
    (["--compression-factor", "0"], "--compression-factor must be one of 4, 8, 12, 16, got 0"),
    (["--patch-size", "0"], "--patch-size must be >= 1, got 0"),
    (["--quantizer", "fsq", "--fsq-levels", "4,4", "--num-embeddings", "32"],
     "--num-embeddings 32 does not fit --fsq-levels 4,4, whose codebook holds their "
     "product, 16 codes; leave --num-embeddings out or set it to 16"),
], ids=["compression-0", "patch-0", "fsq-num-embeddings"])
def test_settings_that_would_be_ignored_are_refused(cli, make_csv, tmp_path, flags, message):
    run = tmp_path / "run"
    result = cli("tokenizer", "train", "--dataset", "custom", "--data-path", make_csv(),
                 "--context-points", "32", *flags, *RUN, "--save-path", run)
    result.assert_error(message)
    assert not run.exists()


def test_fsq_levels_from_a_yaml_list_survive_a_resume(cli, make_csv, tmp_path):
    csv, run = make_csv(), tmp_path / "run"
    config = tmp_path / "fsq.yaml"
    config.write_text("quantizer: fsq\nfsq_levels: [4, 4]\n")
    result = cli("tokenizer", "train", "--config", config, "--dataset", "custom", "--data-path",
                 csv, *TINY_MODEL, "--max-steps", "2", *RUN, "--save-path", run)
    assert result.rc == 0, result.err
    assert yaml.safe_load((run / "run.yaml").read_text())["fsq_levels"] == [4, 4]
    result = cli("tokenizer", "train", "--resume", run, "--max-steps", "4", "--no-progress")
    assert result.rc == 0, result.err
    assert json.loads((run / "training.json").read_text())["global_step"] == 4


def test_evaluate_and_its_hidden_old_spelling_write_the_report(cli, tiny_run, tmp_path):
    for verb in ("evaluate", "eval"):
        out = tmp_path / verb
        result = cli("tokenizer", verb, "--model", tiny_run.path, "--dataset", "custom",
                     "--data-path", tiny_run.csv, "--out", out, "--threads", "1", "--json")
        assert result.rc == 0, result.err
        assert json.loads(result.out)["windows"] > 0
        assert {p.name for p in out.iterdir()} == {"report.json", "report.md",
                                                   "reconstructions.png", "code_usage.png"}
    listing = cli("tokenizer", "--help").out
    assert "evaluate" in listing and " eval " not in listing


def test_encode_then_decode_is_the_pipelines_reconstruction(cli, tiny_run, tmp_path):
    from timetok.tokenizer.pipeline import TimeSeriesTokenizer

    codes, decoded = tmp_path / "codes.npy", tmp_path / "decoded.csv"
    result = cli("tokenizer", "encode", "--model", tiny_run.path, "--input", tiny_run.csv,
                 "--output", codes, "--threads", "1")
    assert result.rc == 0, result.err
    result = cli("tokenizer", "decode", "--model", tiny_run.path, "--input", codes,
                 "--output", decoded, "--threads", "1")
    assert result.rc == 0, result.err
    assert decoded.read_text().startswith("a,b\n")
    restored = np.loadtxt(decoded, delimiter=",", skiprows=1)
    tokenizer = TimeSeriesTokenizer.from_pretrained(tiny_run.path, device="cpu")
    context = tokenizer.config.context_points
    original = np.loadtxt(tiny_run.csv, delimiter=",", skiprows=1, usecols=(1, 2),
                          dtype=np.float32)[:len(restored)]
    expected = tokenizer.reconstruct(original.reshape(-1, context, 2)).reshape(-1, 2)
    np.testing.assert_allclose(restored, expected, rtol=1e-5, atol=1e-5)  # 6 digits in CSV


def test_encode_and_decode_refuse_an_output_named_for_another_format(cli, tiny_run, encoded,
                                                                     tmp_path):
    cli("tokenizer", "encode", "--model", tiny_run.path, "--input", tiny_run.csv, "--output",
        tmp_path / "codes.csv").assert_error("must end in .npy", "codes.npy")
    cli("tokenizer", "decode", "--model", tiny_run.path, "--input", encoded, "--output",
        tmp_path / "series.npy").assert_error("must end in .csv", "series.csv")
    assert not (tmp_path / "codes.csv").exists() and not (tmp_path / "series.npy").exists()


def test_encode_and_decode_never_write_over_the_model_folder(cli, run_copy, tiny_run, encoded):
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    for name in ("data.json", "model.safetensors", "config.json"):
        cli("tokenizer", "decode", "--model", run_copy, "--input", encoded, "--output",
            run_copy / name).assert_error("lies inside the model folder it reads", "--output")
        cli("tokenizer", "encode", "--model", run_copy, "--input", tiny_run.csv, "--output",
            run_copy / name).assert_error("lies inside the model folder it reads", "--output")
    assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before
