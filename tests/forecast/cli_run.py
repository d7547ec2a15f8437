"""The tiny run the CLI tests share: flags, and a tokenizer, language model and H=8/H=6
forecaster trained on a generated CSV."""

from __future__ import annotations

from pathlib import Path

RUN = ["--batch-size", "16", "--no-progress", "--accelerator", "cpu", "--devices", "1"]
LM = ["--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-ff", "32", *RUN]


def train_pipeline(root: Path) -> dict:
    """Train the tiny chain under ``root``; returns its folders and flags."""
    from tests.conftest import write_series_csv
    from timetok.cli import main

    data = write_series_csv(root / "series.csv", rows=400)
    common = ["--dataset", "custom", "--data-path", str(data)]
    tok, lm, ft = root / "tok", root / "lm", root / "ft"
    assert main(["tokenizer", "train", *common, "--context-points", "32", "--batch-size", "8",
                 "--block-hidden-size", "16", "--res-hidden-size", "8", "--embedding-dim",
                 "8", "--num-embeddings", "16", "--max-steps", "10", "--no-progress",
                 "--save-path", str(tok)]) == 0
    tok_before = (tok / "model.safetensors").read_bytes()
    assert main(["forecast", "pretrain", "--tokenizer", str(tok), *common, "--context-points",
                 "32", "--max-horizon", "16", *LM, "--max-steps", "6", "--save-path",
                 str(lm)]) == 0
    assert main(["forecast", "finetune", "--model", str(lm), *common, "--horizon", "8",
                 "--horizon", "6", *RUN, "--max-steps", "6", "--save-path", str(ft)]) == 0
    return {"root": root, "data": data, "tok": tok, "lm": lm, "ft": ft, "common": common,
            "tok_before": tok_before}
