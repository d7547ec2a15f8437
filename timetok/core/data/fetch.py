"""Download one dataset file over HTTP(S), verify its checksum and write it atomically.

:func:`fetch_file` streams the response in chunks into a temporary file that lives next to the
destination, hashing the bytes as they are written. Only once the whole body has arrived and its
checksum matches is the temporary file moved onto the destination with :func:`os.replace`, so a
reader never sees a half-written or corrupt file. On any failure (HTTP error, unreachable host,
timeout, truncated body, checksum mismatch, Ctrl-C) the temporary file and any folder the call
created are removed, and an existing destination is left exactly as it was. The file gets the
mode a plain ``open()`` would give it.

Only the standard library is used for the transfer (``urllib.request``); the optional progress bar
uses ``rich``, which is imported lazily so that importing this module stays cheap.

Errors a user can act on are raised as :class:`timetok.core.errors.DataError` with a one-line
message that names the problem and the fix.
"""

from __future__ import annotations

import hashlib
import logging
import os
import string
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import IO

from timetok.core.errors import DataError
from timetok.core.utils import atomic_folder, default_file_mode

__all__ = ["fetch_file", "fetch_files", "file_checksum"]

logger = logging.getLogger(__name__)

_CHUNK_SIZE = 1 << 16
"""Bytes read from the network (or from disk, for :func:`file_checksum`) per step."""

_ALGORITHMS = ("sha256", "md5")
"""Checksum algorithms accepted in ``"<algo>:<hex>"`` strings and by :func:`file_checksum`."""

_USER_AGENT = "timetok-fetch/1 (+python-urllib)"


def _one_line(value: object) -> str:
    """Collapse ``str(value)`` onto one line so error messages stay single-line."""
    return " ".join(str(value).split())


def _new_hasher(algo: str) -> hashlib._Hash:
    """Return a fresh hash object for ``algo`` (``"sha256"`` or ``"md5"``)."""
    name = algo.strip().lower()
    if name not in _ALGORITHMS:
        raise DataError(
            f"unsupported checksum algorithm {algo!r}; use one of "
            f"{', '.join(repr(a) for a in _ALGORITHMS)}"
        )
    return hashlib.new(name)


def _parse_checksum(checksum: str) -> tuple[str, str]:
    """Split ``"sha256:<hex>"`` / ``"md5:<hex>"`` into ``(algo, lowercase hex digest)``."""
    algo, sep, digest = checksum.partition(":")
    algo, digest = algo.strip().lower(), digest.strip().lower()
    if sep and algo in _ALGORITHMS:
        width = hashlib.new(algo).digest_size * 2
        if len(digest) == width and all(c in string.hexdigits for c in digest):
            return algo, digest
    raise DataError(
        f"malformed checksum {checksum!r}; write it as 'sha256:<64 hex digits>' "
        "or 'md5:<32 hex digits>'"
    )


def _copy_hashing(
    src: IO[bytes],
    hasher: hashlib._Hash,
    dst: IO[bytes] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Read ``src`` to the end in chunks, feeding ``hasher`` and optionally writing to ``dst``.

    This is the single place where bytes are hashed, shared by :func:`file_checksum` (no ``dst``)
    and :func:`fetch_file` (hash while writing the download).

    Args:
        src: Binary stream to read, e.g. an open file or an HTTP response.
        hasher: Hash object updated with every chunk.
        dst: Optional binary stream that receives a copy of every chunk.
        on_chunk: Optional callback given the size of each chunk (drives the progress bar).

    Returns:
        The number of bytes read.
    """
    total = 0
    while chunk := src.read(_CHUNK_SIZE):
        hasher.update(chunk)
        if dst is not None:
            dst.write(chunk)
        total += len(chunk)
        if on_chunk is not None:
            on_chunk(len(chunk))
    return total


def file_checksum(path: Path, algo: str = "sha256") -> str:
    """Return the hex digest of the file at ``path``.

    Args:
        path: File to hash; read in chunks, so large files are fine.
        algo: ``"sha256"`` (default) or ``"md5"``.

    Returns:
        The lowercase hexadecimal digest.

    Raises:
        DataError: If ``algo`` is not supported.
        OSError: If the file cannot be read.
    """
    hasher = _new_hasher(algo)
    with Path(path).open("rb") as fh:
        _copy_hashing(fh, hasher)
    return hasher.hexdigest()


def _content_length(response: object) -> int | None:
    """Return the response's Content-Length as an int, or None when absent or invalid."""
    headers = getattr(response, "headers", None)
    raw = headers.get("Content-Length") if headers is not None else None
    try:
        length = int(raw) if raw is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _stream(
    response: IO[bytes],
    out: IO[bytes],
    hasher: hashlib._Hash,
    *,
    total: int | None,
    label: str,
    progress: bool,
) -> int:
    """Copy the response body into ``out`` while hashing, with an optional rich progress bar."""
    if not progress:
        return _copy_hashing(response, hasher, out)

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(label, total=total)
        return _copy_hashing(response, hasher, out, on_chunk=lambda n: bar.update(task, advance=n))


def _download(
    url: str,
    out: IO[bytes],
    hasher: hashlib._Hash,
    *,
    label: str,
    progress: bool,
    timeout: float,
) -> None:
    """Fetch ``url`` into ``out``; translate every network failure into a :class:`DataError`."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    retry = "retry, check your network or proxy, or download from a mirror: url=MIRROR"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = _content_length(response)
            received = _stream(response, out, hasher, total=total, label=label, progress=progress)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DataError(
            f"could not download {url}: HTTP {exc.code} {_one_line(exc.reason)}; "
            "check the URL or your network"
        ) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise DataError(f"timed out after {timeout:g} s connecting to {url}; {retry}") from None
        raise DataError(f"could not reach {url}: {_one_line(exc.reason)}; {retry}") from None
    except TimeoutError:
        raise DataError(f"timed out after {timeout:g} s waiting for {url}; {retry}") from None
    except (HTTPException, OSError) as exc:
        reason = _one_line(exc) or type(exc).__name__
        raise DataError(f"download of {url} failed: {reason}; {retry}") from None
    if total is not None and received != total:
        raise DataError(
            f"incomplete download of {url}: got {received} of {total} bytes; "
            "the connection dropped, retry"
        )


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (outermost first) innermost first, where still empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def fetch_file(
    url: str,
    dest: Path,
    checksum: str | None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, verifying ``checksum``; replace ``dest`` only on success.

    The body is streamed into a temporary file in ``dest``'s folder (created if missing) and
    hashed while it is written; after a successful, verified transfer the temporary file is
    renamed onto ``dest`` atomically. On any failure, including ``KeyboardInterrupt``, the
    temporary file and the folders this call created are deleted and a pre-existing ``dest``
    is left untouched.

    Args:
        url: ``http://`` or ``https://`` address of the file.
        dest: Where to write the file.
        checksum: ``"sha256:<hex>"`` or ``"md5:<hex>"``; ``None`` skips verification (a warning
            is logged).
        progress: Show a ``rich`` progress bar on stderr (size from Content-Length when sent).
        timeout: Seconds to wait for the connection and for each read, not for the whole file.

    Returns:
        ``dest``.

    Raises:
        DataError: Malformed checksum or URL, HTTP error, unreachable host, timeout, truncated
            body, checksum mismatch, or a destination folder that cannot be written.
    """
    dest = Path(dest)
    expected = _parse_checksum(checksum) if checksum is not None else None
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DataError(f"unsupported URL {url!r}; give an http:// or https:// address")
    if expected is None:
        logger.warning("no checksum given for %s; %s will not be verified", url, dest.name)
    hasher = _new_hasher(expected[0] if expected is not None else "sha256")

    # The folders this call creates, outermost first: a failed fetch removes them again.
    created = [p for p in reversed(dest.parent.parents) if not p.exists()]
    created += [dest.parent] if not dest.parent.exists() else []
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.NamedTemporaryFile(
            dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
        )
    except OSError as exc:
        _remove_empty(created)
        raise DataError(
            f"cannot write into {str(dest.parent)!r}: {_one_line(exc.strerror or exc)}; "
            "choose a writable destination folder"
        ) from None

    tmp_path = Path(tmp.name)
    try:
        with tmp:
            _download(url, tmp, hasher, label=dest.name, progress=progress, timeout=timeout)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_path, default_file_mode())  # as open() would make it, not 0600
        if expected is not None:
            algo, want = expected
            got = hasher.hexdigest()
            if got != want:
                raise DataError(
                    f"checksum mismatch for {dest.name}: expected {algo} {want}, got {got}; "
                    "the download is corrupt or the mirror serves another file - retry, "
                    "or download from another mirror: url=MIRROR"
                )
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        _remove_empty(created)
        raise
    logger.info("downloaded %s to %s", url, dest)
    return dest


def _read_sums(path: Path, where: str) -> dict[str, str]:
    """``name -> sha256`` from a file in sha256sum's format (``<hex>  [*]<name>``)."""
    sums = {}
    for line in path.read_text(errors="replace").splitlines():
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if len(digest) == 64 and all(c in string.hexdigits for c in digest) and name:
            sums[name] = digest.lower()
    if not sums:
        raise DataError(f"{where} lists no sha256 sums; the server's layout changed - download "
                        "the files by hand")
    return sums


def fetch_files(
    base_url: str,
    names: tuple[str, ...] | list[str],
    dest: Path,
    checksums: str,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``names`` from the folder address ``base_url`` into the folder ``dest``.

    ``checksums`` names the server's own list of sha256 sums in that folder; it is read
    first, and every file is verified against its entry as :func:`fetch_file` writes it.
    Everything lands in a temporary folder beside ``dest``, renamed onto it (replacing what
    it held) only once every file has arrived intact: a failure leaves ``dest`` as it was.
    """
    base = base_url if base_url.endswith("/") else base_url + "/"
    try:
        with atomic_folder(dest) as tmp:
            listing = tmp / checksums
            with listing.open("wb") as handle:
                _download(base + checksums, handle, _new_hasher("sha256"), label=checksums,
                          progress=False, timeout=timeout)
            sums = _read_sums(listing, base + checksums)
            missing = [name for name in names if name not in sums]
            if missing:
                raise DataError(f"{base + checksums} lists no sum for {', '.join(missing)}; "
                                "the server's layout changed - download the files by hand")
            for name in names:
                fetch_file(base + name, tmp / name, f"sha256:{sums[name]}",
                           progress=progress, timeout=timeout)
    except OSError as exc:
        raise DataError(
            f"cannot write into {str(Path(dest).parent)!r}: {_one_line(exc.strerror or exc)}; "
            "choose a writable destination folder"
        ) from None
    return dest
