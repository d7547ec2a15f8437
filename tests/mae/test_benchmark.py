"""benchmarks/classify.py on a user's own UCR folder: its kind found from the files, the
recipe sized by the data, few-label settings named as the records require."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[2]


def ucr_folder(root: Path, name: str = "Waves", n: int = 30, length: int = 40) -> Path:
    rng = np.random.default_rng(0)
    folder = root / name
    folder.mkdir()
    for split in ("TRAIN", "TEST"):
        y = np.arange(n) % 2 + 1
        t = np.linspace(0, 6, length)
        x = np.sin(t[None] * y[:, None]) + rng.normal(scale=0.3, size=(n, length))
        rows = ["\t".join([str(label), *map(str, row)]) for label, row in zip(y, x, strict=True)]
        (folder / f"{name}_{split}.tsv").write_text("\n".join(rows) + "\n")
    return folder


def test_a_users_ucr_folder_runs_with_few_labels_and_records_its_settings(tmp_path):
    folder = ucr_folder(tmp_path)
    results = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "benchmarks/classify.py", "--data-path", str(folder), "--seeds", "1",
         "--methods", "timetok-finetune,scratch,minirocket", "--labels", "50,100",
         "--few-label-sets", "waves", "--steps-scale", "0.003", "--results", str(results),
         "--runs", str(tmp_path / "runs")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    records = json.loads((results / "classify.json").read_text())
    accuracy = [r for r in records if r["metric"] == "accuracy"]
    assert {(r["dataset"], r["setting"], r["method"]) for r in accuracy} == {
        ("waves", setting, method) for setting in ("labels=50%,seed=1", "seed=1")
        for method in ("timetok-finetune", "scratch", "minirocket")}
    assert all(0 <= r["value"] <= 1 and r["source"] == "measured" for r in accuracy)
    ours = next(r for r in accuracy if r["method"] == "timetok-finetune"
                and r["setting"].startswith("labels"))
    assert "--dataset ucr" in ours["command"] and "--label-fraction 0.5" in ours["command"]
    pretraining = (tmp_path / "runs" / "waves" / "seed1" / "pretrain-auto" / "run.yaml")
    assert "encoder: conv" in pretraining.read_text()  # 24 training series: a small set
    assert "| waves | 50% |" in (results / "classify.md").read_text()


def test_a_folder_of_neither_archive_is_refused_in_one_line(tmp_path):
    run = subprocess.run([sys.executable, "benchmarks/classify.py", "--data-path",
                          str(tmp_path), "--results", str(tmp_path / "r")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "holds no <Name>_TRAIN.tsv" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
