"""Every file timetok writes: atomically, through a unique temporary file, with the mode a
plain ``open()`` would give; a failed download leaves no folder behind."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from tests.core.data.test_fetch import PAYLOAD, _sha256, serve, src  # noqa: F401  (fixtures)
from timetok.core.data.fetch import fetch_file
from timetok.core.errors import DataError
from timetok.core.utils import atomic_path, atomic_write_bytes, default_file_mode


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_get_the_default_mode_and_leave_no_temporary(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(path, b"abc")
    assert path.read_bytes() == b"abc" and _mode(path) == default_file_mode()
    assert [p.name for p in path.parent.iterdir()] == ["f.bin"]


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_two_writers_of_one_path_get_their_own_temporary_files(tmp_path):
    path = tmp_path / "figure.png"
    with atomic_path(path) as first, atomic_path(path) as second:
        assert first != second
        first.write_bytes(b"one")
        second.write_bytes(b"two")
    assert path.read_bytes() == b"one"  # the outer block ends last


def test_figures_are_written_through_a_unique_temporary_file(tmp_path, monkeypatch):
    from timetok.core import plots

    stale = tmp_path / ".code_usage.png.tmp.png"  # the fixed name an earlier version used
    stale.write_bytes(b"another run's")
    plots.plot_code_usage(tmp_path / "code_usage.png", np.array([[3, 1, 0, 2]]))
    path = tmp_path / "code_usage.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _mode(path) == default_file_mode()
    assert stale.read_bytes() == b"another run's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [stale.name, "code_usage.png"]


def test_a_download_gets_the_default_mode(serve, src, tmp_path):  # noqa: F811
    dest = fetch_file(f"{serve(src)}/payload.bin", tmp_path / "p.bin", _sha256(PAYLOAD),
                      progress=False)
    assert _mode(dest) == default_file_mode() != 0o600


def test_a_failed_download_removes_the_folders_it_created(serve, src, tmp_path):  # noqa: F811
    dest = tmp_path / "new" / "deeper" / "p.bin"
    with pytest.raises(DataError, match="checksum"):
        fetch_file(f"{serve(src)}/payload.bin", dest, _sha256(b"other"), progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "src"]


def test_a_failed_download_keeps_a_folder_that_was_there(serve, src, tmp_path):  # noqa: F811
    folder = tmp_path / "there"
    folder.mkdir()
    with pytest.raises(DataError):
        fetch_file(f"{serve(src)}/missing.bin", folder / "p.bin", None, progress=False)
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_data_fetch_that_fails_leaves_no_data_dir(cli, serve, src, tmp_path,  # noqa: F811
                                                  monkeypatch):
    monkeypatch.delenv("TIMETOK_DEBUG", raising=False)
    data_dir = tmp_path / "fresh" / "data"
    result = cli("data", "fetch", "etth1", "--data-dir", data_dir, "--url",
                 f"{serve(src)}/payload.bin")
    last = result.err.splitlines()[-1]  # after the progress bar
    assert result.rc == 2 and "Traceback" not in result.err, result.err
    assert last.startswith("error: checksum mismatch") and "--url" in last, last
    assert not (tmp_path / "fresh").exists()
