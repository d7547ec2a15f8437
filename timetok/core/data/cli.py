"""``timetok data``: list, describe and fetch the registered datasets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from timetok.core.cli_options import OrderedGroup, check_writable, json_option, option


@click.group(cls=OrderedGroup)
def data() -> None:
    """Registered datasets: list them, describe their splits, fetch official files."""


@data.command("list")
@option("--data-dir", type=click.Path(file_okay=False), default=None)
@json_option
def list_(data_dir: str | None, as_json: bool) -> None:
    """Registered datasets: kind, size, licence and where their files resolve."""
    from timetok.core.data.registry import datasets, resolve_path
    from timetok.core.errors import DataError

    rows = []
    for spec in datasets().values():
        if spec.filename is None:
            where = "any file: pass --data-path"
        else:
            try:
                where = str(resolve_path(spec.name, data_dir))
            except DataError:
                where = (f"not found (timetok data fetch {spec.name})" if spec.url else
                         "not found (pass --data-dir)")
        rows.append({"name": spec.name, "kind": spec.kind, "size": spec.size,
                     "description": spec.description, "licence": spec.licence,
                     "citation": spec.citation, "location": where})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    # One block per dataset: a path is never cut to fit a column, at any width.
    for row in rows:
        licence = f" · {row['licence']}" if row["licence"] else ""
        click.echo(f"{row['name']} ({row['kind']}, {row['size']}{licence})\n"
                   f"  {row['location']}")


@data.command()
@click.argument("name")
@option("--context-points", "-L", type=int, default=512, show_default=True,
        help="Series: window length.")
@option("--target-points", "-H", type=int, default=96, show_default=True,
        help="Series: steps after each window.")
@option("--stride", type=int, default=1, show_default=True, help="Series: step between windows.")
@option("--data-path", type=click.Path(), default=None)
@option("--data-dir", type=click.Path(file_okay=False), default=None)
@json_option
def info(name, data_path, data_dir, as_json, **options) -> None:
    """Describe dataset NAME as its kind does: rows, channels and windows of a series, ..."""
    from timetok.core.data.registry import get_kind, get_spec, resolve_path

    spec = get_spec(name)
    report = get_kind(spec).describe(spec, resolve_path(name, data_dir, data_path), options)
    click.echo(json.dumps(report, indent=2) if as_json else get_kind(spec).render(report))


@data.command()
@click.argument("name")
@option("--data-dir", type=click.Path(file_okay=False), default=None,
        help="Where to save [default: $TIMETOK_DATA_DIR or ~/.cache/timetok].")
@option("--url", default=None, help="Download from this address instead (a mirror).")
@option("--force", is_flag=True, help="Download even if the file is already there.")
def fetch(name: str, data_dir: str | None, url: str | None, force: bool) -> None:
    """Download the official file of dataset NAME, verify its checksum, save it atomically."""
    import os

    from timetok.core.data.fetch import fetch_file, file_checksum
    from timetok.core.data.registry import cache_dir, get_spec
    from timetok.core.errors import DataError

    spec = get_spec(name)
    if spec.url is None:
        raise DataError(f"dataset {spec.name!r} has no official download; pass --data-path")
    folder = Path(data_dir or os.environ.get("TIMETOK_DATA_DIR") or cache_dir())
    check_writable(folder, "--data-dir")  # before any download
    dest = folder / spec.filename  # a dataset of several files may be one archive here
    if dest.is_file() and not force:
        if spec.checksum:
            algo, _, expected = spec.checksum.partition(":")
            if file_checksum(dest, algo) == expected:
                click.echo(f"{dest} is already there and its checksum matches")
                return
            raise DataError(f"{dest} exists but its checksum differs; pass --force to replace it")
        click.echo(f"{dest} is already there (pass --force to download again)")
        return
    if spec.files:
        _fetch_folder(spec, folder / spec.name, url, force)
        return
    fetch_file(url or spec.url, dest, spec.checksum)
    credit = "; ".join(part for part in (spec.licence, spec.citation) if part)
    click.echo(f"saved {dest}" + (f" ({credit})" if credit else ""))


def _fetch_folder(spec, dest: Path, url: str | None, force: bool) -> None:
    """A dataset served as several files: all of them into ``dest``, verified, atomically
    (a failed ``--force`` keeps the old folder)."""
    from timetok.core.data.fetch import fetch_files

    if dest.is_dir() and not force:
        click.echo(f"{dest} is already there (pass --force to download again)")
        return
    fetch_files(url or spec.url, spec.files, dest, spec.checksums)
    credit = "; ".join(part for part in (spec.licence, spec.citation) if part)
    click.echo(f"saved {len(spec.files)} files into {dest}" + (f" ({credit})" if credit else ""))
