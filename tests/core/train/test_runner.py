"""Training runs through the real CLI in subprocesses: kill + resume, DDP, settings files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

TINY = [
    "--context-points", "32", "--batch-size", "8", "--embedding-dim", "8",
    "--num-embeddings", "16", "--block-hidden-size", "16", "--res-hidden-size", "8",
    "--no-progress",
]


def timetok(*args: str, **kwargs) -> subprocess.Popen:
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "timetok.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kwargs,
    )


def run(*args: str, timeout: float = 180) -> str:
    proc = timetok(*args)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def ckpt_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


# Runs the CLI with a callback that ends the process abruptly at a given step, as a kill
# would: no clean-up, no exception handling, whatever was on disk stays as it was.
CRASH_AT = """
import os, sys
import lightning as L
from lightning.pytorch.callbacks import Callback

class Crash(Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == {step}:
            os._exit(137)

init = L.Trainer.__init__
def with_crash(self, *args, callbacks=None, **kwargs):
    init(self, *args, callbacks=[*(callbacks or []), Crash()], **kwargs)
L.Trainer.__init__ = with_crash

from timetok.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_run_resumes_to_the_same_step_count(tmp_path, make_csv):
    data = make_csv(rows=3000)
    out = tmp_path / "run"
    args = ["tokenizer", "train", "--dataset", "custom", "--data-path", str(data), *TINY,
            "--max-steps", "40", "--checkpoint-every", "10", "--save-path", str(out)]
    proc = subprocess.run([sys.executable, "-c", CRASH_AT.format(step=25), *args],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 137, proc.stdout + proc.stderr
    last = out / "checkpoints" / "last.ckpt"
    assert ckpt_step(last) == 20  # the last checkpoint before the kill
    # Nothing half-written: no temporary files, and no exported model before the end.
    leftovers = [p.name for p in out.rglob("*") if ".tmp" in p.name or p.name.endswith(".part")]
    assert leftovers == []
    assert not (out / "model.safetensors").exists()

    run(*args[:-2], "--resume", str(out))
    summary = json.loads((out / "training.json").read_text())
    assert summary["global_step"] == 40
    assert ckpt_step(last) == 40
    assert (out / "model.safetensors").is_file() and (out / "data.json").is_file()


def test_config_file_with_flags_overriding(tmp_path, make_csv):
    data = make_csv(rows=600)
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"commitment_cost": 0.5, "embedding_dim": 4, "lr": 0.01}))
    out = tmp_path / "run"
    run("tokenizer", "train", "--dataset", "custom", "--data-path", str(data), *TINY,
        "--config", str(settings), "--embedding_dim", "6", "--max-steps", "3",
        "--save-path", str(out))
    saved = yaml.safe_load((out / "run.yaml").read_text())
    config = json.loads((out / "config.json").read_text())
    assert saved["commitment_cost"] == 0.5 and saved["lr"] == 0.01
    assert config["embedding_dim"] == 6  # the flag (underscored reference spelling) wins
    assert (out / "history.csv").read_text().startswith("epoch,step")


@pytest.mark.slow
def test_ddp_step_with_two_cpu_processes(tmp_path, make_csv):
    data = make_csv(rows=600)
    out = tmp_path / "run"
    run("tokenizer", "train", "--dataset", "custom", "--data-path", str(data), *TINY,
        "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--max-steps", "3",
        "--save-path", str(out), timeout=300)
    summary = json.loads((out / "training.json").read_text())
    assert summary["world_size"] == 2
    assert summary["global_step"] == 3


@pytest.mark.parametrize("has_bf16, expected", [(True, "bf16-mixed"), (False, "16-mixed")])
def test_mixed_precision_on_a_gpu_is_bf16_where_the_gpu_has_it(monkeypatch, has_bf16, expected):
    from timetok.core.train.runner import RunOptions

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: has_bf16)
    options = RunOptions(amp=True)
    assert options.precision("gpu") == expected
    assert options.precision("cpu") == "bf16-mixed"
    assert RunOptions(amp=False).precision("gpu") == "32-true"


def test_an_epoch_cut_short_without_validating_leaves_its_validation_cells_empty(
        tmp_path, make_csv, cli):
    import csv

    out = tmp_path / "run"
    result = cli("tokenizer", "train", "--dataset", "custom", "--data-path",
                 make_csv(rows=600), *TINY, "--n-epochs", "2", "--max-steps", "60",
                 "--threads", "1", "--save-path", out)
    assert result.rc == 0, result.err
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) == 2 and int(rows[1]["step"]) == 60
    assert rows[0]["val_loss"] != "" and rows[1]["val_loss"] == ""
