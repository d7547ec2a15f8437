"""The wheel holds the bundled data, the typing marker and the licence, and works installed.

The wheel is built once per session, without network or build isolation (the venv's
setuptools, from the ``dev`` extra), from a clean copy of the sources so that no stale
``build/`` folder leaks removed modules into it and the checkout stays untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_CSV = "timetok/core/data/bundled/ETTh1.csv"
# Top-level entries the build never reads, or that hold earlier builds' leftovers.
LEAVE_OUT = {".git", ".venv", "build", "dist", "runs", "tests", "benchmarks", ".pytest_cache",
             ".ruff_cache"}


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=180, **kwargs)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in LEAVE_OUT or entry.name.endswith(".egg-info"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, src / entry.name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(entry, src / entry.name)
    out = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "--disable-pip-version-check", "-q", "-w", str(out), str(src)])
    wheels = list(out.glob("timetok-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_the_bundled_data_the_typing_marker_and_the_licence(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert zf.read(BUNDLED_CSV) == (ROOT / BUNDLED_CSV).read_bytes()
        assert "timetok/py.typed" in names
        assert "timetok/__main__.py" in names
        licences = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert len(licences) == 1, sorted(n for n in names if ".dist-info/" in n)
        assert zf.read(licences[0]) == (ROOT / "LICENSE").read_bytes()
        metadata = zf.read(licences[0].replace("licenses/LICENSE", "METADATA")).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata


def test_installed_wheel_runs_the_quick_start_on_its_bundled_copy(wheel, tmp_path):
    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
          "--disable-pip-version-check", "-q", "--target", str(site), str(wheel)])
    cache = tmp_path / "cache"
    cache.mkdir()
    work = tmp_path / "work"  # outside the checkout: the current folder comes first on sys.path
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TIMETOK_DATA_DIR"}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(cache))

    where = _run([sys.executable, "-c", "import timetok; print(timetok.__file__)"],
                 cwd=work, env=env)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout

    proc = _run([sys.executable, "-m", "timetok", "data", "info", "etth1", "--json"],
                cwd=work, env=env)
    report = json.loads(proc.stdout)
    assert Path(report["path"]).resolve().is_relative_to(site.resolve()), report["path"]
    assert report["rows"] == 17420
    assert report["channels"] == 7
