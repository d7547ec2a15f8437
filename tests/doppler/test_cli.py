"""System 3 through the CLI: simulate -> train -> generate -> evaluate on tiny images, and
each bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

TINY = ["--image-size", "32", "--channels", "8,16", "--codebook-size", "16",
        "--embedding-dim", "8", "--tokenizer-epochs", "2", "--prior-epochs", "2",
        "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-ff", "32",
        "--batch-size", "8", "--no-progress", "--accelerator", "cpu", "--devices", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three simulated users, nine 32x32 images each, a trained tiny generator (its
    tokenizer against a patch critic in the second epoch, its weight ramped over half an
    epoch)."""
    from timetok.cli import main

    root = tmp_path_factory.mktemp("doppler")
    assert main(["doppler", "simulate", "--users", "3", "--per-user", "9", "--size", "32",
                 "--out", str(root / "sim"), "--no-progress"]) == 0
    assert main(["doppler", "train", "--data", str(root / "sim"), *TINY,
                 "--adversarial-weight", "0.5", "--adversarial-start", "1",
                 "--adversarial-ramp", "0.5", "--save-path", str(root / "run")]) == 0
    return root


def test_training_writes_both_stages_and_the_codebook_figures(run):
    import csv

    tok, gen = run / "run" / "tokenizer", run / "run" / "generator"
    for name in ("config.json", "model.safetensors", "data.json", "history.csv",
                 "codebook_usage.png", "codebook_snapshots.png", "codebook_history.png"):
        assert (tok / name).stat().st_size > 0, name
    history = (tok / "history.csv").read_text()
    for column in ("val_usage", "val_codes_per_user", "val_entropy_bits", "train_restarts",
                   "train_adv_d"):
        assert column in history
    with open(tok / "history.csv") as f:
        ramps = [float(row["train_adv_ramp"]) for row in csv.DictReader(f)
                 if row.get("train_adv_ramp")]
    assert ramps and 0 < ramps[0] < 1  # the first batches of the critic's epoch are ramped
    info = json.loads((gen / "data.json").read_text())["images"]
    assert info["users"] == ["user00", "user01", "user02"] and info["image_size"] == 32
    assert info["value_range"] == [0.0, 1.0] and info["split"]["seed"] == 42
    config = json.loads((gen / "config.json").read_text())
    assert config["model_type"] == "spectrogram-generator" and config["user_every_code"]


def test_the_prior_takes_its_own_batch_size_and_options(run, tmp_path):
    import csv
    import shutil

    from timetok.cli import main

    def steps(save_path):
        with open(save_path / "generator" / "history.csv") as f:
            return [int(row["step"]) for row in csv.DictReader(f)]

    shutil.copytree(run / "run" / "tokenizer", tmp_path / "tokenizer")
    assert main(["doppler", "train", "--data", str(run / "sim"), *TINY, "--stage", "prior",
                 "--prior-batch-size", "4", "--user-prefix-only", "--no-grid-positions",
                 "--code-noise", "0.2", "--save-path", str(tmp_path)]) == 0
    assert steps(tmp_path)[-1] == 2 * steps(run / "run")[-1] > 0
    config = json.loads((tmp_path / "generator" / "config.json").read_text())
    assert not config["user_every_code"] and not config["grid_positions"]
    assert config["code_noise"] == 0.2
    with open(tmp_path / "generator" / "history.csv") as f:
        assert all(float(row["val_user_nats"]) == float(row["val_user_nats"])  # not NaN
                   for row in csv.DictReader(f) if row["val_loss"])


def test_generate_writes_the_simulator_layout(run, cli):
    out = run / "gen"
    result = cli("doppler", "generate", "--model", run / "run", "--users", "0,user02",
                 "--samples", "2", "--top-k", "5", "--top-p", "0.9", "--out", out)
    assert result.rc == 0, result.err
    assert "images/s" in result.out
    assert sorted(p.name for p in out.iterdir()) == ["user00", "user02"]
    image = np.load(out / "user02" / "1.npy")
    assert image.shape == (32, 32) and 0 <= image.min() and image.max() <= 1
    assert Image.open(out / "user00" / "0.png").size == (32, 32)
    cli("doppler", "generate", "--model", run / "run", "--out", out).assert_error(
        "is not empty", "--overwrite")


def test_evaluate_reports_every_figure_and_says_where(run, cli):
    out = run / "evaluation"
    result = cli("doppler", "evaluate", "--model", run / "run", "--samples", "3",
                 "--classifier-epochs", "2", "--no-progress", "--out", out)
    assert result.rc == 0, result.err
    assert f"wrote {out / 'report.md'}, {out / 'report.json'} and {out / 'grid.png'}" in result.out
    assert "A toy run (3 users against 31" in result.out and "0.84 ± 0.08" in result.out
    report = json.loads((out / "report.json").read_text())
    for key in ("accuracy", "frechet", "diversity", "memorisation", "codebook", "per_user",
                "generation", "scale"):
        assert key in report
    assert report["data"]["generated_images"] == 9 and report["generation"]["images_per_s"] > 0
    assert 0 < report["codebook"]["usage_real"] <= 1 and report["scale"]["prior_epochs"] == 2
    for name in ("report.json", "report.md", "grid.png", "classifier/model.safetensors"):
        assert (out / name).stat().st_size > 0


def test_validate_is_the_hidden_old_name_of_evaluate(run, cli):
    gen = run / "gen-all"
    assert cli("doppler", "generate", "--model", run / "run", "--samples", "2",
               "--out", gen).rc == 0
    result = cli("doppler", "validate", "--model", run / "run", "--generated", gen,
                 "--classifier-epochs", "1", "--out", run / "val2", "--json")
    assert result.rc == 0, result.err
    assert json.loads(result.out)["data"]["generated_images"] == 6
    assert "validate" not in cli("doppler", "--help").out


def test_evaluate_shares_a_classifier_folder_and_reads_a_config(run, cli, tmp_path):
    config = tmp_path / "evaluate.yaml"
    config.write_text(f"samples: 2\nclassifier_epochs: 1\nclassifier: {tmp_path / 'clf'}\n"
                      "guidance_scale: 2\nprogress: false\n")
    first = cli("doppler", "evaluate", "--model", run / "run", "--config", config, "--out",
                tmp_path / "a", "--json")
    assert first.rc == 0, first.err
    report = json.loads(first.out)
    assert report["classifier"]["trained_here"] is True
    assert report["generation"]["sampling"]["guidance_scale"] == 2
    second = cli("doppler", "evaluate", "--model", run / "run", "--config", config,
                 "--unconditional", "--guidance-scale", "1", "--out", tmp_path / "b", "--json")
    assert second.rc == 0, second.err
    again = json.loads(second.out)
    assert again["classifier"]["trained_here"] is False and again["generation"]["unconditional"]
    assert again["accuracy"]["real_test"] == report["accuracy"]["real_test"]


@pytest.mark.parametrize("flags, fragments", [
    (["--users", "7"], ("user id 7 is outside the trained range 0...2",)),
    (["--users", "nobody"], ("unknown user 'nobody'",)),
    (["--top-k", "0"], ("--top-k must be >= 1",)),
    (["--top-p", "1.5"], ("--top-p must lie in (0, 1]",)),
    (["--top-p", "0"], ("--top-p must lie in (0, 1]",)),
])
def test_generate_refuses_bad_sampling_and_users(run, cli, tmp_path, flags, fragments):
    out = tmp_path / "out"
    cli("doppler", "generate", "--model", run / "run", *flags, "--out", out).assert_error(
        *fragments)
    assert not out.exists()


def test_generate_overwrites_only_an_earlier_generate_output(run, cli, tmp_path):
    import shutil

    data = tmp_path / "data"  # a simulated dataset: its users.json is no generate output
    shutil.copytree(run / "sim", data)
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    flags = ["--model", run / "run", "--samples", "1", "--users", "user00,user01"]
    cli("doppler", "generate", *flags, "--out", data, "--overwrite").assert_error(
        "users.json", "which 'doppler generate' does not write", "another --out")
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before
    out = tmp_path / "out"
    assert cli("doppler", "generate", *flags, "--out", out).rc == 0
    result = cli("doppler", "generate", *flags, "--out", out, "--overwrite")
    assert result.rc == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == ["user00", "user01"]


def test_generate_refuses_a_cuda_device_where_there_is_none(run, cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")
    out = tmp_path / "out"
    cli("doppler", "generate", "--model", run / "run", "--device", "cuda", "--out",
        out).assert_error("no CUDA device is visible", "--device cpu or --device auto")
    assert not out.exists()


def _folder(root, sizes=((20, 20),), users=("a", "b")):
    for user in users:
        (root / user).mkdir(parents=True)
        for i, size in enumerate(sizes * 3):
            Image.fromarray(np.full(size, 40 * i, np.uint8)).save(root / user / f"{i}.png")
    return root


@pytest.mark.parametrize("damage, flags, fragments", [
    ("empty", [], ("user folder 'c' holds no images",)),
    ("corrupt", [], ("b/0.png",)),
    ("mixed", ["--no-resize"], ("mixed sizes", "pass --resize")),
])
def test_train_refuses_bad_image_folders(cli, tmp_path, damage, flags, fragments):
    root = _folder(tmp_path / "imgs", sizes=((20, 20), (24, 20)) if damage == "mixed"
                   else ((20, 20),))
    if damage == "empty":
        (root / "c").mkdir()
    if damage == "corrupt":
        (root / "b" / "0.png").write_bytes(b"not a png")
    cli("doppler", "train", "--data", root, *TINY, *flags,
        "--save-path", tmp_path / "run").assert_error(*fragments)
    assert not (tmp_path / "run").exists()


def test_mixed_sizes_are_resized_without_no_resize(tmp_path):
    from timetok.core.data.images import load_image_folder

    data = load_image_folder(_folder(tmp_path / "imgs", sizes=((20, 20), (24, 20))), size=32)
    assert data.images.shape == (12, 32, 32)


def test_train_refuses_impossible_flag_combinations(run, cli, tmp_path):
    cli("doppler", "train", *TINY, "--save-path", tmp_path / "r").assert_error(
        "reads the folder given by --data-path")
    cli("doppler", "train", "--data", run / "sim", *TINY, "--stage", "prior",
        "--save-path", tmp_path / "r").assert_error("needs a trained tokenizer")
    cli("doppler", "train", "--data", run / "sim", *TINY, "--image-size", "34",
        "--save-path", tmp_path / "r").assert_error("not divisible by 4")
    cli("doppler", "train", "--data", run / "sim", *TINY,
        "--save-path", run / "run").assert_error("already holds a run")
    cli("doppler", "train", "--data", run / "sim", *TINY, "--adversarial-weight", "0.1",
        "--adversarial-start", "2",
        "--save-path", tmp_path / "r").assert_error(
        "--adversarial-start 2 is past the last of 2 --tokenizer-epochs")
    cli("doppler", "train", "--data", run / "sim", *TINY, "--n-epochs", "3",
        "--save-path", tmp_path / "r").assert_error("--tokenizer-epochs and --prior-epochs")
    # the prior's sizes are checked before the tokenizer stage trains, not after
    cli("doppler", "train", "--data", run / "sim", *TINY, "--d-model", "15", "--n-heads", "2",
        "--save-path", tmp_path / "r").assert_error("--d-model (15) must be divisible by")
    assert not (tmp_path / "r").exists()


def test_simulate_refuses_an_aliasing_prf_and_a_full_folder(run, cli, tmp_path):
    cli("doppler", "simulate", "--users", "2", "--per-user", "2", "--size", "32",
        "--prf", "500", "--out", tmp_path / "s").assert_error("PRF")
    assert not (tmp_path / "s").exists()
    cli("doppler", "simulate", "--users", "2", "--per-user", "2", "--size", "32",
        "--out", run / "sim").assert_error("--overwrite")
    cli("doppler", "simulate", "--users", "2", "--per-user", "2", "--size", "32",
        "--workers", "0", "--out", tmp_path / "w").assert_error("--workers")
    assert not (tmp_path / "w").exists()


def test_simulate_names_the_flag_of_a_prf_too_low_for_the_window(cli, tmp_path):
    result = cli("doppler", "simulate", "--prf", "1", "--out", tmp_path / "s")
    result.assert_error("a PRF of 1 Hz puts 0 pulses in each 51.2 ms STFT window",
                        "pass --prf >= 147")
    assert "window_s" not in result.err  # no flag sets it
    cli("doppler", "simulate", "--prf", "147", "--out", tmp_path / "s").assert_error(
        "at a 24 GHz carrier", "pass --prf >= ")
    assert not (tmp_path / "s").exists()


def test_simulate_refuses_a_size_beyond_the_free_memory(cli, tmp_path, monkeypatch):
    """Refused before any work, with the largest size that fits: first on this machine's
    own free memory, then on a gigabyte."""
    import re
    from dataclasses import replace

    from timetok.doppler import simulator

    out = tmp_path / "s"
    args = ["doppler", "simulate", "--users", "2", "--per-user", "10", "--workers", "1",
            "--out", out, "--no-progress"]
    cli(*args, "--size", "100000").assert_error("needs about", "--size must be at most")
    monkeypatch.setattr(simulator, "available_memory", lambda: 2**30)
    result = cli(*args, "--size", "4096")
    result.assert_error("simulating 10 images of 4096x4096 a user in 1 process needs about "
                        "1.8 GiB of memory, 1.0 GiB are free; --size must be at most")
    largest = int(re.search(r"at most (\d+) to fit", result.err).group(1))
    need = [simulator.simulation_bytes(replace(simulator.RadarConfig(), size=size), 10, 1)
            for size in (largest, largest + 1)]
    assert need[0] <= 2**30 < need[1]
    assert not out.exists()


def test_train_says_what_the_codebook_restarts_mean(run, cli, tmp_path):
    result = cli("doppler", "train", "--data", run / "sim", *TINY, "--stage", "tokenizer",
                 "--tokenizer-epochs", "1", "--save-path", tmp_path)
    assert result.rc == 0, result.err
    assert "27 images of 3 users (32x32); train/val/test 18/3/6" in result.out
    line = next(x for x in result.out.splitlines() if x.startswith("codebook:"))
    assert "training steps" in line and ("re-initialised" in line)
