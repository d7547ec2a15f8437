"""``timetok --help`` stays fast because the CLI imports no heavy library until a command runs.

Checked through ``sys.modules`` in a fresh interpreter rather than with a timed test.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "lightning", "pytorch_lightning", "transformers", "pandas", "matplotlib",
         "sklearn"]

PROBE = """
import json, sys
{body}
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] in heavy)))
"""


def _heavy_modules_after(body: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body, heavy=HEAVY)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_cli_imports_no_heavy_library():
    assert _heavy_modules_after("import timetok.cli") == []


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["data", "--help"], ["data", "info", "--help"], ["tokenizer", "--help"],
     ["tokenizer", "train", "--help"], ["tokenizer", "eval", "--help"], ["lm", "--help"],
     ["lm", "finetune", "--help"], ["lm", "forecast", "--help"], ["lm", "calibrate", "--help"],
     ["mae", "--help"], ["mae", "pretrain", "--help"]],
    ids=lambda argv: "-".join(argv),
)
def test_help_imports_no_heavy_library(argv):
    body = (
        "import contextlib, io\n"
        "from timetok.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main({argv!r}) == 0\n"
    )
    assert _heavy_modules_after(body) == []
