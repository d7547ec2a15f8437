"""``timetok data``: list, describe and fetch the registered datasets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from timetok.cli.options import json_option, option


@click.group()
def data() -> None:
    """Registered datasets: list them, describe their splits, fetch official files."""


@data.command("list")
@option("--data-dir", type=click.Path(file_okay=False), default=None)
@json_option
def list_(data_dir: str | None, as_json: bool) -> None:
    """Registered datasets and where their files resolve."""
    from timetok.data.registry import DATASETS, resolve_path
    from timetok.errors import DataError

    rows = []
    for spec in DATASETS.values():
        try:
            where = str(resolve_path(spec.name, data_dir)) if spec.filename else "--data-path"
        except DataError:
            where = f"not found (timetok data fetch {spec.name})"
        rows.append({"name": spec.name, "file": spec.filename or "any CSV",
                     "description": spec.description, "location": where})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "file", "description", "location")
    for row in rows:
        table.add_row(*row.values())
    Console().print(table)


@data.command()
@click.argument("name")
@option("--context-points", "-L", type=int, default=512, show_default=True)
@option("--target-points", "-H", type=int, default=96, show_default=True)
@option("--stride", type=int, default=1, show_default=True)
@option("--data-path", type=click.Path(dir_okay=False), default=None)
@option("--data-dir", type=click.Path(file_okay=False), default=None)
@json_option
def info(name, context_points, target_points, stride, data_path, data_dir, as_json) -> None:
    """Rows, channels, split borders and window counts of dataset NAME."""
    from timetok.data.series import SPLITS, load_splits

    split_data = load_splits(name, context_points, data_dir=data_dir, data_path=data_path)
    report = {
        "dataset": split_data.name,
        "path": str(split_data.path),
        "rows": split_data.n_rows,
        "channels": split_data.n_channels,
        "columns": split_data.columns,
        "context_points": context_points,
        "target_points": target_points,
        "stride": stride,
        "splits": {},
    }
    for split in SPLITS:
        start, end = split_data.borders[split]
        windows = split_data.windows(split, context_points, target_points, stride)
        report["splits"][split] = {"start": start, "end": end, "rows": end - start,
                                   "windows": len(windows)}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{report['dataset']}: {report['rows']} rows x {report['channels']} channels "
               f"({', '.join(report['columns'])}) from {report['path']}")
    click.echo(f"windows of {context_points} + {target_points}, stride {stride}:")
    for split, row in report["splits"].items():
        click.echo(f"  {split:<5} rows [{row['start']}, {row['end']})  {row['windows']:>7} windows")


@data.command()
@click.argument("name")
@option("--data-dir", type=click.Path(file_okay=False), default=None,
        help="Where to save [default: $TIMETOK_DATA_DIR or ~/.cache/timetok].")
@option("--url", default=None, help="Download from this address instead (a mirror).")
@option("--force", is_flag=True, help="Download even if the file is already there.")
def fetch(name: str, data_dir: str | None, url: str | None, force: bool) -> None:
    """Download the official file of dataset NAME, verify its checksum, save it atomically."""
    import os

    from timetok.data.fetch import fetch_file, file_checksum
    from timetok.data.registry import cache_dir, get_spec
    from timetok.errors import DataError

    spec = get_spec(name)
    if spec.url is None:
        raise DataError(f"dataset {spec.name!r} has no official download; pass --data-path")
    folder = Path(data_dir or os.environ.get("TIMETOK_DATA_DIR") or cache_dir())
    dest = folder / spec.filename
    if dest.is_file() and not force:
        if spec.checksum:
            algo, _, expected = spec.checksum.partition(":")
            if file_checksum(dest, algo) == expected:
                click.echo(f"{dest} is already there and its checksum matches")
                return
            raise DataError(f"{dest} exists but its checksum differs; pass --force to replace it")
        click.echo(f"{dest} is already there (pass --force to download again)")
        return
    fetch_file(url or spec.url, dest, spec.checksum)
    click.echo(f"saved {dest}" + (f" ({spec.licence})" if spec.licence else ""))
