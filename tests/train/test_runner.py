"""Training runs through the real CLI in subprocesses: kill + resume, DDP, settings files."""

import json
import os
import signal
import subprocess
import sys
import time
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
        [sys.executable, "-m", "timetok.cli.main", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kwargs,
    )


def run(*args: str, timeout: float = 180) -> str:
    proc = timetok(*args)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def ckpt_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def test_killed_run_resumes_to_the_same_step_count(tmp_path, make_csv):
    data = make_csv(rows=3000)
    out = tmp_path / "run"
    args = ["tokenizer", "train", "--dataset", "custom", "--data-path", str(data), *TINY,
            "--max-steps", "120", "--checkpoint-every", "10", "--save-path", str(out)]
    proc = timetok(*args)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert last.exists(), "the run ended before its first checkpoint"
    killed_at = ckpt_step(last)
    assert 0 < killed_at < 120
    # Nothing half-written: no temporary files, and no exported model before the end.
    leftovers = [p.name for p in out.rglob("*") if ".tmp" in p.name or p.name.endswith(".part")]
    assert leftovers == []
    assert not (out / "model.safetensors").exists()

    run(*args[:-2], "--resume", str(out))
    summary = json.loads((out / "training.json").read_text())
    assert summary["global_step"] == 120
    assert ckpt_step(last) == 120
    assert (out / "model.safetensors").is_file() and (out / "scaler.json").is_file()


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
