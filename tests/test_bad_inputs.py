"""More bad input through the data and tokenizer commands: one ``error: `` line, exit 2,
and nothing written. (The language model's commands: ``test_forecast.py``.)"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("isolated_env")

ROOT = os.geteuid() == 0
needs_permissions = pytest.mark.skipif(ROOT, reason="root writes into read-only folders")


def _train(csv, save_path, flags, *extra):
    return ["tokenizer", "train", "--dataset", "custom", "--data-path", csv, *flags,
            "--save-path", save_path, *extra]


@pytest.fixture
def read_only(tmp_path):
    """A folder this process may not write into (mode 0555); made writable again after."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.fixture
def a_file(tmp_path) -> Path:
    """A regular file where an output's folder would have to be."""
    path = tmp_path / "data.csv"
    path.write_text("x\n")
    return path


# --- values beyond float32 --------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e39", "1e300", "-1e39"])
def test_values_beyond_float32_in_data_info(cli, make_csv, value):
    csv = make_csv(cells={(3, "b"): value})
    result = cli("data", "info", "custom", "--data-path", csv)
    result.assert_error(f"'{value}'", "column 'b'", "line 5", "float32", "rescale")


@pytest.mark.parametrize("value", ["1e39", "1e300"])
def test_values_beyond_float32_in_training_and_encoding(cli, make_csv, tmp_path, tiny_flags,
                                                        tiny_run, value):
    csv = make_csv(cells={(3, "a"): value})
    run = tmp_path / "run"
    cli(*_train(csv, run, tiny_flags)).assert_error(f"'{value}'", "float32")
    assert not run.exists()
    codes = tmp_path / "codes.npy"
    cli("tokenizer", "encode", "--model", tiny_run.path, "--input", csv,
        "--output", codes).assert_error(f"'{value}'", "float32")
    assert not codes.exists() and not (tmp_path / "codes.stats.npz").exists()


# --- outputs that cannot be written -----------------------------------------------------


def _outputs(tiny_run, encoded, base: Path) -> dict[str, list]:
    """Each writing command of the tokenizer, its output under ``base``."""
    return {
        "train": _train(tiny_run.csv, base / "run", ["--context-points", "32"]),
        "eval": ["tokenizer", "eval", "--model", tiny_run.path, "--dataset", "custom",
                 "--data-path", tiny_run.csv, "--out", base / "eval"],
        "encode": ["tokenizer", "encode", "--model", tiny_run.path, "--input", tiny_run.csv,
                   "--output", base / "codes.npy"],
        "decode": ["tokenizer", "decode", "--model", tiny_run.path, "--input", encoded,
                   "--output", base / "decoded.csv"],
    }


FLAGS = {"train": "--save-path", "eval": "--out", "encode": "--output", "decode": "--output"}


@pytest.mark.parametrize("command", list(FLAGS))
def test_output_under_a_regular_file(cli, tiny_run, encoded, a_file, command):
    result = cli(*_outputs(tiny_run, encoded, a_file / "sub")[command])
    result.assert_error(FLAGS[command], "data.csv is a file, not a folder")
    assert a_file.read_text() == "x\n"


@needs_permissions
@pytest.mark.parametrize("command", list(FLAGS))
def test_output_in_a_read_only_folder(cli, tiny_run, encoded, read_only, command):
    result = cli(*_outputs(tiny_run, encoded, read_only)[command])
    result.assert_error(FLAGS[command], "not writable")
    assert list(read_only.iterdir()) == []


@pytest.mark.parametrize("command", list(FLAGS))
def test_output_in_a_folder_the_process_may_not_write(cli, tiny_run, encoded, tmp_path,
                                                      monkeypatch, command):
    """The read-only case for root too: the check asks os.access, as a non-root run would."""
    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        Path(path) != folder and real_access(path, mode, **kw)))
    result = cli(*_outputs(tiny_run, encoded, folder)[command])
    result.assert_error(FLAGS[command], f"the folder {folder} is not writable")
    assert list(folder.iterdir()) == []


# --- seeds, dataset lists, accelerators -------------------------------------------------


@pytest.mark.parametrize("seed", ["-1", "99999999999"])
def test_seed_out_of_range(cli, make_csv, tmp_path, tiny_flags, seed):
    run = tmp_path / "run"
    cli(*_train(make_csv(), run, tiny_flags, "--seed", seed)).assert_error("--seed", seed)
    assert not run.exists()


def test_seed_out_of_range_in_a_config_file(cli, make_csv, tmp_path, tiny_flags):
    config = tmp_path / "settings.yaml"
    config.write_text("seed: -1\n")
    run = tmp_path / "run"
    cli(*_train(make_csv(), run, tiny_flags, "--config", config)).assert_error("seed", "-1")
    assert not run.exists()


@pytest.mark.parametrize("names", ["", ",", " ", " , "])
def test_a_dataset_list_naming_nothing(cli, tiny_run, tmp_path, tiny_flags, names):
    run = tmp_path / "run"
    cli("tokenizer", "train", "--dataset", names, *tiny_flags,
        "--save-path", run).assert_error("--dataset", "no dataset")
    assert not run.exists()
    out = tmp_path / "eval"
    cli("tokenizer", "eval", "--model", tiny_run.path, "--dataset", names,
        "--out", out).assert_error("--dataset", "no dataset")
    assert not out.exists()
    cli("data", "info", names).assert_error("unknown dataset", "etth1")


def test_eval_reads_one_dataset(cli, tiny_run, tmp_path):
    out = tmp_path / "eval"
    cli("tokenizer", "eval", "--model", tiny_run.path, "--dataset", "etth1,ettm1",
        "--out", out).assert_error("--dataset", "2 datasets", "one")
    assert not out.exists()


def test_an_accelerator_this_machine_lacks(cli, make_csv, tmp_path, tiny_flags):
    flags = list(tiny_flags)
    flags[flags.index("--accelerator") + 1] = "tpu"
    run = tmp_path / "run"
    cli(*_train(make_csv(), run, flags)).assert_error("--accelerator tpu is not available "
                                                      "here; pass one of auto, cpu")
    assert not run.exists()


# --- data files and folders -------------------------------------------------------------


def test_a_nonexistent_data_dir_is_refused(cli, tmp_path):
    missing = tmp_path / "nonexistent"
    cli("data", "info", "etth1", "--data-dir", missing).assert_error(
        "--data-dir", "nonexistent", "not a folder")


def test_a_semicolon_separated_csv_names_the_delimiter(cli, tmp_path):
    csv = tmp_path / "semi.csv"
    csv.write_text("date;a;b\n2020-01-01 00:00;1.0;2.0\n2020-01-01 01:00;1.5;2.5\n")
    cli("data", "info", "custom", "--data-path", csv).assert_error(
        "semi.csv", "separated by ';'", "comma-separated")


def test_a_folder_as_the_data_file(cli, tmp_path):
    cli("data", "info", "custom", "--data-path", tmp_path).assert_error("is a folder")


def test_two_columns_of_one_name(cli, make_csv, tmp_path, tiny_flags):
    """pandas would read the second as 'HUFL.1', a channel nobody named."""
    csv = make_csv(columns=("HUFL", "HUFL", "OT"))
    before = csv.read_bytes()
    cli("data", "info", "custom", "--data-path", csv).assert_error(
        "series.csv: columns 2 and 3 are both named 'HUFL'", "rename one")
    run = tmp_path / "run"
    cli(*_train(csv, run, tiny_flags)).assert_error("both named 'HUFL'")
    assert not run.exists() and csv.read_bytes() == before


def test_a_records_table_with_a_time_before_admission(cli, tmp_path):
    from tests.core.data.test_records import write_long_table

    folder = write_long_table(tmp_path / "t", ["a,1,HR,80", "a,-0.5,HR,81"], ["a,0"])
    cli("data", "info", "records-csv", "--data-path", folder).assert_error(
        "records.csv, line 3: time '-0.5' is before admission", "shift the stay's times")
    run = tmp_path / "run"
    cli("setvae", "pretrain", "--dataset", "records-csv", "--data-path", folder,
        "--save-path", run).assert_error("before admission")
    assert not run.exists()


# --- encode and decode over their own inputs --------------------------------------------


def test_encode_over_its_own_input(cli, tiny_run, tmp_path):
    csv = Path(shutil.copy(tiny_run.csv, tmp_path / "a.csv"))
    before = csv.read_bytes()
    cli("tokenizer", "encode", "--model", tiny_run.path, "--input", csv,
        "--output", csv).assert_error("--output", "would overwrite the file it reads (--input")
    # The statistics file (a.stats.npz beside a.npy) would land on the input.
    stats_named = Path(shutil.copy(tiny_run.csv, tmp_path / "b.stats.npz"))
    cli("tokenizer", "encode", "--model", tiny_run.path, "--input", stats_named,
        "--output", tmp_path / "b.npy").assert_error("would overwrite the file it reads",
                                                     "b.stats.npz")
    assert csv.read_bytes() == before and stats_named.read_bytes() == before
    assert not (tmp_path / "b.npy").exists()
    # Spelled another way, still the same file.
    cli("tokenizer", "encode", "--model", tiny_run.path, "--input", csv,
        "--output", tmp_path / "sub" / ".." / "a.csv").assert_error("would overwrite")
    assert csv.read_bytes() == before


@pytest.mark.parametrize("target", ["codes", "stats"])
def test_decode_over_its_own_codes(cli, tiny_run, encoded, target):
    path = encoded if target == "codes" else encoded.with_name("codes.stats.npz")
    before = path.read_bytes()
    cli("tokenizer", "decode", "--model", tiny_run.path, "--input", encoded,
        "--output", path).assert_error("--output", "would overwrite")
    assert path.read_bytes() == before


def test_decode_of_an_npz_archive(cli, tiny_run, encoded, tmp_path):
    archive = tmp_path / "codes.npz"
    np.savez(archive, codes=np.load(encoded))
    out = tmp_path / "decoded.csv"
    cli("tokenizer", "decode", "--model", tiny_run.path, "--input", archive,
        "--output", out).assert_error("codes.npz", ".npz archive", ".npy")
    assert not out.exists()


@pytest.mark.parametrize("drop", ["context", "columns", "std"])
def test_decode_with_statistics_missing_an_entry(cli, tiny_run, encoded, tmp_path, drop):
    stats = encoded.with_name("codes.stats.npz")
    with np.load(stats) as archive:
        arrays = {k: archive[k] for k in archive.files if k != drop}
    np.savez(stats, **arrays)
    out = tmp_path / "decoded.csv"
    cli("tokenizer", "decode", "--model", tiny_run.path, "--input", encoded,
        "--output", out).assert_error("codes.stats.npz", f"lacks '{drop}'", "re-run encode")
    assert not out.exists()


def test_decode_with_a_single_array_as_statistics(cli, tiny_run, encoded, tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    shutil.copy(encoded, tmp_path / "c.npy")
    (tmp_path / "one.npy").rename(tmp_path / "c.stats.npz")
    out = tmp_path / "decoded.csv"
    cli("tokenizer", "decode", "--model", tiny_run.path, "--input", tmp_path / "c.npy",
        "--output", out).assert_error("c.stats.npz", "one array")
    assert not out.exists()


# --- model folders ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("context_points", "32", "an integer"), ("revin", "yes", "true or false"),
     ("decay", "0.9", "a number"), ("fsq_levels", [8, "5"], "a list of integers or null")],
)
def test_a_config_value_of_the_wrong_type(cli, run_copy, tiny_run, tmp_path, key, value,
                                          expected):
    config = json.loads((run_copy / "config.json").read_text())
    config[key] = value
    (run_copy / "config.json").write_text(json.dumps(config))
    out = tmp_path / "eval"
    result = cli("tokenizer", "eval", "--model", run_copy, "--dataset", "custom",
                 "--data-path", tiny_run.csv, "--out", out)
    result.assert_error("config.json", f"'{key}'", f"must be {expected}", repr(value))
    assert not out.exists()


def test_encode_and_decode_refuse_a_folder_without_the_scaler(cli, run_copy, tiny_run,
                                                              tmp_path, encoded):
    """Without the training data's scaler the codes would be on another scale: refused."""
    sections = json.loads((run_copy / "data.json").read_text())
    del sections["scaler"]
    (run_copy / "data.json").write_text(json.dumps(sections))
    (run_copy / "scaler.json").unlink(missing_ok=True)
    codes = tmp_path / "codes.npy"
    cli("tokenizer", "encode", "--model", run_copy, "--input", tiny_run.csv,
        "--output", codes).assert_error("scaler", "data.json", "re-export")
    assert not codes.exists()
    decoded = tmp_path / "decoded.csv"
    cli("tokenizer", "decode", "--model", run_copy, "--input", encoded,
        "--output", decoded).assert_error("scaler", "data.json", "re-export")
    assert not decoded.exists()


def test_a_tiny_time_budget_still_exports_a_trained_step(cli, make_csv, tmp_path, tiny_flags,
                                                         caplog):
    """Lightning's timer stops a run after a step, never before its first: a budget of a
    millisecond trains one step. Were it to stop before, the runner warns that the
    exported weights are untrained."""
    flags = list(tiny_flags)
    flags[flags.index("--max-steps"):flags.index("--max-steps") + 2] = ["--max-time", "0.00001"]
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="timetok.core.train.runner"):
        result = cli(*_train(make_csv(), run, flags))
    assert result.rc == 0, result.err
    steps = json.loads((run / "training.json").read_text())["global_step"]
    warned = any("first optimiser step" in r.getMessage() for r in caplog.records)
    assert warned == (steps == 0)
    assert (run / "model.safetensors").is_file()


def test_a_full_disk_while_writing_is_one_line(cli, tiny_run, tmp_path, monkeypatch):
    import errno

    import timetok.tokenizer.codes

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(timetok.tokenizer.codes, "atomic_write_bytes", full)
    codes = tmp_path / "codes.npy"
    cli("tokenizer", "encode", "--model", tiny_run.path, "--input", tiny_run.csv,
        "--output", codes).assert_error("cannot write", "codes", os.strerror(errno.ENOSPC),
                                        "--output")
    assert not codes.exists()


@pytest.mark.parametrize(
    ("message", "shown"),
    [("retrain the tokenizer with quantizer='vq'", "retrain the tokenizer with --quantizer vq"),
     ("retrain it with revin_affine=False", "retrain it with --revin-affine 0"),
     ("finetune with linear_skip=True", "finetune with --linear-skip"),
     ("use kmeans_init=False", "use --no-kmeans-init"),
     ("finetune it with horizon=H", "finetune it with --horizon H"),
     ("or download from a mirror: url=MIRROR", "or download from a mirror: --url MIRROR"),
     ("sample paths with num_samples", "sample paths with --samples"),
     ("stride must be >= 1, got 0", "--stride must be >= 1, got 0"),
     ("setting 'context_points' must be an integer", "setting 'context_points' must be an "
                                                     "integer"),
     ("not_an_option=True stays", "not_an_option=True stays")],
)
def test_library_messages_show_flags(message, shown):
    """Library messages name parameters, as Python spells them; the CLI shows flags."""
    from timetok.cli import as_flags

    assert as_flags(message) == shown


def test_no_library_message_names_a_flag():
    """Only the CLI speaks of --flags: a Python caller never reads that advice."""
    import re

    package = Path(__file__).resolve().parents[1] / "timetok"
    found = []
    for path in package.rglob("*.py"):
        if path.stem in ("cli", "cli_options"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            strings = re.findall(r"(?<![\w\"])f?\"([^\"]*)\"", code)
            if any(re.search(r"(?<![\w-])--[a-z]", s) for s in strings):
                found.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    known = ["core/report.py"]  # git rev-parse --short
    assert [f for f in found if not f.startswith(tuple(known))] == []
