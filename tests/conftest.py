"""Shared fixtures: tiny CSVs, an in-process CLI runner, and one tiny trained tokenizer run.

Nothing here is autouse, so other test folders are unaffected unless they ask for a fixture.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# A model of a few thousand parameters: three optimiser steps take about a second on a CPU.
TINY_MODEL = [
    "--context-points", "32", "--batch-size", "8", "--block-hidden-size", "16",
    "--res-hidden-size", "8", "--embedding-dim", "8", "--num-embeddings", "16",
]
TINY_RUN = [*TINY_MODEL, "--max-steps", "3", "--no-progress", "--accelerator", "cpu",
            "--devices", "1"]


def write_series_csv(
    path: Path,
    rows: int = 300,
    columns: Sequence[str] = ("a", "b"),
    *,
    date: bool = True,
    seed: int = 0,
    values: np.ndarray | None = None,
    cells: Mapping[tuple[int, str], str] | None = None,
) -> Path:
    """Write ``rows`` x ``len(columns)`` values (noisy sinusoids unless ``values`` is given).

    ``cells`` replaces single cells by text: ``{(row_index, column): "abc"}``; row 0 is the
    first data row, i.e. line 2 of the file.
    """
    columns = list(columns)
    if values is None:
        rng = np.random.default_rng(seed)
        t = np.arange(rows)[:, None]
        scale = np.arange(1, len(columns) + 1)[None, :]
        values = np.sin(t / (4.0 + 3 * scale)) * scale + 0.1 * rng.normal(size=(rows, len(columns)))
    values = np.asarray(values, dtype=np.float64)
    assert values.shape == (rows, len(columns))
    cells = dict(cells or {})
    lines = [",".join((["date"] if date else []) + columns)]
    start = np.datetime64("2020-01-01T00:00")
    for i in range(rows):
        row = [cells.get((i, c), repr(float(values[i, j]))) for j, c in enumerate(columns)]
        stamp = [str(start + np.timedelta64(i, "h")).replace("T", " ")] if date else []
        lines.append(",".join(stamp + row))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def make_csv(tmp_path: Path) -> Callable[..., Path]:
    """``make_csv(name="series.csv", rows=300, columns=("a", "b"), ...)`` -> path in tmp_path."""

    def make(name: str = "series.csv", *args, **kwargs) -> Path:
        return write_series_csv(tmp_path / name, *args, **kwargs)

    return make


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No TIMETOK_DATA_DIR, an empty user cache, no debug tracebacks: datasets resolve to
    the bundled ETTh1 copy or nothing. Returns the (empty) cache base folder."""
    cache = tmp_path / "xdg-cache"
    cache.mkdir()
    monkeypatch.delenv("TIMETOK_DATA_DIR", raising=False)
    monkeypatch.delenv("TIMETOK_DEBUG", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@dataclass
class CliResult:
    rc: int
    out: str
    err: str

    def assert_error(self, *fragments: str) -> None:
        """The CLI contract for bad input: exit 2, one ``error: `` line, no traceback."""
        assert self.rc == 2, f"rc={self.rc}, stderr={self.err!r}, stdout={self.out!r}"
        assert "Traceback" not in self.err, self.err
        assert self.err.startswith("error: "), self.err
        assert self.err.endswith("\n") and self.err.count("\n") == 1, (
            f"stderr is not exactly one line: {self.err!r}"
        )
        for fragment in fragments:
            assert fragment.lower() in self.err.lower(), f"{fragment!r} not in {self.err!r}"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run ``timetok ARGS`` in this process; returns rc, stdout and stderr."""
    monkeypatch.delenv("TIMETOK_DEBUG", raising=False)

    def run(*args: object) -> CliResult:
        from timetok.cli import main

        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(rc, out, err)

    return run


@dataclass(frozen=True)
class TinyRun:
    path: Path  # the run folder (= exported model)
    csv: Path  # the 300 x 2 CSV it was trained on (columns a, b)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """One tokenizer trained for three steps on a 300 x 2 CSV; treat it as read-only."""
    from timetok.cli import main

    root = tmp_path_factory.mktemp("tiny-run")
    csv = write_series_csv(root / "series.csv")
    run = root / "run"
    rc = main(["tokenizer", "train", "--dataset", "custom", "--data-path", str(csv),
               *TINY_RUN, "--save-path", str(run)])
    assert rc == 0, "the tiny training run failed"
    return TinyRun(run, csv)


@pytest.fixture
def run_copy(tiny_run: TinyRun, tmp_path: Path) -> Path:
    """A private copy of the tiny run folder, free to damage."""
    return Path(shutil.copytree(tiny_run.path, tmp_path / "run-copy"))


@pytest.fixture
def tiny_flags() -> list[str]:
    """Flags of a tiny three-step tokenizer run (add --dataset/--data-path/--save-path)."""
    return list(TINY_RUN)


@pytest.fixture
def encoded(cli, tiny_run: TinyRun, tmp_path: Path) -> Path:
    """The tiny run's CSV encoded to ``enc/codes.npy`` (and its ``.stats.npz``)."""
    codes = tmp_path / "enc" / "codes.npy"
    result = cli("tokenizer", "encode", "--model", tiny_run.path, "--input", tiny_run.csv,
                 "--output", codes)
    assert result.rc == 0, result.err
    return codes


@dataclass(frozen=True)
class TinyForecaster:
    path: Path  # a finetuned-shape model folder (config, weights, data.json), uncalibrated
    csv: Path  # the 300 x 2 CSV its scaler was fitted on (columns a, b)


@pytest.fixture(scope="session")
def tiny_forecaster(tmp_path_factory: pytest.TempPathFactory) -> TinyForecaster:
    """An untrained H=8 forecaster over a context of 32, saved as ``lm finetune`` exports
    one but without ``calibration.json``; treat it as read-only (copy it to calibrate)."""
    import torch

    from timetok.core.data.series import load_splits
    from timetok.core.model_folder import write_data_section
    from timetok.forecast.model import ForecasterConfig, TokenForecaster
    from timetok.tokenizer.model import TokenizerConfig

    root = tmp_path_factory.mktemp("tiny-forecaster")
    csv = write_series_csv(root / "series.csv")
    tokenizer = TokenizerConfig(n_channels=1, context_points=32, embedding_dim=8,
                                block_hidden_size=16, res_hidden_size=8, num_embeddings=16)
    torch.manual_seed(0)
    model = TokenForecaster(ForecasterConfig(tokenizer=tokenizer, context_points=32, horizon=8,
                                             d_model=16, n_layers=1, n_heads=2, d_ff=32,
                                             max_horizon=16))
    folder = root / "model"
    model.save_pretrained(folder)
    write_data_section(folder, "scaler", load_splits("custom", 32, data_path=csv).scaler.to_dict())
    return TinyForecaster(folder, csv)
