"""Benchmark records name the code that produced them."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from timetok.core.report import commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(*args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks/results").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmarks/results/run.json").write_text("[]\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    commit.cache_clear()
    yield tmp_path
    commit.cache_clear()


def head() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_a_clean_checkout_records_its_commit(checkout):
    (checkout / "benchmarks/results/run.json").write_text("[1]\n")  # a run's own results
    (checkout / "notes.txt").write_text("untracked\n")
    assert commit() == head()


def test_changed_code_marks_the_commit_dirty(checkout):
    (checkout / "code.py").write_text("x = 2\n")
    assert commit() == f"{head()}+dirty"


def test_outside_a_checkout_the_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    commit.cache_clear()
    assert commit() == "unknown"
    commit.cache_clear()
