"""Where a dataset's file resolves from, and the errors when it cannot."""

from __future__ import annotations

import pytest

from timetok.core.data.registry import (
    BUNDLED_DIR,
    DATASETS,
    cache_dir,
    get_spec,
    resolve_path,
    search_dirs,
)
from timetok.core.errors import DataError


def _put(folder, name="ETTh1.csv"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("date,OT\n2020-01-01 00:00,1.0\n")
    return path


def test_resolve_order(tmp_path, monkeypatch):
    """--data-dir beats TIMETOK_DATA_DIR beats the user cache beats the bundled copy."""
    explicit = _put(tmp_path / "explicit")
    env = _put(tmp_path / "env")
    cache = _put(tmp_path / "xdg" / "timetok")
    monkeypatch.setenv("TIMETOK_DATA_DIR", str(env.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == cache.parent
    assert search_dirs(explicit.parent) == [explicit.parent, env.parent, cache.parent, BUNDLED_DIR]

    assert resolve_path("etth1", explicit.parent) == explicit
    assert resolve_path("etth1") == env  # no --data-dir
    explicit.unlink()
    assert resolve_path("etth1", explicit.parent) == env
    env.unlink()
    assert resolve_path("etth1", explicit.parent) == cache
    monkeypatch.delenv("TIMETOK_DATA_DIR")
    assert resolve_path("etth1") == cache
    cache.unlink()
    assert resolve_path("etth1", explicit.parent) == BUNDLED_DIR / "ETTh1.csv"


def test_cache_defaults_to_home_without_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "timetok"


def test_data_path_beats_every_folder(tmp_path, isolated_env):
    own = _put(tmp_path / "mine", "anything.csv")
    _put(tmp_path / "explicit")
    assert resolve_path("etth1", tmp_path / "explicit", data_path=own) == own


def test_names_are_case_insensitive():
    assert get_spec("ETTh1") is DATASETS["etth1"]
    assert get_spec("Custom") is DATASETS["custom"]


def test_unknown_dataset_lists_the_known_names():
    with pytest.raises(DataError) as info:
        get_spec("nosuch")
    message = str(info.value)
    assert "'nosuch'" in message
    for name in ("etth1", "etth2", "ettm1", "ettm2", "custom"):
        assert name in message
    with pytest.raises(DataError, match="unknown dataset"):
        resolve_path("nosuch")


def test_custom_without_data_path_asks_for_one(isolated_env):
    with pytest.raises(DataError, match="data_path"):
        resolve_path("custom")


def test_custom_with_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        resolve_path("custom", data_path=tmp_path / "nope.csv")


def test_a_missing_official_file_says_where_it_looked_and_how_to_fetch(tmp_path, isolated_env):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as info:
        resolve_path("ettm1", tmp_path / "empty")
    message = str(info.value)
    assert "ETTm1.csv not found" in message
    assert str(tmp_path / "empty") in message and str(BUNDLED_DIR) in message
    assert "timetok data fetch ettm1" in message


def test_only_etth1_is_bundled(isolated_env):
    assert resolve_path("etth1") == BUNDLED_DIR / "ETTh1.csv"
    for name in ("etth2", "ettm1", "ettm2"):
        with pytest.raises(DataError):
            resolve_path(name)


def test_a_data_dir_that_does_not_exist_is_refused_not_skipped(tmp_path, isolated_env):
    with pytest.raises(DataError, match="not a folder"):
        resolve_path("etth1", tmp_path / "typo")  # the bundled copy would hide the typo
