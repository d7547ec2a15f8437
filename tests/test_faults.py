"""The fault family: every model kind refuses NaN weights when loaded, and every training
command, interrupted or diverged, leaves its save path as it was (or, where a checkpoint
was written, only what ``--resume`` needs).

Commands covered: tokenizer train, forecast pretrain, forecast finetune, mae pretrain, mae
finetune, setvae pretrain, setvae finetune, doppler train (interrupts and divergence); the
loading commands tokenizer evaluate, forecast pretrain/finetune/predict, mae
finetune/evaluate/embed, setvae finetune/evaluate and doppler generate (NaN weights).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import write_series_csv
from tests.setvae.test_recipe import write_icu

RUN = ["--no-progress", "--accelerator", "cpu", "--devices", "1"]
TOKENIZER = ["--context-points", "32", "--batch-size", "8", "--block-hidden-size", "16",
             "--res-hidden-size", "8", "--embedding-dim", "8", "--num-embeddings", "16"]
LM = ["--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-ff", "32",
      "--batch-size", "16"]
MAE = ["--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-ff", "32",
       "--regressor-layers", "1", "--vocab-size", "16", "--batch-size", "16"]
SETVAE = ["--d-model", "16", "--latent-dim", "4", "--set-layers", "1", "--n-heads", "2",
          "--seq-layers", "1", "--d-ff", "32", "--beta-warmup-steps", "2", "--batch-size", "8"]
DOPPLER = ["--image-size", "32", "--channels", "8,16", "--codebook-size", "16",
           "--embedding-dim", "8", "--tokenizer-epochs", "1", "--prior-epochs", "1",
           "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-ff", "32",
           "--batch-size", "8"]


def training_commands(inputs: dict) -> dict[str, list[str]]:
    """Each training command's flags on the tiny inputs (add --save-path and a budget)."""
    series = ["--dataset", "custom", "--data-path", str(inputs["csv"])]
    icu = ["--data-path", str(inputs["icu"]), "--bucket", "1"]
    return {
        "tokenizer train": ["tokenizer", "train", *series, *TOKENIZER],
        "forecast pretrain": ["forecast", "pretrain", "--tokenizer", str(inputs["tok"]),
                              *series, "--context-points", "32", "--max-horizon", "16", *LM],
        "forecast finetune": ["forecast", "finetune", "--model", str(inputs["lm"]), *series,
                              "--horizon", "8", "--batch-size", "16"],
        "mae pretrain": ["mae", "pretrain", "--dataset", "ecg200", *MAE],
        "mae finetune": ["mae", "finetune", "--model", str(inputs["mae-pre"]), "--dataset",
                         "ecg200", "--batch-size", "16"],
        "setvae pretrain": ["setvae", "pretrain", *icu, *SETVAE],
        "setvae finetune": ["setvae", "finetune", "--model", str(inputs["setvae-pre"]), *icu,
                            "--batch-size", "8"],
        "doppler train": ["doppler", "train", "--data", str(inputs["sim"]), *DOPPLER],
    }


STEP_BUDGET = ["--max-steps", "3"]  # doppler budgets its stages in epochs


def budget(name: str) -> list[str]:
    return [] if name.startswith("doppler") else STEP_BUDGET


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One tiny folder of every model kind, trained by its command; treat as read-only."""
    from timetok.cli import main

    root = tmp_path_factory.mktemp("faults")
    inputs = {"root": root, "csv": write_series_csv(root / "series.csv", rows=400),
              "icu": write_icu(root / "p12"), "sim": root / "sim"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        patch.delenv("TIMETOK_DATA_DIR", raising=False)
        assert main(["doppler", "simulate", "--users", "3", "--per-user", "9", "--size", "32",
                     "--out", str(inputs["sim"]), "--no-progress"]) == 0
        order = [("tokenizer train", "tok"), ("forecast pretrain", "lm"),
                 ("forecast finetune", "ft"), ("mae pretrain", "mae-pre"),
                 ("mae finetune", "mae-ft"), ("setvae pretrain", "setvae-pre"),
                 ("setvae finetune", "setvae-ft"), ("doppler train", "doppler")]
        inputs |= {key: root / key for _, key in order}
        for name, key in order:
            args = training_commands(inputs)[name]
            assert main([*args, *budget(name), *RUN, "--save-path", str(inputs[key])]) == 0, name
    return inputs


@pytest.fixture(autouse=True)
def _own_cache(isolated_env):
    """Every test caches into its own empty folder (the PhysioNet fixture is read again)."""


def poisoned(folder: Path, to: Path) -> Path:
    """A copy of a model folder whose first floating-point weight holds a NaN."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(folder, to)
    weights = next(to.rglob("model.safetensors"))
    state = load_file(weights)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone()
    state[name].view(-1)[0] = torch.nan
    save_file(state, weights)
    return to


KINDS = {  # model kind -> (the folder the fixture trained, its class)
    "tokenizer": ("tok", "timetok.tokenizer.model:TokenizerModel"),
    "forecaster": ("ft/H8", "timetok.forecast.model:TokenForecaster"),
    "timemae": ("mae-ft", "timetok.mae.model:TimeMAE"),
    "seqsetvae": ("setvae-ft", "timetok.setvae.model:SeqSetVAE"),
    "doppler generator": ("doppler/generator", "timetok.doppler.model:GeneratorModel"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_model_kind_refuses_nan_weights_when_loaded(trained, tmp_path, kind):
    import importlib

    from timetok.core.errors import CheckpointError

    key, target = KINDS[kind]
    module, name = target.split(":")
    model_class = getattr(importlib.import_module(module), name)
    model_class.from_pretrained(trained["root"] / key)  # the clean folder loads
    bad = poisoned(trained["root"] / key, tmp_path / "bad")
    with pytest.raises(CheckpointError, match=r"weights in .* hold non-finite values "
                                              r"\(tensor .*\); re-export or retrain"):
        model_class.from_pretrained(bad)


def loading_commands(trained: dict, bad: Path, out: Path) -> dict[str, list[str]]:
    """Commands that read a model folder, each given the poisoned folder ``bad``."""
    series = ["--dataset", "custom", "--data-path", str(trained["csv"])]
    icu = ["--data-path", str(trained["icu"]), "--bucket", "1"]
    train = [*STEP_BUDGET, *RUN, "--save-path", str(out)]
    return {
        "tokenizer evaluate": ["tokenizer", "evaluate", "--model", str(bad), *series],
        "forecast pretrain": ["forecast", "pretrain", "--tokenizer", str(bad), *series,
                              "--context-points", "32", "--max-horizon", "16", *LM, *train],
        "forecast finetune": ["forecast", "finetune", "--model", str(bad), *series,
                              "--horizon", "8", *train],
        "forecast predict": ["forecast", "predict", "--model", str(bad / "H8"), "--input",
                             str(trained["csv"]), "--output", str(out / "f.csv")],
        "mae finetune": ["mae", "finetune", "--model", str(bad), "--dataset", "ecg200",
                         *train],
        "mae evaluate": ["mae", "evaluate", "--model", str(bad), "--dataset", "ecg200"],
        "mae embed": ["mae", "embed", "--model", str(bad), "--dataset", "ecg200", "--output",
                      str(out / "e.npz")],
        "setvae finetune": ["setvae", "finetune", "--model", str(bad), *icu, *train],
        "setvae evaluate": ["setvae", "evaluate", "--model", str(bad), "--out", str(out)],
        "doppler generate": ["doppler", "generate", "--model", str(bad), "--samples", "2",
                             "--out", str(out)],
    }


LOADED = {"tokenizer evaluate": "tok", "forecast pretrain": "tok", "forecast finetune": "lm",
          "forecast predict": "ft", "mae finetune": "mae-pre", "mae evaluate": "mae-ft",
          "mae embed": "mae-pre", "setvae finetune": "setvae-pre",
          "setvae evaluate": "setvae-ft", "doppler generate": "doppler"}


@pytest.mark.parametrize("command", list(LOADED))
def test_commands_refuse_a_model_folder_with_nan_weights(trained, cli, tmp_path, command):
    bad = poisoned(trained["root"] / LOADED[command], tmp_path / "bad")
    out = tmp_path / "out"
    result = cli(*loading_commands(trained, bad, out)[command])
    result.assert_error("non-finite values", "re-export or retrain")
    assert not out.exists()


TRAINING = list(training_commands({key: Path() for key in
                                   ("csv", "icu", "sim", "tok", "lm", "mae-pre", "setvae-pre")}))


@pytest.fixture
def interrupt_at(monkeypatch):
    """``interrupt_at(step)``: every Trainer this test builds raises KeyboardInterrupt once
    a training batch reaches ``step``, as Ctrl-C would arrive there."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    def at(step: int) -> None:
        class Interrupt(Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step >= step:
                    raise KeyboardInterrupt

        init = L.Trainer.__init__

        def with_interrupt(self, *args, callbacks=None, **kwargs):
            init(self, *args, callbacks=[*(callbacks or []), Interrupt()], **kwargs)

        monkeypatch.setattr(L.Trainer, "__init__", with_interrupt)

    return at


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b""
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("name", TRAINING)
def test_an_interrupted_run_exits_130_and_leaves_nothing(trained, cli, interrupt_at, tmp_path,
                                                         name):
    interrupt_at(1)
    out = tmp_path / "runs" / "new"
    result = cli(*training_commands(trained)[name], *budget(name), *RUN, "--save-path", out)
    assert (result.rc, result.err) == (130, "interrupted: nothing was exported\n"), result
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", TRAINING)
def test_a_diverged_run_exits_2_and_leaves_nothing(trained, cli, tmp_path, name):
    lr = ["--tokenizer-lr", "1e30"] if name.startswith("doppler") else ["--lr", "1e30"]
    out = tmp_path / "runs" / "new"
    result = cli(*training_commands(trained)[name], *lr, *budget(name), *RUN,
                 "--save-path", out)
    result.assert_error("nothing was exported")
    assert not (tmp_path / "runs").exists()


def test_an_interrupted_run_over_an_earlier_one_leaves_it_as_it_was(trained, cli,
                                                                    interrupt_at, tmp_path):
    out = Path(shutil.copytree(trained["tok"], tmp_path / "run"))
    before = snapshot(out)
    interrupt_at(1)
    result = cli(*training_commands(trained)["tokenizer train"], *STEP_BUDGET, *RUN,
                 "--checkpoint-every", "1", "--overwrite", "--save-path", out)
    assert (result.rc, result.err) == (130, "interrupted: nothing was exported\n"), result
    assert snapshot(out) == before


@pytest.mark.parametrize("name", ["tokenizer train", "mae pretrain", "forecast finetune"])
def test_an_interrupted_run_keeps_only_what_resume_needs_and_resumes(trained, cli, interrupt_at,
                                                                     tmp_path, name, monkeypatch):
    from timetok.core.train.runner import RESUME_FILES

    out = tmp_path / "run"
    interrupt_at(2)
    args = [*training_commands(trained)[name], *STEP_BUDGET, *RUN, "--checkpoint-every", "1"]
    result = cli(*args, "--save-path", out)
    run = out / "H8" if name == "forecast finetune" else out
    assert result.rc == 130, result
    assert result.err == (f"interrupted: nothing was exported; --resume {run} continues from "
                          "the last checkpoint\n")
    assert {"checkpoints", "run.yaml"} <= {p.name for p in run.iterdir()} <= RESUME_FILES
    monkeypatch.undo()  # no more interrupts
    result = cli(*args, "--resume", run)
    assert result.rc == 0, result
    assert (run / "model.safetensors").is_file()


def test_an_interrupted_run_of_a_recipe_that_cannot_resume_keeps_no_checkpoint(
        trained, cli, interrupt_at, tmp_path):
    out = tmp_path / "run"
    interrupt_at(2)
    result = cli(*training_commands(trained)["doppler train"], *RUN, "--checkpoint-every", "1",
                 "--save-path", out)
    assert (result.rc, result.err) == (130, "interrupted: nothing was exported\n"), result
    assert not out.exists()


# The CLI in a subprocess whose Trainer sends the process a signal once training reaches a
# step, as a user's Ctrl-C (SIGINT) or a scheduler's SIGTERM would arrive.
SIGNAL_AT = """
import os, signal, sys
import lightning as L
from lightning.pytorch.callbacks import Callback

class Signal(Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 1:
            os.kill(os.getpid(), signal.{name})

init = L.Trainer.__init__
def with_signal(self, *args, callbacks=None, **kwargs):
    init(self, *args, callbacks=[*(callbacks or []), Signal()], **kwargs)
L.Trainer.__init__ = with_signal

from timetok.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_ends_a_run_with_its_exit_code_and_one_line(tmp_path, name, code):
    import subprocess
    import sys

    csv = write_series_csv(tmp_path / "series.csv", rows=400)
    out = tmp_path / "runs" / "new"
    proc = subprocess.run(
        [sys.executable, "-c", SIGNAL_AT.format(name=name), "tokenizer", "train", "--dataset",
         "custom", "--data-path", str(csv), *TOKENIZER, *STEP_BUDGET, *RUN, "--save-path",
         str(out)], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (code, "interrupted: nothing was exported\n"), proc
    assert not (tmp_path / "runs").exists()


# The CLI in a subprocess that, its fifth step done, waits to be killed: the kill can land
# anywhere from the first checkpoint on (mid-step, mid-write of the next), never after the
# run has finished. Nothing else differs from a plain run.
HOLD_AT_5 = """
import sys, time
import lightning as L
from lightning.pytorch.callbacks import Callback

class Hold(Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 5:
            while True:
                time.sleep(1)

init = L.Trainer.__init__
def with_hold(self, *args, callbacks=None, **kwargs):
    init(self, *args, callbacks=[*(callbacks or []), Hold()], **kwargs)
L.Trainer.__init__ = with_hold

from timetok.cli import main
sys.exit(main(sys.argv[1:]))
"""
BUNDLED = {"tokenizer train": ["tokenizer", "train", "--dataset", "etth1", *TOKENIZER],
           "mae pretrain": ["mae", "pretrain", "--dataset", "ecg200", *MAE]}


@pytest.mark.parametrize("name", list(BUNDLED))
def test_a_run_killed_after_a_checkpoint_resumes_to_the_uninterrupted_weights(tmp_path, name):
    """SIGKILL once last.ckpt exists, then --resume: the exported weights equal, bit for
    bit, those of the same run never stopped. One process and one thread make the
    arithmetic repeat exactly; the checkpoint brings back the epoch's order and the random
    generators (timetok.core.train.checkpoints). ECG200's 5 batches an epoch put an epoch
    boundary inside mae pretrain's 6 steps."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch
    from safetensors.torch import load_file

    args = [*BUNDLED[name], *RUN, "--max-steps", "6", "--checkpoint-every", "2",
            "--threads", "1", "--seed", "7"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = subprocess.run([sys.executable, "-m", "timetok", *args, "--save-path", whole],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen([sys.executable, "-c", HOLD_AT_5, *args, "--save-path", killed],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 300
        while not (killed / "checkpoints" / "last.ckpt").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, proc.returncode
            time.sleep(0.005)  # how often to look, not how long to wait
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    (killed / "checkpoints" / ".last.ckpt.cut.tmp").write_bytes(b"PK")  # a kill mid-write's
    resumed = subprocess.run([sys.executable, "-m", "timetok", *args, "--resume", killed],
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = (load_file(run / "model.safetensors") for run in (whole, killed))
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


# --- outputs on what a command reads, under a file, in a read-only folder ----------------

# Every command that writes, its output placed on what it reads: ``c(key, name)`` copies
# the fixture's input ``key`` into the test's folder (as ``name``, where given; a command
# refused before it reads anything never sees that the copy is not the kind it expects).
ON_INPUT = {
    "tokenizer train": lambda c: ["tokenizer", "train", "--dataset", "custom", "--data-path",
                                  c("csv"), *TOKENIZER, "--save-path", c("csv").parent,
                                  "--overwrite"],
    "tokenizer evaluate": lambda c: ["tokenizer", "evaluate", "--model", c("tok"), "--out",
                                     c("tok")],
    "tokenizer encode": lambda c: ["tokenizer", "encode", "--model", c("tok"), "--input",
                                   c("csv"), "--output", c("csv")],
    "tokenizer decode": lambda c: ["tokenizer", "decode", "--model", c("tok"), "--input",
                                   c("csv", "codes.npy"), "--output", c("tok") / "d.csv"],
    "forecast pretrain": lambda c: ["forecast", "pretrain", "--tokenizer", c("tok"),
                                    "--dataset", "custom", "--data-path", c("csv"), *LM,
                                    "--save-path", c("tok")],
    "forecast finetune": lambda c: ["forecast", "finetune", "--model", c("lm"), "--dataset",
                                    "custom", "--data-path", c("csv"), "--horizon", "8",
                                    "--save-path", c("lm"), "--overwrite"],
    "forecast evaluate": lambda c: ["forecast", "evaluate", "--model", c("ft"), "--dataset",
                                    "custom", "--data-path", c("csv"), "--out", c("ft")],
    "forecast predict": lambda c: ["forecast", "predict", "--model", c("ft") / "H8",
                                   "--input", c("csv"), "--output", c("csv")],
    "mae pretrain": lambda c: ["mae", "pretrain", "--dataset", "ecg200", "--data-dir",
                               c("csv").parent, *MAE, "--save-path", c("csv").parent / "run"],
    "mae finetune": lambda c: ["mae", "finetune", "--model", c("mae-pre"), "--dataset",
                               "ecg200", "--save-path", c("mae-pre"), "--overwrite"],
    "mae evaluate": lambda c: ["mae", "evaluate", "--model", c("mae-ft"), "--dataset",
                               "ecg200", "--out", c("mae-ft").parent],
    "mae embed": lambda c: ["mae", "embed", "--model", c("mae-pre"), "--dataset", "npz",
                            "--data-path", c("csv", "same.npz"), "--output",
                            c("csv", "same.npz")],
    "setvae pretrain": lambda c: ["setvae", "pretrain", "--data-path", c("icu"), *SETVAE,
                                  "--save-path", c("icu"), "--overwrite"],
    "setvae finetune": lambda c: ["setvae", "finetune", "--model", c("setvae-pre"),
                                  "--data-path", c("icu"), "--save-path", c("setvae-pre"),
                                  "--overwrite"],
    "setvae evaluate": lambda c: ["setvae", "evaluate", "--model", c("setvae-ft"), "--out",
                                  c("setvae-ft")],
    "setvae predict": lambda c: ["setvae", "predict", "--model", c("setvae-ft"), "--output",
                                 c("setvae-ft") / "risk.csv"],
    "doppler train": lambda c: ["doppler", "train", "--data", c("sim"), *DOPPLER,
                                "--save-path", c("sim"), "--overwrite"],
    "doppler generate": lambda c: ["doppler", "generate", "--model", c("doppler"),
                                   "--samples", "2", "--out", c("doppler"), "--overwrite"],
    "doppler evaluate": lambda c: ["doppler", "evaluate", "--model", c("doppler"),
                                   "--generated", c("sim"), "--out", c("sim") / "report"],
}


def assert_refused(result, *fragments: str) -> None:
    """Exit 2, at most three lines on stderr, no traceback."""
    assert result.rc == 2, result
    assert "Traceback" not in result.err and result.err.startswith("error: "), result.err
    assert len(result.err.splitlines()) <= 3, result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


@pytest.mark.parametrize("command", list(ON_INPUT))
def test_an_output_on_what_the_command_reads_is_refused(trained, cli, tmp_path, command):
    inputs = tmp_path / "in"

    def copy(key: str, name: str | None = None) -> Path:
        source = trained[key]
        to = inputs / (name or source.name)
        if not to.exists():
            inputs.mkdir(exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy)(source, to)
        return to

    args = ON_INPUT[command](copy)
    before = snapshot(tmp_path)
    result = cli(*args, *(budget(command) + RUN if "--save-path" in args else []))
    assert_refused(result, "it reads (--", "; choose another --")
    assert snapshot(tmp_path) == before


def writing_commands(trained: dict, out: Path) -> dict[str, list]:
    """Every command that writes, its output at ``out``; its inputs the fixture's."""
    series = ["--dataset", "custom", "--data-path", str(trained["csv"])]
    save = [*RUN, "--save-path", str(out)]
    return {
        **{name: [*args, *budget(name), *save] for name, args in
           training_commands(trained).items()},
        "tokenizer evaluate": ["tokenizer", "evaluate", "--model", trained["tok"], *series,
                               "--out", out],
        "tokenizer encode": ["tokenizer", "encode", "--model", trained["tok"], "--input",
                             trained["csv"], "--output", out / "codes.npy"],
        "tokenizer decode": ["tokenizer", "decode", "--model", trained["tok"], "--input",
                             trained["csv"], "--output", out / "series.csv"],
        "forecast evaluate": ["forecast", "evaluate", "--model", trained["ft"], *series,
                              "--out", out],
        "forecast predict": ["forecast", "predict", "--model", trained["ft"] / "H8", "--input",
                             trained["csv"], "--output", out / "f.csv"],
        "mae evaluate": ["mae", "evaluate", "--model", trained["mae-ft"], "--dataset",
                         "ecg200", "--out", out],
        "mae embed": ["mae", "embed", "--model", trained["mae-pre"], "--dataset", "ecg200",
                      "--output", out / "e.npz"],
        "setvae evaluate": ["setvae", "evaluate", "--model", trained["setvae-ft"], "--out",
                            out],
        "setvae predict": ["setvae", "predict", "--model", trained["setvae-ft"], "--output",
                           out / "risk.csv"],
        "doppler simulate": ["doppler", "simulate", "--users", "2", "--per-user", "2",
                             "--size", "32", "--out", out, "--no-progress"],
        "doppler generate": ["doppler", "generate", "--model", trained["doppler"],
                             "--samples", "2", "--out", out],
        "doppler evaluate": ["doppler", "evaluate", "--model", trained["doppler"], "--out",
                             out],
        "data fetch": ["data", "fetch", "etth1", "--data-dir", out],
    }


WRITING = list(writing_commands({key: Path() for key in
                                 ("csv", "icu", "sim", "tok", "lm", "ft", "mae-pre", "mae-ft",
                                  "setvae-pre", "setvae-ft", "doppler")}, Path()))


@pytest.fixture
def inputs_unchanged(trained):
    """The fixture's inputs hold the same files and bytes after the test as before."""
    before = snapshot(trained["root"])
    yield
    assert snapshot(trained["root"]) == before


@pytest.mark.usefixtures("inputs_unchanged")
@pytest.mark.parametrize("command", WRITING)
def test_an_output_under_a_regular_file_is_refused(trained, cli, tmp_path, command):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x\n")
    before = snapshot(tmp_path)
    result = cli(*writing_commands(trained, a_file / "out")[command])
    assert_refused(result, "notes.txt is a file, not a folder")
    assert snapshot(tmp_path) == before


def locked(monkeypatch, folder: Path) -> Path:
    """``folder``, made one this process may not write into (os.access says so, for root
    too, as a read-only folder would for anyone else)."""
    import os

    folder.mkdir(exist_ok=True)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        (Path(path) != folder or not mode & os.W_OK) and real_access(path, mode, **kw)))
    return folder


@pytest.mark.usefixtures("inputs_unchanged")
@pytest.mark.parametrize("command", WRITING)
def test_an_output_in_a_read_only_folder_is_refused(trained, cli, tmp_path, monkeypatch,
                                                     command):
    folder = locked(monkeypatch, tmp_path / "read-only")
    before = snapshot(tmp_path)
    result = cli(*writing_commands(trained, folder / "out")[command])
    assert_refused(result, f"the folder {folder} is not writable")
    assert snapshot(tmp_path) == before


def test_calibrate_refuses_a_read_only_model_folder(trained, cli, tmp_path, monkeypatch):
    model = locked(monkeypatch, Path(shutil.copytree(trained["ft"] / "H8", tmp_path / "m")))
    before = snapshot(tmp_path)
    result = cli("forecast", "calibrate", "--model", model, "--dataset", "custom",
                 "--data-path", trained["csv"])
    assert_refused(result, f"the folder {model} is not writable")
    assert snapshot(tmp_path) == before
