"""Small helpers shared across the package: every file timetok writes goes through them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A unique temporary path beside ``path`` to write to; renamed onto ``path`` when the
    block ends without an error, removed when it raises. Readers never see half a file, and
    two writers of one path never share a temporary file.

    >>> with atomic_path("out/figure.png") as tmp:    # doctest: +SKIP
    ...     fig.savefig(tmp, format="png")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())  # mkstemp gives 0600; a plain open() would not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh hidden folder beside ``path`` to fill; when the block ends without an error
    it replaces ``path`` (whatever that held is removed), when it raises it is removed and
    ``path`` is left as it was. Readers see the old folder or the complete new one."""
    import secrets
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()  # the umask's mode, unlike mkdtemp's 0700
    try:
        yield tmp
        if path.exists():
            old = path.parent / f".{path.name}.{secrets.token_hex(4)}.old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it: readers never see half a file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def default_file_mode() -> int:
    """What ``open`` would give a new file under the current umask (mkstemp gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def unwritable_reason(path: str | os.PathLike, folder: bool) -> str | None:
    """Why ``path`` (a folder when ``folder``, else a file) could not be written, or None.

    Looks only, creates nothing: the nearest existing ancestor must be a folder this
    process may write into, and ``path`` itself, if it exists, of the right kind.
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            return f"{path} is a file, not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder, not a file"
        if folder and not os.access(path, os.W_OK | os.X_OK):
            return f"{path} is not writable"
        if not folder and not os.access(path, os.W_OK):
            return f"{path} is not writable"
        if folder:
            return None
    parent = path.parent if path.exists() else path
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        return f"{parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the folder {parent} is not writable"
    return None


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory the machine can give without swapping: psutil's figure where it is
    installed, else ``MemAvailable`` of ``/proc/meminfo``; None where neither says."""
    try:
        import psutil
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # in kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def is_dataframe(value) -> bool:
    """Whether ``value`` is a pandas DataFrame, told without importing pandas (a caller that
    never passes one does not pay for the import)."""
    return type(value).__module__.startswith("pandas") and hasattr(value, "columns")
