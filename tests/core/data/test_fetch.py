"""Tests for :mod:`timetok.core.data.fetch` against real HTTP servers on 127.0.0.1.

Two kinds of server are used: a stdlib static-file server (``SimpleHTTPRequestHandler``) for the
official ETT copies in ``../shared/data/ett`` and for small files generated in ``tmp_path``, and a
scripted server for the awkward cases (truncated body, no Content-Length, no reply at all).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from timetok.core.data.fetch import fetch_file, file_checksum
from timetok.core.errors import DataError

ETT_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "ett"
ETTH1_SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"
ETTH1_MD5 = "8381763947c85f4be6ac456c508460d6"
WRONG_SHA256 = "0" * 64
PAYLOAD = bytes(range(256)) * 1000  # 256 kB: several chunks, no repeated-chunk luck


class _QuietFileHandler(SimpleHTTPRequestHandler):
    """Static-file handler that keeps the test output free of access-log lines."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ScriptedHandler(BaseHTTPRequestHandler):
    """Serves misbehaving responses, chosen by path."""

    release: threading.Event  # set by the fixture on teardown so /hang returns promptly

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])  # then the connection closes (HTTP/1.0)
        elif self.path == "/no-length":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/hang":
            self.release.wait(timeout=10)
        else:
            self.send_error(404)


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """Start HTTP servers on 127.0.0.1 (port 0); return a starter giving each base URL."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
    release = threading.Event()

    def start(directory: Path | None = None) -> str:
        if directory is None:
            handler = type("Scripted", (_ScriptedHandler,), {"release": release})
        else:
            handler = functools.partial(_QuietFileHandler, directory=str(directory))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        servers.append((server, thread))
        host, port = server.server_address[:2]
        return f"http://{host}:{port}"

    yield start
    release.set()
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def ett_dir() -> Path:
    """The folder with the official ETT copies; skip when this checkout has none."""
    if not (ETT_DIR / "ETTh1.csv").is_file():
        pytest.skip(f"official ETT copies not found at {ETT_DIR}")
    return ETT_DIR


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A served folder holding one generated file, ``payload.bin``."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "payload.bin").write_bytes(PAYLOAD)
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty download folder, separate from the served one."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _free_port() -> int:
    """A localhost port with nothing listening: bind, read the port, close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the official ETT files ----------------------------------------------------------------


def test_downloads_etth1_with_sha256(serve, ett_dir: Path, out: Path) -> None:
    dest = out / "ETTh1.csv"
    got = fetch_file(f"{serve(ett_dir)}/ETTh1.csv", dest, f"sha256:{ETTH1_SHA256}", progress=False)
    assert got == dest
    assert dest.read_bytes() == (ett_dir / "ETTh1.csv").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["ETTh1.csv"]


def test_downloads_etth1_with_md5(serve, ett_dir: Path, out: Path) -> None:
    dest = fetch_file(
        f"{serve(ett_dir)}/ETTh1.csv", out / "ETTh1.csv", f"md5:{ETTH1_MD5}", progress=False
    )
    assert file_checksum(dest, "md5") == ETTH1_MD5


def test_etth1_checksum_mismatch_names_both_hashes(serve, ett_dir: Path, out: Path) -> None:
    with pytest.raises(DataError, match="checksum mismatch for ETTh1.csv") as info:
        fetch_file(
            f"{serve(ett_dir)}/ETTh1.csv",
            out / "ETTh1.csv",
            f"sha256:{WRONG_SHA256}",
            progress=False,
        )
    assert WRONG_SHA256 in str(info.value) and ETTH1_SHA256 in str(info.value)
    assert list(out.iterdir()) == []


# --- generated files (never skipped) -------------------------------------------------------


def test_good_download_is_byte_identical(serve, src: Path, out: Path) -> None:
    dest = fetch_file(
        f"{serve(src)}/payload.bin", out / "payload.bin", _sha256(PAYLOAD), progress=False
    )
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in out.iterdir()] == ["payload.bin"]


def test_checksum_is_case_insensitive(serve, src: Path, out: Path) -> None:
    checksum = "SHA256:" + hashlib.sha256(PAYLOAD).hexdigest().upper()
    dest = fetch_file(f"{serve(src)}/payload.bin", out / "p.bin", checksum, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_bad_checksum_leaves_nothing_behind(serve, src: Path, out: Path) -> None:
    dest = out / "payload.bin"
    with pytest.raises(DataError, match="checksum") as info:
        fetch_file(f"{serve(src)}/payload.bin", dest, f"sha256:{WRONG_SHA256}", progress=False)
    assert "\n" not in str(info.value)
    assert not dest.exists()
    assert list(out.iterdir()) == []  # no .part / temporary file left over


def test_bad_checksum_keeps_existing_dest(serve, src: Path, out: Path) -> None:
    dest = out / "payload.bin"
    dest.write_bytes(b"old content")
    with pytest.raises(DataError, match="checksum"):
        fetch_file(f"{serve(src)}/payload.bin", dest, f"md5:{'f' * 32}", progress=False)
    assert dest.read_bytes() == b"old content"
    assert [p.name for p in out.iterdir()] == ["payload.bin"]


def test_success_replaces_existing_dest(serve, src: Path, out: Path) -> None:
    dest = out / "payload.bin"
    dest.write_bytes(b"stale")
    fetch_file(f"{serve(src)}/payload.bin", dest, _sha256(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_http_404_writes_nothing(serve, src: Path, out: Path) -> None:
    dest = out / "missing.csv"
    with pytest.raises(DataError, match=r"HTTP 404 .*check the URL") as info:
        fetch_file(f"{serve(src)}/missing.csv", dest, _sha256(b""), progress=False)
    assert "could not download http://127.0.0.1:" in str(info.value)
    assert list(out.iterdir()) == []


def test_connection_refused(out: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/ETTh1.csv"
    with pytest.raises(DataError, match="could not reach") as info:
        fetch_file(url, out / "ETTh1.csv", _sha256(b""), progress=False, timeout=5)
    assert url in str(info.value)
    assert list(out.iterdir()) == []


def test_truncated_body_is_rejected(serve, out: Path) -> None:
    with pytest.raises(DataError, match="incomplete download"):
        fetch_file(f"{serve()}/truncated", out / "t.bin", _sha256(PAYLOAD), progress=False)
    assert list(out.iterdir()) == []


def test_silent_server_times_out(serve, out: Path) -> None:
    dest = out / "h.bin"
    dest.write_bytes(b"keep me")
    with pytest.raises(DataError, match="timed out"):
        fetch_file(f"{serve()}/hang", dest, _sha256(PAYLOAD), progress=False, timeout=0.3)
    assert dest.read_bytes() == b"keep me"
    assert [p.name for p in out.iterdir()] == ["h.bin"]


def test_progress_bar_without_content_length(serve, out: Path, capsys) -> None:
    dest = fetch_file(f"{serve()}/no-length", out / "n.bin", _sha256(PAYLOAD), progress=True)
    assert dest.read_bytes() == PAYLOAD
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "n.bin" in captured.err  # the bar goes to stderr


def test_progress_bar_with_content_length(serve, src: Path, out: Path, capsys) -> None:
    fetch_file(f"{serve(src)}/payload.bin", out / "p.bin", _sha256(PAYLOAD), progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "p.bin" in captured.err


def test_creates_missing_parent_folders(serve, src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "payload.bin"
    fetch_file(f"{serve(src)}/payload.bin", dest, _sha256(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_no_checksum_warns_and_still_downloads(serve, src: Path, out: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="timetok.core.data.fetch"):
        dest = fetch_file(f"{serve(src)}/payload.bin", out / "p.bin", None, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert any("no checksum" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "checksum", ["sha256", "sha256:abc", "crc32:" + "0" * 8, "md5:" + "z" * 32, "f" * 64]
)
def test_malformed_checksum_is_rejected_before_any_request(checksum: str, out: Path) -> None:
    with pytest.raises(DataError, match="malformed checksum"):
        fetch_file(f"http://127.0.0.1:{_free_port()}/x", out / "x", checksum, progress=False)
    assert list(out.iterdir()) == []


def test_non_http_url_is_rejected(out: Path) -> None:
    with pytest.raises(DataError, match="http:// or https://"):
        fetch_file("ftp://example.org/ETTh1.csv", out / "x", None, progress=False)


def test_keyboard_interrupt_cleans_up(out: Path, monkeypatch) -> None:
    """Ctrl-C in the middle of the transfer removes the partial file and keeps the old one."""
    import io
    import urllib.request

    class Interrupted(io.BytesIO):
        """A response that delivers one chunk, then the user presses Ctrl-C."""

        headers = {"Content-Length": str(len(PAYLOAD))}

        def read(self, size=-1):
            if self.tell():
                assert any(p.name.endswith(".part") for p in out.iterdir())
                raise KeyboardInterrupt
            return super().read(1000)

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Interrupted(PAYLOAD))
    dest = out / "payload.bin"
    dest.write_bytes(b"old content")
    with pytest.raises(KeyboardInterrupt):
        fetch_file("http://example.org/payload.bin", dest, _sha256(PAYLOAD), progress=False)
    assert dest.read_bytes() == b"old content"
    assert [p.name for p in out.iterdir()] == ["payload.bin"]


# --- file_checksum -------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_file_checksum_agrees_with_hashlib(tmp_path: Path, algo: str) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(PAYLOAD)
    assert file_checksum(path, algo) == hashlib.new(algo, PAYLOAD).hexdigest()


def test_file_checksum_default_is_sha256_and_handles_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert file_checksum(path) == hashlib.sha256(b"").hexdigest()


def test_file_checksum_of_etth1_matches_published_hashes(ett_dir: Path) -> None:
    assert file_checksum(ett_dir / "ETTh1.csv") == ETTH1_SHA256
    assert file_checksum(ett_dir / "ETTh1.csv", "md5") == ETTH1_MD5


def test_file_checksum_rejects_unknown_algorithm(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match="unsupported checksum algorithm 'sha1'"):
        file_checksum(path, "sha1")


# --- a dataset served as several files (PhysioNet 2012) ----------------------------------


def _physionet_server(tmp_path: Path, sums_for: tuple[str, ...] | None = None) -> Path:
    """PhysioNet's download folder: ``set-x.tar.gz``, ``Outcomes-x.txt`` and
    ``SHA256SUMS.txt`` (listing ``sums_for``, or every file)."""
    from tests.core.data.test_records import pack, write_physionet

    layout = write_physionet(tmp_path / "layout")
    served = tmp_path / "served"
    served.mkdir()
    for s in "abc":
        pack(layout / f"set-{s}", served / f"set-{s}.tar.gz", top=f"set-{s}/")
        (served / f"Outcomes-{s}.txt").write_bytes((layout / f"Outcomes-{s}.txt").read_bytes())
    names = sorted(p.name for p in served.iterdir())
    lines = [f"{hashlib.sha256((served / n).read_bytes()).hexdigest()}  {n}"
             for n in names if sums_for is None or n in sums_for]
    (served / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    return served


def test_physionet_fetch_downloads_verifies_and_loads(serve, tmp_path, cli, isolated_env):
    from timetok.core.data.records import load_records

    url = serve(_physionet_server(tmp_path)) + "/"
    result = cli("data", "fetch", "physionet2012", "--url", url, "--data-dir", tmp_path / "d")
    assert result.rc == 0, result.err
    folder = tmp_path / "d" / "physionet2012"
    assert sorted(p.name for p in folder.iterdir()) == [
        "Outcomes-a.txt", "Outcomes-b.txt", "Outcomes-c.txt", "SHA256SUMS.txt",
        "set-a.tar.gz", "set-b.tar.gz", "set-c.tar.gz"]
    records = load_records("physionet2012", data_dir=tmp_path / "d", cache=False)
    assert records.path == folder and len(records) == 4  # the fixture's stays with data
    again = cli("data", "fetch", "physionet2012", "--url", url, "--data-dir", tmp_path / "d")
    assert again.rc == 0 and "already there" in again.out


def _refused(result, fragment: str) -> None:
    """Exit 2 and one error line last (progress bars of the files before it may precede)."""
    assert result.rc == 2 and "Traceback" not in result.err, result.err
    last = result.err.rstrip("\n").splitlines()[-1]
    assert last.startswith("error: ") and fragment in last, result.err


def test_physionet_fetch_refuses_a_corrupt_file_and_leaves_nothing(serve, tmp_path, cli):
    served = _physionet_server(tmp_path)
    (served / "set-b.tar.gz").write_bytes(b"tampered")
    url = serve(served) + "/"
    _refused(cli("data", "fetch", "physionet2012", "--url", url, "--data-dir", tmp_path / "d"),
             "checksum mismatch for set-b.tar.gz")
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_physionet_fetch_refuses_a_file_the_sums_do_not_list(serve, tmp_path, cli):
    url = serve(_physionet_server(tmp_path, sums_for=("set-a.tar.gz",))) + "/"
    _refused(cli("data", "fetch", "physionet2012", "--url", url, "--data-dir", tmp_path / "d"),
             "lists no sum for set-b.tar.gz")


def test_physionet_fetch_force_keeps_the_old_folder_when_it_fails(serve, tmp_path, cli):
    folder = tmp_path / "d" / "physionet2012"
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("old")
    (tmp_path / "empty-server").mkdir()
    url = serve(tmp_path / "empty-server") + "/"
    _refused(cli("data", "fetch", "physionet2012", "--url", url, "--data-dir", tmp_path / "d",
                 "--force"), "404")
    assert (folder / "keep.txt").read_text() == "old"


def test_physionet_fetch_reuses_the_archive_already_in_the_folder(tmp_path, cli, monkeypatch):
    """``physionet2012_raw_abc.tar.gz`` is what the dataset resolves to first: a fetch into
    its folder keeps it and downloads nothing (no checksum is published for it)."""
    import timetok.core.data.fetch as fetch
    from tests.core.data.test_records import pack, write_physionet

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although the archive is there")

    monkeypatch.setattr(fetch, "fetch_files", no_download)
    monkeypatch.setattr(fetch, "fetch_file", no_download)
    folder = tmp_path / "d"
    folder.mkdir()
    archive = pack(write_physionet(tmp_path / "layout"), folder / "physionet2012_raw_abc.tar.gz")
    before = archive.read_bytes()
    result = cli("data", "fetch", "physionet2012", "--data-dir", folder)
    assert (result.rc, result.err) == (0, ""), result
    assert result.out == f"{archive} is already there (pass --force to download again)\n"
    assert sorted(p.name for p in folder.iterdir()) == [archive.name]
    assert archive.read_bytes() == before
