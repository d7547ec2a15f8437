"""The CLI contract: bad input -> one ``error: `` line on stderr, exit 2, nothing half-written.

Plus the happy paths those errors guard: train -> eval, encode -> decode, data info/list, help.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest

from timetok.core.data.registry import BUNDLED_DIR

pytestmark = pytest.mark.usefixtures("isolated_env")


def _train(csv, save_path, flags, *extra):
    return ["tokenizer", "train", "--dataset", "custom", "--data-path", csv, *flags,
            "--save-path", save_path, *extra]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _no_leftovers(folder: Path) -> None:
    """No temporary files from an interrupted atomic write."""
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# --- missing files and names ------------------------------------------------------------


def test_missing_data_file(cli, tmp_path, tiny_flags):
    run = tmp_path / "run"
    result = cli(*_train(tmp_path / "nope.csv", run, tiny_flags))
    result.assert_error("nope.csv", "not found", "--data-path")
    assert not run.exists()


def test_missing_data_file_in_a_real_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TIMETOK_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "-m", "timetok.cli", "data", "info", "custom",
         "--data-path", str(tmp_path / "nope.csv")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "nope.csv" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_model_folder(cli, tmp_path, make_csv):
    missing = tmp_path / "missing_dir"
    result = cli("tokenizer", "eval", "--model", missing, "--dataset", "custom",
                 "--data-path", make_csv())
    result.assert_error("model folder not found", "missing_dir")
    assert not missing.exists()


def test_unknown_dataset(cli, tmp_path, tiny_flags):
    run = tmp_path / "run"
    result = cli("tokenizer", "train", "--dataset", "nosuch", *tiny_flags, "--save-path", run)
    result.assert_error("nosuch", "etth1", "etth2", "ettm1", "ettm2", "custom")
    assert not run.exists()
    cli("data", "info", "nosuch").assert_error("unknown dataset", "etth1")


# --- bad cells and short series ---------------------------------------------------------


def test_non_numeric_cell_names_column_and_line(cli, tmp_path, make_csv, tiny_flags):
    csv = make_csv(cells={(10, "b"): "abc"})
    run = tmp_path / "run"
    result = cli(*_train(csv, run, tiny_flags))
    result.assert_error("'abc'", "column 'b'", "line 12", "series.csv")
    assert not run.exists()


@pytest.mark.parametrize("cell", ["", "NaN", "nan", "NA"])
def test_empty_or_nan_cell_names_column_and_line(cli, tmp_path, make_csv, tiny_flags, cell):
    csv = make_csv(cells={(4, "a"): cell})
    run = tmp_path / "run"
    result = cli(*_train(csv, run, tiny_flags))
    result.assert_error("empty or NaN", "column 'a'", "line 6")
    assert not run.exists()


def test_series_shorter_than_one_window(cli, tmp_path, make_csv, tiny_flags):
    run = tmp_path / "run"
    result = cli(*_train(make_csv(rows=20), run, tiny_flags))  # context 32
    result.assert_error("20 rows", "--context-points")
    assert not run.exists()


# --- impossible model settings ----------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--patch-size", "7"], ["not divisible", "patch size 7", "32"]),
        (["--compression-factor", "5"], ["--compression-factor", "4, 8, 12, 16", "5"]),
        (["--compression-factor", "4", "--patch-size", "8"], ["--compression-factor",
                                                               "--patch-size", "exclude"]),
    ],
    ids=["patch-size-7", "compression-5", "compression-and-patch"],
)
def test_impossible_model_settings(cli, tmp_path, make_csv, tiny_flags, extra, fragments):
    run = tmp_path / "run"
    result = cli(*_train(make_csv(), run, tiny_flags, *extra))
    result.assert_error(*fragments)
    assert not run.exists()


# --- checkpoints of another configuration -----------------------------------------------


def test_resume_with_other_model_settings_is_refused(cli, run_copy):
    before = _snapshot(run_copy)
    result = cli("tokenizer", "train", "--resume", run_copy, "--embedding-dim", "16",
                 "--no-progress")
    result.assert_error("checkpoint", "does not fit", "mis-shaped")
    after = _snapshot(run_copy)
    for name in ("model.safetensors", "config.json", "data.json", "checkpoints/last.ckpt",
                 "checkpoints/best.ckpt"):
        assert after[name] == before[name], f"{name} changed by a refused resume"
    _no_leftovers(run_copy)


def test_refused_resume_in_a_real_process(run_copy):
    """Outside pytest, Lightning logs to the real stderr: the error must still be one line."""
    env = {k: v for k, v in os.environ.items() if k != "TIMETOK_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "-m", "timetok.cli", "tokenizer", "train", "--resume",
         str(run_copy), "--embedding-dim", "16", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "does not fit" in proc.stderr and "Traceback" not in proc.stderr


def test_refused_resume_leaves_the_run_settings_untouched(cli, run_copy):
    """A refused --resume must not rewrite run.yaml with the refused settings: the run
    would then no longer resume with its own settings either."""
    before = (run_copy / "run.yaml").read_text()
    cli("tokenizer", "train", "--resume", run_copy, "--embedding-dim", "16",
        "--no-progress").assert_error("does not fit")
    assert (run_copy / "run.yaml").read_text() == before


def test_from_pretrained_refuses_weights_of_another_configuration(cli, run_copy, tiny_run,
                                                                  tmp_path):
    from timetok.core.errors import CheckpointError
    from timetok.tokenizer.model import TokenizerModel

    config = json.loads((run_copy / "config.json").read_text())
    assert config["embedding_dim"] == 8
    config["embedding_dim"] = 16
    (run_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not fit this configuration"):
        TokenizerModel.from_pretrained(run_copy)
    out = tmp_path / "eval-out"
    result = cli("tokenizer", "eval", "--model", run_copy, "--dataset", "custom",
                 "--data-path", tiny_run.csv, "--out", out)
    result.assert_error("weights", "do not fit")
    assert not out.exists()


# --- another channel count --------------------------------------------------------------


def test_eval_on_data_with_another_channel_count(cli, tiny_run, make_csv, tmp_path):
    out = tmp_path / "eval-out"
    csv = make_csv("three.csv", columns=("a", "b", "c"))
    result = cli("tokenizer", "eval", "--model", tiny_run.path, "--dataset", "custom",
                 "--data-path", csv, "--out", out)
    result.assert_error("2 channel(s)", "three.csv has 3")
    assert not out.exists()
    assert not (tiny_run.path / "eval-custom").exists()


def test_encode_with_another_channel_count(cli, tiny_run, make_csv, tmp_path):
    codes = tmp_path / "codes.npy"
    csv = make_csv("three.csv", columns=("a", "b", "c"))
    result = cli("tokenizer", "encode", "--model", tiny_run.path, "--input", csv,
                 "--output", codes)
    result.assert_error("2 channel(s)", "has 3")
    assert not codes.exists() and not (tmp_path / "codes.stats.npz").exists()


def test_encode_of_a_series_shorter_than_the_context(cli, tiny_run, make_csv, tmp_path):
    codes = tmp_path / "codes.npy"
    result = cli("tokenizer", "encode", "--model", tiny_run.path, "--input",
                 make_csv(rows=20), "--output", codes)
    result.assert_error("20 rows", "context of 32")
    assert not codes.exists()


# --- damaged weights --------------------------------------------------------------------


def _damage(weights: Path, how: str) -> None:
    data = weights.read_bytes()
    if how == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    else:
        weights.write_bytes(np.random.default_rng(0).bytes(len(data)))


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
@pytest.mark.parametrize("command", ["eval", "encode"])
def test_damaged_weights(cli, run_copy, tiny_run, tmp_path, how, command):
    _damage(run_copy / "model.safetensors", how)
    out = tmp_path / "out"
    if command == "eval":
        args = ["--dataset", "custom", "--data-path", tiny_run.csv, "--out", out]
    else:
        args = ["--input", tiny_run.csv, "--output", out / "codes.npy"]
    result = cli("tokenizer", command, "--model", run_copy, *args)
    result.assert_error("model.safetensors", "truncated or corrupt")
    assert not out.exists()


# --- run folders and settings files -----------------------------------------------------


def test_resume_folder_that_does_not_exist(cli, tmp_path):
    missing = tmp_path / "no-such-run"
    result = cli("tokenizer", "train", "--resume", missing, "--no-progress")
    result.assert_error("--resume folder not found", "no-such-run")
    assert not missing.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("context_points: 32\nlearning_rat: 0.01\n", ["unknown setting 'learning_rat'"]),
        ("context_points: [32, 64\nbatch_size: 8\n", ["not valid YAML"]),
        (b"\xff\xfe\x00\x9c random bytes", ["not UTF-8 text"]),
    ],
    ids=["unknown-key", "invalid-yaml", "not-text"],
)
def test_bad_config_file(cli, tmp_path, make_csv, tiny_flags, text, expected):
    config = tmp_path / "settings.yaml"
    if isinstance(text, bytes):
        config.write_bytes(text)
    else:
        config.write_text(text)
    run = tmp_path / "run"
    result = cli(*_train(make_csv(), run, tiny_flags, "--config", config))
    result.assert_error("settings.yaml", *expected)
    assert not run.exists()


def test_existing_run_folder_needs_resume_or_overwrite(cli, run_copy, tiny_run, tiny_flags):
    before = _snapshot(run_copy)
    result = cli(*_train(tiny_run.csv, run_copy, tiny_flags))
    result.assert_error("already holds a run", "--resume", "--overwrite")
    assert _snapshot(run_copy) == before


# --- decode -----------------------------------------------------------------------------


def _write_codes(codes_path: Path, codes: np.ndarray, like: Path) -> Path:
    np.save(codes_path, codes, allow_pickle=False)
    stats = like.with_name(like.stem + ".stats.npz")
    codes_path.with_name(codes_path.stem + ".stats.npz").write_bytes(stats.read_bytes())
    return codes_path


def test_decode_codes_of_another_channel_count(cli, tiny_run, encoded, tmp_path):
    codes = np.load(encoded)
    wrong = _write_codes(tmp_path / "wrong.npy", np.concatenate([codes, codes[..., :1]], -1),
                         encoded)
    out = tmp_path / "decoded.csv"
    result = cli("tokenizer", "decode", "--model", tiny_run.path, "--input", wrong,
                 "--output", out)
    result.assert_error("do not fit this model", "2 channels")
    assert not out.exists()
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("bad_code", [16, -1, 1000])
def test_decode_out_of_range_codes(cli, tiny_run, encoded, tmp_path, bad_code):
    codes = np.load(encoded)
    codes[0, 0, 0] = bad_code
    wrong = _write_codes(tmp_path / "wrong.npy", codes, encoded)
    out = tmp_path / "decoded.csv"
    result = cli("tokenizer", "decode", "--model", tiny_run.path, "--input", wrong,
                 "--output", out)
    result.assert_error("[0, 16)")
    assert not out.exists()


def test_decode_of_a_missing_codes_file(cli, tiny_run, tmp_path):
    out = tmp_path / "decoded.csv"
    result = cli("tokenizer", "decode", "--model", tiny_run.path, "--input",
                 tmp_path / "nope.npy", "--output", out)
    result.assert_error("codes file not found", "tokenizer encode")
    assert not out.exists()


@pytest.mark.parametrize("name", ["doubled", "short"])
def test_decode_codes_that_do_not_match_their_statistics(cli, tiny_run, encoded, tmp_path,
                                                         name):
    """More windows than the .stats.npz beside them, or fewer positions than a window has."""
    codes = np.load(encoded)
    wrong = np.concatenate([codes, codes]) if name == "doubled" else codes[:, :7]
    path = _write_codes(tmp_path / f"{name}.npy", wrong, encoded)
    out = tmp_path / "decoded.csv"
    result = cli("tokenizer", "decode", "--model", tiny_run.path, "--input", path,
                 "--output", out)
    result.assert_error(f"{name}.npy")
    assert not out.exists()


# --- further bad values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--quantizer", "fsq", "--fsq-levels", "8,5,x"], "--fsq-levels"),
        (["--batch-size", "0"], "--batch-size"),
        (["--lr", "-1"], "--lr"),
        (["--num-workers", "-1"], "--num-workers"),
        (["--devices", "abc"], "--devices"),
        (["--logger", "tensorbord"], "valid loggers: csv, tensorboard, mlflow"),
        (["--logger", "csv", "--logger", "csv"], "names csv more than once"),
    ],
    ids=["fsq-levels-x", "batch-size-0", "lr-negative", "num-workers-negative", "devices-abc",
         "logger-unknown", "logger-twice"],
)
def test_bad_option_values(cli, tmp_path, make_csv, tiny_flags, extra, fragment):
    run = tmp_path / "run"
    result = cli(*_train(make_csv(), run, tiny_flags, *extra))
    result.assert_error(fragment)
    assert not run.exists()


@pytest.mark.parametrize(
    "extra",
    [["--num-embeddings", "1"], ["--quantizer", "fsq", "--num-embeddings", "100"],
     ["--decay", "2"]],
    ids=["codebook-1", "fsq-100", "decay-2"],
)
def test_settings_refused_by_the_quantizer_leave_no_run_behind(cli, tmp_path, make_csv,
                                                               tiny_flags, extra):
    """Refused settings must not leave a run.yaml that blocks the corrected command."""
    run = tmp_path / "run"
    csv = make_csv()
    cli(*_train(csv, run, tiny_flags, *extra)).assert_error()
    assert not (run / "run.yaml").exists()


def test_eval_with_batch_size_zero(cli, tiny_run, tmp_path):
    out = tmp_path / "eval-out"
    result = cli("tokenizer", "eval", "--model", tiny_run.path, "--dataset", "custom",
                 "--data-path", tiny_run.csv, "--batch-size", "0", "--out", out)
    result.assert_error("--batch-size")
    assert not out.exists()


# --- happy paths ------------------------------------------------------------------------


def test_eval_json_report_and_files(cli, tiny_run, tmp_path):
    out = tmp_path / "eval-out"
    result = cli("tokenizer", "eval", "--model", tiny_run.path, "--dataset", "custom",
                 "--data-path", tiny_run.csv, "--out", out, "--json")
    assert result.rc == 0, result.err
    report = json.loads(result.out)
    for key in ("mse", "mae", "mse_revin", "usage", "perplexity", "entropy_bits"):
        assert isinstance(report[key], float) and math.isfinite(report[key]), key
    assert set(report["per_channel"]) == {"a", "b"}
    assert all(math.isfinite(v) for m in report["per_channel"].values() for v in m.values())
    assert 0.0 < report["usage"] <= 1.0 and 1.0 <= report["perplexity"] <= 16.0
    assert report["windows"] == 92 - 32 + 1  # test rows [300 - 60 - 32, 300), context 32
    for name in ("report.json", "report.md", "reconstructions.png", "code_usage.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "report.json").read_text()) == report
    _no_leftovers(out)


def test_encode_decode_round_trip(cli, tiny_run, tmp_path):
    codes = tmp_path / "codes.npy"
    result = cli("tokenizer", "encode", "--model", tiny_run.path, "--input", tiny_run.csv,
                 "--output", codes)
    assert result.rc == 0, result.err
    assert "9 window(s)" in result.out and "12 row(s)" in result.out  # 300 = 9 * 32 + 12
    array = np.load(codes)
    assert array.shape == (9, 32 // 4, 2) and array.dtype == np.int64
    assert array.min() >= 0 and array.max() < 16
    assert (tmp_path / "codes.stats.npz").is_file()

    decoded = tmp_path / "decoded.csv"
    result = cli("tokenizer", "decode", "--model", tiny_run.path, "--input", codes,
                 "--output", decoded)
    assert result.rc == 0, result.err
    lines = decoded.read_text().splitlines()
    assert lines[0] == "a,b"
    assert len(lines) - 1 == 9 * 32
    values = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert values.shape == (288, 2) and np.isfinite(values).all()
    _no_leftovers(tmp_path)


def test_data_info_json_for_the_bundled_etth1(cli):
    result = cli("data", "info", "etth1", "--json")
    assert result.rc == 0, result.err
    info = json.loads(result.out)
    assert Path(info["path"]) == BUNDLED_DIR / "ETTh1.csv"
    assert info["rows"] == 17420 and info["channels"] == 7
    assert (info["context_points"], info["target_points"], info["stride"]) == (512, 96, 1)
    assert {s: v["windows"] for s, v in info["splits"].items()} == {
        "train": 8033, "val": 2785, "test": 2785,
    }
    assert (info["splits"]["test"]["start"], info["splits"]["test"]["end"]) == (11008, 14400)


def test_data_info_json_with_a_stride(cli):
    result = cli("data", "info", "etth1", "-L", "96", "-H", "24", "--stride", "10", "--json")
    assert result.rc == 0, result.err
    windows = {s: v["windows"] for s, v in json.loads(result.out)["splits"].items()}
    assert windows == {"train": (8640 - 120) // 10 + 1, "val": (2976 - 120) // 10 + 1,
                       "test": (2976 - 120) // 10 + 1}


def test_data_list_json(cli):
    result = cli("data", "list", "--json")
    assert result.rc == 0, result.err
    rows = json.loads(result.out)
    names = [row["name"] for row in rows]
    assert names[:5] == ["etth1", "etth2", "ettm1", "ettm2", "custom"]
    where = {row["name"]: row["location"] for row in rows}
    assert Path(where["etth1"]) == BUNDLED_DIR / "ETTh1.csv"
    assert where["ettm1"].startswith("not found")
    assert where["custom"] == "any file: pass --data-path"
    kinds = {row["name"]: row["kind"] for row in rows}
    assert {kinds[name] for name in names[:5]} == {"series"}
    assert kinds["har"] == kinds["ecg200"] == "labelled"
    assert all(row["licence"] for row in rows[:4])


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def _all_commands() -> list[tuple[str, ...]]:
    from timetok.cli import cli as root

    return _command_paths(root)


def test_every_command_is_covered_by_the_help_test():
    paths = _all_commands()
    for expected in [(), ("data",), ("data", "list"), ("data", "info"), ("data", "fetch"),
                     ("tokenizer",), ("tokenizer", "train"), ("tokenizer", "eval"),
                     ("tokenizer", "encode"), ("tokenizer", "decode")]:
        assert expected in paths


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: "-".join(p) or "timetok")
def test_help_exits_zero(cli, path):
    result = cli(*path, "--help")
    assert result.rc == 0, result.err
    assert result.out.startswith("Usage: timetok")
    assert result.err == ""


def test_version(cli):
    from timetok import __version__

    result = cli("--version")
    assert result.rc == 0 and __version__ in result.out
