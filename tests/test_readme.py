"""The README's Python example runs as written."""

import re
from pathlib import Path

from timetok.models.tokenizer import TimeSeriesTokenizer, TokenizerConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_example_runs(tmp_path, monkeypatch):
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    config = TokenizerConfig(n_channels=7, context_points=512, embedding_dim=8,
                             block_hidden_size=16, res_hidden_size=8)
    TimeSeriesTokenizer(config).save_pretrained("runs/tok-ettm1")
    scope: dict = {}
    exec(compile(block, str(README), "exec"), scope)
    assert tuple(scope["codes"].shape) == (8, 128, 7)
    assert tuple(scope["restored"].shape) == (8, 512, 7)
